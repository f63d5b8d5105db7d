"""The Nova notification mapping: Nova's own samples -> Events; malformed input refused; the endpoint's answers."""

from __future__ import annotations

import oslo_messaging
import pytest

from sharedfs_api import nova_listener
from sharedfs_api.nova_listener import Event, Malformed, NovaEndpoint, parse
from tests.support.nova import sample, with_instance

PROJECT = "6f70656e737461636b20342065766572"
INSTANCE = "178b0921-8f85-4257-88b6-2e743b5a975c"


def event_of(name):
    notification = sample(name)
    return parse(notification["event_type"], notification["payload"])


def test_nova_samples_map_to_lifecycle_calls():
    assert event_of("instance-create-end") == Event("register", PROJECT, INSTANCE, ("192.168.1.3",))
    assert event_of("instance-update") == Event("set_addresses", PROJECT, INSTANCE, ())
    assert event_of("instance-interface_attach-end") == Event("set_addresses", PROJECT, INSTANCE,
                                                              ("192.168.1.3", "192.168.1.30"))  # fmt: skip
    assert event_of("instance-interface_detach-end") == Event("set_addresses", PROJECT, INSTANCE, ("192.168.1.3",))
    assert event_of("instance-delete-end") == Event("deregister", PROJECT, INSTANCE, ())


def test_other_events_mean_nothing():
    assert parse("instance.create.start", sample("instance-create-end")["payload"]) is None
    assert parse("flavor.create", {}) is None


def test_an_update_to_deleted_deregisters():
    notification = sample("instance-update")
    notification["payload"]["nova_object.data"]["state"] = "deleted"
    assert parse("instance.update", notification["payload"]).action == "deregister"


def test_addresses_are_normalised_and_deduplicated():
    notification = with_instance(sample("instance-create-end"), "i", "p", "2001:DB8::1", "10.0.0.1", "10.0.0.1")
    assert parse("instance.create.end", notification["payload"]).addresses == ("10.0.0.1", "2001:db8::1")


@pytest.mark.parametrize("payload", [
    None, "text", {"nova_object.data": "x"}, {"nova_object.data": {"uuid": "i"}},
    {"nova_object.data": {"uuid": "i", "tenant_id": "p", "ip_addresses": None}},
    {"nova_object.data": {"uuid": "i", "tenant_id": "p", "ip_addresses": [{"address": "10.0.0.1"}]}},
    {"nova_object.data": {"uuid": "i", "tenant_id": "p", "ip_addresses": [{"nova_object.data": {"address": "10.0.0.256"}}]}},
    {"nova_object.data": {"uuid": 7, "tenant_id": "p", "ip_addresses": []}},
])  # fmt: skip
def test_malformed_payloads_are_refused(payload):
    with pytest.raises(Malformed):
        parse("instance.create.end", payload)


class Recorder:
    def __init__(self, fail=False):
        self.calls, self.fail = [], fail

    def register(self, *args):
        if self.fail:
            raise RuntimeError("database away")
        self.calls.append(("register", *args))

    def set_addresses(self, *args):
        self.calls.append(("set_addresses", *args))

    def deregister(self, *args):
        self.calls.append(("deregister", *args))


def deliver(endpoint, name):
    notification = sample(name)
    return endpoint.info({}, notification["publisher_id"], notification["event_type"], notification["payload"], {})


def test_endpoint_applies_and_acknowledges():
    lifecycle = Recorder()
    endpoint = NovaEndpoint(lifecycle)
    assert deliver(endpoint, "instance-create-end") == oslo_messaging.NotificationResult.HANDLED
    assert deliver(endpoint, "instance-delete-end") == oslo_messaging.NotificationResult.HANDLED
    assert lifecycle.calls == [("register", PROJECT, INSTANCE, ("192.168.1.3",)), ("deregister", INSTANCE)]


def test_endpoint_acknowledges_malformed_and_requeues_failures(monkeypatch):
    monkeypatch.setattr(nova_listener, "RETRY_DELAY", 0)
    endpoint = NovaEndpoint(Recorder(fail=True))
    assert endpoint.info({}, "nova-compute:x", "instance.create.end", "garbage", {}) == \
        oslo_messaging.NotificationResult.HANDLED  # fmt: skip
    assert deliver(endpoint, "instance-create-end") == oslo_messaging.NotificationResult.REQUEUE


def test_the_filter_lets_through_exactly_the_events_we_map():
    rule = NovaEndpoint(Recorder()).filter_rule
    for event_type in nova_listener._ACTIONS:
        assert rule.match({}, "nova-compute:c", event_type, {}, {})
    for event_type in ("instance.create.start", "instance.delete.start", "instance.updated", "xinstance.update"):
        assert not rule.match({}, "nova-compute:c", event_type, {}, {})
