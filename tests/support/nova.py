"""Nova's verbatim notification samples (tests/fixtures/nova/) with their "$ref"s resolved, as Nova's tests do."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "nova" / "notification_samples"


def _resolve(value: Any, here: Path) -> Any:
    if isinstance(value, list):
        return [_resolve(item, here) for item in value]
    if not isinstance(value, dict):
        return value
    if "$ref" not in value:
        return {key: _resolve(item, here) for key, item in value.items()}
    # {"$ref": file, ...overrides}: the referenced object, then the overrides on top; the
    # override's nova_object.data is merged field by field into the referenced one.
    target_path = (here / value["$ref"].split("#")[0]).resolve()
    resolved = _resolve(json.loads(target_path.read_text()), target_path.parent)
    for key, item in value.items():
        if key == "$ref":
            continue
        item = _resolve(item, here)
        if key == "nova_object.data" and isinstance(resolved.get(key), dict):
            resolved[key].update(item)
        else:
            resolved[key] = item
    return resolved


def sample(name: str) -> dict:
    """The notification `name` (e.g. "instance-create-end"): event_type, payload, priority, publisher_id."""
    path = SAMPLES / f"{name}.json"
    return _resolve(json.loads(path.read_text()), path.parent)


def with_instance(notification: dict, instance_id: str, project: str, *addresses: str) -> dict:
    """The sample for another instance: its uuid, tenant_id and (unless none given) ip_addresses changed."""
    notification = copy.deepcopy(notification)
    data = notification["payload"]["nova_object.data"]
    data["uuid"], data["tenant_id"] = instance_id, project
    if addresses:
        template = data["ip_addresses"][0] if data["ip_addresses"] else sample("instance-create-end")["payload"][
            "nova_object.data"]["ip_addresses"][0]  # fmt: skip
        data["ip_addresses"] = []
        for address in addresses:
            ip = copy.deepcopy(template)
            ip["nova_object.data"]["address"] = address
            data["ip_addresses"].append(ip)
    return notification


class NovaNotifier:
    """Publishes as Nova does: oslo.messaging's notifier, driver messagingv2, exchange nova, topic
    versioned_notifications, durable (Nova set up with `amqp_durable_queues = true`)."""

    def __init__(self, transport_url: str) -> None:
        import oslo_messaging
        from oslo_config import cfg

        conf = cfg.ConfigOpts()
        conf([], project="nova", default_config_files=[])
        # Nova's exchange is its control_exchange; a transport takes it when made, and making
        # one is what registers the option: so one to register, then the one we use.
        oslo_messaging.get_notification_transport(conf, url=transport_url).cleanup()
        conf.set_override("control_exchange", "nova")
        conf.set_default("amqp_durable_queues", True, group="oslo_messaging_rabbit")
        self.transport = oslo_messaging.get_notification_transport(conf, url=transport_url)
        self._notifiers = {}
        self._make = lambda publisher: oslo_messaging.Notifier(
            self.transport, publisher_id=publisher, driver="messagingv2", topics=["versioned_notifications"], retry=-1
        )

    def publish(self, notification: dict) -> None:
        publisher = notification["publisher_id"]
        if publisher not in self._notifiers:
            self._notifiers[publisher] = self._make(publisher)
        send = getattr(self._notifiers[publisher], notification.get("priority", "INFO").lower())
        send({}, notification["event_type"], notification["payload"])

    def close(self) -> None:
        self.transport.cleanup()
