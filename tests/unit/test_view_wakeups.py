"""The agents' view wakes its held long-polls once per change some view shows, with the new snapshot already loaded; never for a reload by age, a change no view shows, or its own notification."""

from __future__ import annotations

import asyncio
import time

import pytest

from sharedfs_api import db
from sharedfs_api.view import AgentView, Hub, PgNotifier


@pytest.fixture
def sessions(tmp_path):
    url = f"sqlite:///{tmp_path / 'api.db'}"
    db.upgrade(url)
    sessions = db.make_sessions(db.make_engine(url))
    with sessions() as session:
        session.add(db.Instance(id="i1", project="p1", addresses_json="[]"))
        session.commit()
    return sessions


def add_filesystem(sessions, name: str) -> None:
    with sessions() as session:
        session.add(db.Filesystem(project="p1", name=name, size="1Gb", size_bytes=1 << 30, scope="project",
                                  export=f"gl1:/{name}", fs_type="glusterfs", mount_point=f"/mnt/{name}", driver="static", status="available"))  # fmt: skip
        session.commit()


class CountingView(AgentView):
    loads = 0

    async def _load(self) -> None:
        self.loads += 1
        await super()._load()


def test_a_change_loads_once_then_wakes_every_waiter_with_it_loaded(sessions):
    async def scenario():
        hub = Hub()
        hub.bind(asyncio.get_running_loop())
        view = CountingView(sessions, hub)
        await view.snapshot()  # the first load
        waiters = []
        for _ in range(100):
            waiters.append(view.next_load())
            await view.snapshot()
        assert view.loads == 1 and len(set(map(id, waiters))) == 1  # one future shared by all

        woken_with = []
        waiters[0].add_done_callback(lambda _: woken_with.append(view._snapshot.generation))
        add_filesystem(sessions, "new")
        hub.changed()
        await asyncio.wait_for(waiters[0], 5)
        assert view.loads == 2  # one load for the hundred
        assert woken_with == [hub.generation]  # loaded before anyone woke
        snap = await view.snapshot()  # what a woken waiter reads: no further load
        assert view.loads == 2 and [e["name"] for e in snap.by_project["p1"]] == ["new"]

    asyncio.run(scenario())


def test_a_reload_by_age_wakes_nobody(sessions):
    async def scenario():
        hub = Hub()
        hub.bind(asyncio.get_running_loop())
        view = CountingView(sessions, hub, max_age=0.0)
        await view.snapshot()
        waiting = view.next_load()
        await asyncio.sleep(0.01)
        await view.snapshot()  # older than max_age: loaded again, same generation
        assert view.loads == 2 and not waiting.done()
        hub.close()  # shutdown: every waiter answers now
        await asyncio.sleep(0)
        assert waiting.done()

    asyncio.run(scenario())


def changes_in_loads(monkeypatch, sessions, hub: Hub, after_read: bool) -> list:
    """A list whose names the next loads add as filesystems from their own thread and tell the hub
    of, as a request's commit would: just before the load reads the database, or just after."""
    from sharedfs_api import view as view_module

    real_load, names = view_module._load, []

    def commit() -> None:
        add_filesystem(sessions, names.pop())
        hub.changed()

    def load(*args):
        if names and not after_read:
            commit()
        snap = real_load(*args)
        if names and after_read:
            commit()
        return snap

    monkeypatch.setattr(view_module, "_load", load)
    return names


def test_a_change_during_a_load_is_loaded_and_published_too(sessions, monkeypatch):
    hub = Hub()
    changes_during = changes_in_loads(monkeypatch, sessions, hub, after_read=True)  # too late for that load

    async def scenario():
        hub.bind(asyncio.get_running_loop())
        view = CountingView(sessions, hub)
        await view.snapshot()
        first = view.next_load()
        changes_during.append("late")
        hub.changed()  # loads, and the change lands after that load's read
        await asyncio.wait_for(first, 5)  # woken by the load after it, which has the change
        assert view.loads == 3 and view._snapshot.generation == hub.generation == 2
        assert [e["name"] for e in view._snapshot.by_project["p1"]] == ["late"]

    asyncio.run(scenario())


def test_a_change_another_process_made_untold_is_seen_by_asking_for_a_newer_load(sessions):
    async def scenario():
        hub = Hub()
        hub.bind(asyncio.get_running_loop())
        view = CountingView(sessions, hub)
        await view.snapshot()
        with sessions() as session:  # another process on SQLite: no change reaches this hub
            session.add(db.Instance(id="i2", project="p1", addresses_json="[]"))
            session.commit()
        asked = time.monotonic()
        assert "i2" not in (await view.snapshot()).instances  # within max_age: the snapshot in hand
        assert (await view.snapshot(loaded_since=asked)).instances["i2"] == "p1"
        assert view.loads == 2

    asyncio.run(scenario())


def test_a_change_no_view_shows_loads_but_wakes_nobody(sessions):
    async def scenario():
        hub = Hub()
        hub.bind(asyncio.get_running_loop())
        view = CountingView(sessions, hub)
        await view.snapshot()
        waiting = view.next_load()
        with sessions() as session:  # a token: no agent's document shows it
            session.add(db.Token(sha256="0" * 64, role="project", project="p1"))
            session.commit()
        hub.changed()
        while view.loads < 2 or view._loading is not None:
            await asyncio.sleep(0.01)
        assert not waiting.done()
        add_filesystem(sessions, "seen")
        hub.changed()
        await asyncio.wait_for(waiting, 5)
        assert view.loads == 3

    asyncio.run(scenario())


def test_a_process_does_not_act_on_its_own_notification_twice(sessions):
    hub = Hub()
    notifier = PgNotifier(sessions.kw["bind"], hub)
    other = PgNotifier(sessions.kw["bind"], Hub())
    notifier.heard(notifier.origin)  # its own change: its hub was told when it was made
    assert hub.generation == 0
    notifier.heard(other.origin)  # another process's
    notifier.heard("")  # the CLI's
    assert hub.generation == 2 and other.origin != notifier.origin


def test_a_change_that_lands_in_a_reload_by_age_wakes_the_waiters(sessions, monkeypatch):
    hub = Hub()
    changes = changes_in_loads(monkeypatch, sessions, hub, after_read=False)  # after the reload read the generation

    async def scenario():
        hub.bind(asyncio.get_running_loop())
        view = CountingView(sessions, hub, max_age=0.0)
        await view.snapshot()
        waiting = view.next_load()  # a held poll, on a snapshot without the filesystem
        changes.append("new")
        await asyncio.sleep(0.01)
        await view.snapshot()  # another request: a reload by age, which reads the change
        await asyncio.wait_for(waiting, 5)
        assert [e["name"] for e in view._snapshot.by_project["p1"]] == ["new"]

    asyncio.run(scenario())
