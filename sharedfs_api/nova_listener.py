"""Nova's versioned notifications (oslo.messaging) -> calls on an InstanceLifecycle; `sharedfs-api nova-listener` runs it.

Nova must publish them: `[notifications] notification_format = versioned` and
`[oslo_messaging_notifications] driver = messagingv2` (exchange `nova`, topic `versioned_notifications`).
The listener reads its own durable queue (named by its pool), so it misses nothing while it is down
and shares nothing with other consumers of the same topic.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, Sequence, Tuple

import oslo_messaging
from oslo_config import cfg

__all__ = ["InstanceLifecycle", "Event", "Malformed", "parse", "NovaEndpoint", "make_listener",
           "EXCHANGE", "TOPIC", "POOL"]  # fmt: skip

log = logging.getLogger(__name__)

EXCHANGE = "nova"
TOPIC = "versioned_notifications"
POOL = "sharedfs"  # also the queue's name
RETRY_DELAY = 1.0  # after a failed lifecycle call, before the message is put back


class InstanceLifecycle(Protocol):
    """What the listener drives. Every call is idempotent. deregister leaves a tombstone: a later
    register or set_addresses of that id is ignored (Nova never reuses an instance's uuid), so a
    delete that overtakes its create, or a redelivered create, cannot bring an instance back."""

    def register(self, project: str, instance_id: str, addresses: Sequence[str]) -> None:
        """The instance exists in project with exactly these addresses."""

    def set_addresses(self, project: str, instance_id: str, addresses: Sequence[str]) -> None:
        """The instance's addresses are now exactly these (registers it if it is not yet)."""

    def deregister(self, instance_id: str) -> None:
        """The instance is gone: its registration, tokens and addresses in every ACL go too."""


class Malformed(ValueError):
    """A notification this listener cannot read; it is logged and acknowledged, never retried."""


@dataclass(frozen=True)
class Event:
    action: str  # register | set_addresses | deregister
    project: str
    instance_id: str
    addresses: Tuple[str, ...]


_ACTIONS = {
    "instance.create.end": "register",
    "instance.update": "set_addresses",
    "instance.interface_attach.end": "set_addresses",
    "instance.interface_detach.end": "set_addresses",
    "instance.delete.end": "deregister",
}
EVENT_TYPES = r"^instance\.(create\.end|update|interface_attach\.end|interface_detach\.end|delete\.end)$"


def _data(obj: Any, what: str) -> dict:
    if not isinstance(obj, dict) or not isinstance(obj.get("nova_object.data"), dict):
        raise Malformed(f"{what} is not a Nova versioned object")
    return obj["nova_object.data"]


def parse(event_type: str, payload: Any) -> Optional[Event]:
    """One notification -> the Event it means, None if it means nothing to us; Malformed if unreadable."""
    action = _ACTIONS.get(event_type)
    if action is None:
        return None
    data = _data(payload, "payload")
    instance_id, project = data.get("uuid"), data.get("tenant_id")
    if not isinstance(instance_id, str) or not instance_id or not isinstance(project, str) or not project:
        raise Malformed(f"{event_type}: payload has no uuid or tenant_id")
    if action == "deregister" or data.get("state") == "deleted":
        # instance.delete.end carries no addresses; an update to state `deleted` means the same.
        return Event("deregister", project, instance_id, ())
    ips = data.get("ip_addresses")
    if not isinstance(ips, list):
        raise Malformed(f"{event_type}: ip_addresses is not a list")
    addresses = []
    for ip in ips:
        address = _data(ip, "an ip_addresses entry").get("address")
        try:
            addresses.append(str(ipaddress.ip_address(address)))
        except ValueError:
            raise Malformed(f"{event_type}: {address!r} is not an IP address")
    return Event(action, project, instance_id, tuple(sorted(set(addresses))))


def apply(event: Event, lifecycle: InstanceLifecycle) -> None:
    if event.action == "deregister":
        lifecycle.deregister(event.instance_id)
    elif event.action == "register":
        lifecycle.register(event.project, event.instance_id, event.addresses)
    else:
        lifecycle.set_addresses(event.project, event.instance_id, event.addresses)


class NovaEndpoint:
    """oslo.messaging notification endpoint: parse, apply, acknowledge. A lifecycle failure (the
    database is away) puts the message back after RETRY_DELAY; a malformed message is dropped."""

    def __init__(self, lifecycle: InstanceLifecycle, on_applied: Optional[Callable[[Event], None]] = None) -> None:
        self.filter_rule = oslo_messaging.NotificationFilter(event_type=EVENT_TYPES)
        self.lifecycle = lifecycle
        self.on_applied = on_applied

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        try:
            event = parse(event_type, payload)
        except Malformed as e:
            log.warning("dropping a malformed notification from %s (message %s): %s",
                        publisher_id, (metadata or {}).get("message_id"), e)  # fmt: skip
            return oslo_messaging.NotificationResult.HANDLED
        if event is None:
            return oslo_messaging.NotificationResult.HANDLED
        try:
            apply(event, self.lifecycle)
        except Exception:
            log.exception("%s of instance %s failed; retrying in %.0f s", event.action, event.instance_id, RETRY_DELAY)
            time.sleep(RETRY_DELAY)
            return oslo_messaging.NotificationResult.REQUEUE
        if self.on_applied is not None:
            self.on_applied(event)
        return oslo_messaging.NotificationResult.HANDLED


def make_listener(lifecycle: InstanceLifecycle, transport_url: Optional[str] = None,
                  config_file: Optional[str] = None, pool: str = POOL,
                  on_applied: Optional[Callable[[Event], None]] = None):  # fmt: skip
    """A started-on-demand oslo.messaging listener (call .start(), then .stop() and .wait()).

    Its queue is durable by default (`[oslo_messaging_rabbit] amqp_durable_queues`): set the same in
    Nova, as the exchange's durability follows that option on both sides. One worker thread, so
    one instance's notifications are applied in the order the broker delivers them.
    """
    conf = cfg.ConfigOpts()
    conf(["--config-file", config_file] if config_file else [], project="sharedfs", default_config_files=[])
    transport = oslo_messaging.get_notification_transport(conf, url=transport_url)
    conf.set_default("amqp_durable_queues", True, group="oslo_messaging_rabbit")  # read at the first connection
    targets = [oslo_messaging.Target(topic=TOPIC, exchange=EXCHANGE)]
    listener = oslo_messaging.get_notification_listener(
        transport, targets, [NovaEndpoint(lifecycle, on_applied)], executor="threading", pool=pool, allow_requeue=True
    )
    conf.set_default("executor_thread_pool_size", 1)  # registered by the listener, read at start()
    return listener
