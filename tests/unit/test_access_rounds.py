"""A busy filesystem's access list: a change already carried to the driver by a later-begun call waits for no call of its own."""

from __future__ import annotations

import threading
from typing import AbstractSet, List

import pytest

from sharedfs_api import db, drivers
from sharedfs_api.auth import Principal
from sharedfs_api.backends import BackendConfig, Backends
from sharedfs_api.drivers import Driver, FsSpec
from sharedfs_api.errors import DriverError
from sharedfs_api.schemas import FsEntryIn, InstanceIn
from sharedfs_api.services import make_services

ADMIN = Principal("admin")
WAIT = 10.0  # seconds any step may take before the test fails (never reached when it passes)


class GatedDriver(Driver):
    """Each access-list call announces itself and then waits until the test opens its gate."""

    name = "gated"
    fs_type = "nfs"

    def __init__(self, options) -> None:
        super().__init__(options)
        self.calls: List[AbstractSet[str]] = []  # what each call was asked to set, in order
        self.entered = threading.Semaphore(0)
        self.gate = threading.Semaphore(0)
        self.fail = False

    def create(self, fs: FsSpec) -> str:
        return f"server:/{fs.name}"

    def delete(self, fs: FsSpec) -> None:
        pass

    def set_access(self, fs: FsSpec, addresses: AbstractSet[str]) -> None:
        self.calls.append(frozenset(addresses))
        self.entered.release()
        assert self.gate.acquire(timeout=WAIT), "the test never let this call finish"
        if self.fail:
            raise DriverError("backend unreachable")

    def next_call(self) -> AbstractSet[str]:
        assert self.entered.acquire(timeout=WAIT), "no driver call began"
        return self.calls[-1]


@pytest.fixture
def api(tmp_path, monkeypatch):
    monkeypatch.setitem(drivers.DRIVERS, "gated", GatedDriver)
    url = f"sqlite:///{tmp_path / 'api.db'}"
    db.upgrade(url)
    backends = Backends([BackendConfig("nfs", "gated")])
    backends.setup({"db_url": url})
    services = make_services(db.make_sessions(db.make_engine(url)), backends, lambda: None)
    services.filesystems.put_fs(ADMIN, "p1", "home", FsEntryIn(size="1Gb", scope="project", mount_point="/mnt/home"))
    services.worker.drain(timeout=WAIT)
    return services, backends.get("nfs")


class Changes:
    """Instances of home's project registering from their own threads; `waiting` tells when each
    change has committed and its sync has taken its place (its ticket)."""

    def __init__(self, services, monkeypatch) -> None:
        self.services = services
        self.ticketed = threading.Semaphore(0)
        rounds = services.filesystems.access.rounds
        take = rounds.ticket

        def ticket(fs_id: int) -> int:
            try:
                return take(fs_id)
            finally:
                self.ticketed.release()

        monkeypatch.setattr(rounds, "ticket", ticket)

    def start(self, *names: str) -> List[threading.Thread]:
        threads = [threading.Thread(target=self.services.instances.put_instance,
                                    args=(ADMIN, "p1", name, InstanceIn(addresses=[ip(name)]))) for name in names]  # fmt: skip
        [t.start() for t in threads]
        for _ in names:
            assert self.ticketed.acquire(timeout=WAIT), "a change never reached its sync"
        return threads


def ip(name: str) -> str:
    return f"10.0.0.{ord(name)}"


def done(threads: List[threading.Thread]) -> bool:
    [t.join(timeout=WAIT) for t in threads]
    return not any(t.is_alive() for t in threads)


def test_changes_carried_by_a_later_call_return_without_waiting_for_the_next(api, monkeypatch):
    services, driver = api
    changes = Changes(services, monkeypatch)
    a = changes.start("a")
    assert driver.next_call() == {ip("a")}  # a's call, held
    bcd = changes.start("b", "c", "d")  # they commit and queue behind it
    driver.gate.release()
    assert done(a)
    assert driver.next_call() == {ip(n) for n in "abcd"}  # one of them reads all three, held
    e = changes.start("e")  # commits during that call: not carried by it
    driver.gate.release()
    assert driver.next_call() == {ip(n) for n in "abcde"}  # e's own call, held...
    assert done(bcd)  # ...while b, c and d have returned: the call before carried them
    assert e[0].is_alive()
    driver.gate.release()
    assert done(e)
    assert len(driver.calls) == 3


def test_a_failed_call_carries_nobody(api, monkeypatch):
    services, driver = api
    changes = Changes(services, monkeypatch)
    driver.fail = True
    a = changes.start("a")
    driver.next_call()
    bc = changes.start("b", "c")
    driver.gate.release()
    assert driver.next_call() == {ip(n) for n in "abc"}  # read after b and c committed, and fails
    driver.gate.release()
    assert driver.next_call() == {ip(n) for n in "abc"}  # so the other one tries again
    driver.fail = False
    driver.gate.release()
    assert done(a + bc)
    assert len(driver.calls) == 3
