"""Nova's own notification samples, published through oslo.messaging to a real RabbitMQ, drive the listener."""

from __future__ import annotations

import logging
import statistics
import threading
import time
import uuid

import pytest

from sharedfs_api.nova_listener import make_listener
from tests.support import wait_for
from tests.support.nova import NovaNotifier, sample, with_instance

SAMPLE_PROJECT = "6f70656e737461636b20342065766572"  # the samples' tenant_id
SAMPLE_INSTANCE = "178b0921-8f85-4257-88b6-2e743b5a975c"


class MemoryLifecycle:
    """The InstanceLifecycle contract in memory: idempotent calls, tombstones after deregister."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.instances = {}  # id -> (project, frozenset(addresses))
        self.gone = set()
        self.calls = []
        self.when = {}  # id -> monotonic time of its latest change

    def _set(self, project, instance_id, addresses):
        with self.lock:
            self.calls.append(("set", instance_id))
            if instance_id not in self.gone:
                self.instances[instance_id] = (project, frozenset(addresses))
                self.when[instance_id] = time.monotonic()

    register = set_addresses = _set

    def deregister(self, instance_id):
        with self.lock:
            self.calls.append(("deregister", instance_id))
            self.gone.add(instance_id)
            self.instances.pop(instance_id, None)
            self.when[instance_id] = time.monotonic()


@pytest.fixture
def listening(broker):
    """A fresh lifecycle behind a listener on its own pool (queue), and Nova's notifier."""
    lifecycle = MemoryLifecycle()
    pool = f"sharedfs-test-{uuid.uuid4().hex[:8]}"
    listener = make_listener(lifecycle, broker.url, pool=pool)
    listener.start()
    nova = NovaNotifier(broker.url)
    yield lifecycle, nova, pool
    listener.stop()
    listener.wait()
    listener.transport.cleanup()
    nova.close()


def test_nova_samples_register_follow_and_deregister(listening):
    lifecycle, nova, _ = listening
    expect = [
        ("instance-update", set()),  # while it is scheduled: known to Nova, no address yet
        ("instance-create-end", {"192.168.1.3"}),
        ("instance-interface_attach-end", {"192.168.1.3", "192.168.1.30"}),
        ("instance-interface_detach-end", {"192.168.1.3"}),
    ]
    for name, addresses in expect:
        nova.publish(sample(name))
        assert wait_for(lambda a=addresses: lifecycle.instances.get(SAMPLE_INSTANCE) == (SAMPLE_PROJECT, a)), name
    nova.publish(sample("instance-delete-end"))
    assert wait_for(lambda: SAMPLE_INSTANCE in lifecycle.gone and SAMPLE_INSTANCE not in lifecycle.instances)
    # The same create again (a redelivery, or a create that lost the race) does not bring it back.
    calls = len(lifecycle.calls)
    nova.publish(sample("instance-create-end"))
    assert wait_for(lambda: len(lifecycle.calls) > calls)
    assert SAMPLE_INSTANCE not in lifecycle.instances


def test_malformed_notifications_are_logged_and_acknowledged(listening, broker, caplog):
    lifecycle, nova, pool = listening
    caplog.set_level(logging.WARNING, logger="sharedfs_api.nova_listener")
    bad = [
        {**sample("instance-create-end"), "payload": "not an object"},
        with_instance(sample("instance-create-end"), "", SAMPLE_PROJECT),
        with_instance(sample("instance-create-end"), "bad-ip", SAMPLE_PROJECT, "999.1.1.1"),
    ]
    for notification in bad:
        nova.publish(notification)
    good = str(uuid.uuid4())
    nova.publish(with_instance(sample("instance-create-end"), good, "p1", "10.0.0.7"))
    assert wait_for(lambda: lifecycle.instances.get(good) == ("p1", frozenset({"10.0.0.7"})))
    dropped = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert len(dropped) == 3
    assert "bad-ip" not in lifecycle.instances and "" not in lifecycle.instances


def test_latency_notification_to_registered(listening):
    """Figures for the record: publish -> register() called, one notification at a time."""
    lifecycle, nova, _ = listening
    latencies = []
    for i in range(50):
        instance = str(uuid.uuid4())
        start = time.monotonic()
        nova.publish(with_instance(sample("instance-create-end"), instance, "p1", f"10.1.0.{i + 1}"))
        assert wait_for(lambda i=instance: i in lifecycle.when, step=0.001)
        latencies.append(lifecycle.when[instance] - start)
    latencies.sort()
    print(f"\nnotification -> registered: median {statistics.median(latencies) * 1000:.1f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms (n={len(latencies)})")  # fmt: skip
    assert statistics.median(latencies) < 1.0


def test_broker_restart_in_the_middle_of_a_burst(listening, broker):
    """1,000 create/delete notifications, the broker restarted while they flow: the registered set
    is exactly what the notifications say. Some deletes come before their creates."""
    lifecycle, nova, _ = listening
    creates = [f"c{i:04d}" for i in range(575)]
    early = [f"d{i:04d}" for i in range(25)]  # deleted before they are created
    burst = [("delete", name) for name in early]
    for i, name in enumerate(creates):
        burst.append(("create", name))
        if i >= 100 and i - 100 < 375:
            burst.append(("delete", creates[i - 100]))
    burst += [("create", name) for name in early]
    assert len(burst) == 1000
    expected = set(creates[375:])

    def message(kind, name):
        template = sample("instance-create-end" if kind == "create" else "instance-delete-end")
        address = f"10.2.{int(name[1:]) // 250}.{int(name[1:]) % 250 + 1}"
        return with_instance(template, name, "p1", *([address] if kind == "create" else []))

    messages = [message(kind, name) for kind, name in burst]
    published = [0]

    def publish():
        for m in messages:
            nova.publish(m)  # retry=-1: blocks through the restart, resends what was not confirmed
            published[0] += 1

    publisher = threading.Thread(target=publish)
    publisher.start()
    assert wait_for(lambda: published[0] >= 400, timeout=60, step=0.001)
    restart_at = published[0]
    broker.restart()
    publisher.join(120)
    assert not publisher.is_alive()
    assert restart_at < 1000, "the restart must fall inside the burst"
    assert wait_for(lambda: set(lifecycle.instances) == expected, timeout=60), (
        len(lifecycle.instances), sorted(set(lifecycle.instances) ^ expected)[:10])  # fmt: skip
    assert lifecycle.gone >= set(early) | set(creates[:375])
    for name in expected:
        n = int(name[1:])
        assert lifecycle.instances[name] == ("p1", frozenset({f"10.2.{n // 250}.{n % 250 + 1}"}))
