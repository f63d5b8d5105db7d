"""The agents' view: change notification (local and PostgreSQL LISTEN/NOTIFY) and per-instance documents with ETags."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import AbstractSet, Callable, Dict, List, Optional, Tuple

from sqlalchemy import select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import sessionmaker
from starlette.concurrency import run_in_threadpool

from sharedfs_agent import wire

from . import db
from .representations import agent_document, agent_entry, identity_entry

__all__ = ["Hub", "AgentView", "PgNotifier", "CHANNEL", "notify"]

log = logging.getLogger(__name__)

CHANNEL = "sharedfs_changes"


class Hub:
    """Tells its listeners (the agents' view) on the event loop when anything changed, or when the
    server shuts down (close(): `closing` is then true and stays so). changed() is thread-safe;
    `generation` counts the changes, for whoever must know whether one happened since."""

    def __init__(self) -> None:
        self.generation = 0
        self._counting = threading.Lock()
        self.closing = False
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.listeners: List[Callable[[], None]] = []  # called on the loop at each change (or close)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def changed(self) -> None:
        with self._counting:  # from request threads, the worker and pg-listen at once: no count lost
            self.generation += 1
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._wake)

    def close(self) -> None:
        """Called on the event loop when shutdown begins: every waiter wakes and answers now."""
        self.closing = True
        if self.loop is not None:
            self._wake()

    def _wake(self) -> None:
        for listener in self.listeners:
            listener()


@dataclass
class Snapshot:
    """Available filesystems and instances at one generation, indexed for per-instance views."""

    generation: int
    loaded_at: float
    instances: Dict[str, str]  # instance id -> project
    global_fs: List[dict]
    by_project: Dict[str, List[dict]]
    by_instance: Dict[str, List[dict]]  # includes each instance's own copies of entries reached by identity
    documents: Dict[object, Tuple[bytes, str]] = field(default_factory=dict)  # memo: id or project -> (body, etag)

    def same_views(self, other: Snapshot) -> bool:
        """Whether every instance's document would be the same in both (what the views are made of)."""
        return (self.instances == other.instances and self.global_fs == other.global_fs
                and self.by_project == other.by_project and self.by_instance == other.by_instance)  # fmt: skip


def _load(sessions: sessionmaker, generation: int, identity_backends: AbstractSet[str] = frozenset()) -> Snapshot:
    """identity_backends: the backends whose filesystems are reached by identity. Such a filesystem
    is in an instance's view only as that instance's own copy, with its credential (one query for
    all of them, whatever the number of agents), and only while the instance is still a member."""
    with sessions() as session:
        filesystems = {
            fs.id: fs for fs in session.scalars(select(db.Filesystem).where(db.Filesystem.status == "available"))
        }
        instances = dict(session.execute(select(db.Instance.id, db.Instance.project)).all())
        links = {(i, f) for i, f in session.execute(select(db.Connection.instance_id, db.Connection.filesystem_id))}
        identities = list(session.scalars(select(db.IdentityGrant))) if identity_backends else []
    global_fs: List[dict] = []
    by_project: Dict[str, List[dict]] = defaultdict(list)
    by_instance: Dict[str, List[dict]] = defaultdict(list)
    entries = {fs_id: agent_entry(fs) for fs_id, fs in filesystems.items()}

    def member(fs: db.Filesystem, instance_id: str) -> bool:
        if fs.scope == "global":
            return instance_id in instances
        if instances.get(instance_id) != fs.project:
            return False
        return fs.scope == "project" or (instance_id, fs.id) in links

    for fs_id, fs in filesystems.items():
        if fs.driver in identity_backends:
            continue
        if fs.scope == "global":
            global_fs.append(entries[fs_id])
        elif fs.scope == "project":
            by_project[fs.project].append(entries[fs_id])
    for instance_id, fs_id in links:
        fs = filesystems.get(fs_id)
        if fs is not None and fs.driver not in identity_backends and fs.scope == "instance" \
                and instances.get(instance_id) == fs.project:  # fmt: skip
            by_instance[instance_id].append(entries[fs_id])
    for grant in identities:
        fs = filesystems.get(grant.filesystem_id)
        if fs is not None and fs.driver in identity_backends and member(fs, grant.instance_id):
            by_instance[grant.instance_id].append(identity_entry(entries[fs.id], grant.secret, grant.options))
    return Snapshot(generation, time.monotonic(), instances, global_fs, by_project, by_instance)


def _log_failure(load: asyncio.Future) -> None:
    if not load.cancelled() and load.exception() is not None:
        log.warning("loading the agents' view failed (%s); the next change or request loads again", load.exception())


class AgentView:
    """Computes an instance's effective set from an in-memory snapshot, reloaded once per change,
    so thousands of long-polls woken together cost one database read, not thousands.

    A held long-poll waits on next_load(), not on the hub: at a change each process loads the new
    snapshot at once (one load, while the waiters sleep), then wakes them, so each waiter wakes
    once with its answer at hand instead of waking, queueing on the load and waking again (the
    fan-out's cost is per waiter: bench/fanout.py)."""

    def __init__(self, sessions: sessionmaker, hub: Hub, max_age: float = 5.0,
                 identity_backends: AbstractSet[str] = frozenset()) -> None:  # fmt: skip
        self.sessions = sessions
        self.hub = hub
        self.identity_backends = frozenset(identity_backends)
        self.max_age = max_age  # also catches changes made by a process that cannot notify (CLI + SQLite)
        self._snapshot: Optional[Snapshot] = None
        self._loading: Optional[asyncio.Future] = None  # the load under way
        self._published: Optional[asyncio.Future] = None  # resolved when the next snapshot is loaded
        hub.listeners.append(self._changed)

    def next_load(self) -> asyncio.Future:
        """Resolved when the next snapshot is loaded (or the server closes). Taken before reading a
        snapshot, it misses no change: one made after the read loads a new one and resolves it."""
        if self._published is None:
            self._published = asyncio.get_running_loop().create_future()
        return self._published

    async def snapshot(self, loaded_since: Optional[float] = None) -> Snapshot:
        """A snapshot that has every change made before the call; at most one load at a time,
        which every caller needing one awaits (10,000 polls woken by one change: one load, no
        queue on a lock). loaded_since: a monotonic time the snapshot must be loaded after, to
        see what another process changed without telling this one (SQLite)."""
        wanted, waited = self.hub.generation, False
        while True:
            snap = self._snapshot
            if (
                snap is not None
                and snap.generation >= wanted
                and (waited or time.monotonic() - snap.loaded_at <= self.max_age)
                and (waited or loaded_since is None or snap.loaded_at >= loaded_since)
            ):
                return snap
            await asyncio.shield(self._load_soon())  # a caller that leaves does not cancel the others' load
            waited = True  # a load that ended after the call began: new enough, however long it took

    async def project_of(self, instance_id: str) -> Optional[str]:
        """The instance's project as the database has it now (one row), or None."""

        def read() -> Optional[str]:
            with self.sessions() as session:
                return session.scalar(select(db.Instance.project).where(db.Instance.id == instance_id))

        return await run_in_threadpool(read)

    def _changed(self) -> None:
        """On the loop, at a change (or the hub's close): load now, for the waiters."""
        if self.hub.closing:
            self._publish()  # shutdown: every waiter answers now with what it has
        else:
            self._load_soon().add_done_callback(_log_failure)

    def _load_soon(self) -> asyncio.Future:
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load())
        return self._loading

    async def _load(self) -> None:
        try:
            generation = self.hub.generation  # read first: a change during the load loads again
            before = self._snapshot
            self._snapshot = await run_in_threadpool(_load, self.sessions, generation, self.identity_backends)
        finally:
            self._loading = None
        # Whenever some view differs from the last snapshot's, whatever started the load (a change
        # can land in a reload by age, stamped with the generation before it); never for a load
        # that changes no view (a token revoked, a state reported, a reload by age alone), which
        # would wake every waiter for nothing. Loads run one at a time, so a snapshot that was not
        # published has the views of the one before: no waiter misses a change.
        if before is None or not self._snapshot.same_views(before):
            self._publish()
        if self.hub.generation != generation:
            self._load_soon().add_done_callback(_log_failure)  # changed during the load: the waiters get that one too

    def _publish(self) -> None:
        done, self._published = self._published, None
        if done is not None and not done.done():
            done.set_result(None)

    @staticmethod
    def document(snap: Snapshot, instance_id: str, secrets: bool = True) -> Tuple[bytes, str]:
        """secrets: with the instance's credentials (for its own token only; an admin or project
        token reading the same view gets the entries without them)."""
        project = snap.instances[instance_id]
        own = snap.by_instance.get(instance_id, [])
        # An instance with nothing of its own has its project's document: made once per change for
        # the whole project, not once per instance (20,000 woken polls, one serialisation and hash).
        # Only entries of its own can carry a secret.
        key = (instance_id if secrets else ("public", instance_id)) if own else ("project", project)
        cached = snap.documents.get(key)
        if cached is not None:
            return cached
        if not secrets:
            own = [{k: v for k, v in e.items() if k != wire.SECRET_KEY} for e in own]
        body = agent_document(snap.global_fs + snap.by_project.get(project, []) + own)
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'  # strong: same bytes, same tag
        snap.documents[key] = (body, etag)
        return body, etag


def notify(engine: Engine, origin: str = "") -> None:
    """Wake the long-polls of every API process on this PostgreSQL database (the CLI calls it too);
    origin: the notifying process's PgNotifier, which has told its own hub already."""
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_notify(:channel, :origin)"), {"channel": CHANNEL, "origin": origin})
        connection.commit()


class PgNotifier:
    """Cross-process wake-ups on PostgreSQL: every change NOTIFYs, a thread LISTENs and pokes the hub."""

    def __init__(self, engine: Engine, hub: Hub) -> None:
        self.engine = engine
        self.hub = hub
        # Its own notifications come back to its LISTEN too; this process changed its hub at the
        # change already, and a second reload of every instance, in a fan-out, costs the fan-out.
        self.origin = uuid.uuid4().hex
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._listen, name="pg-listen", daemon=True)

    def notify(self) -> None:
        notify(self.engine, self.origin)

    def heard(self, payload: str) -> None:
        """A notification: another process (or the CLI) changed something."""
        if payload != self.origin:
            self.hub.changed()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()

    def _listen(self) -> None:
        import psycopg

        url = make_url(self.engine.url).set(drivername="postgresql").render_as_string(hide_password=False)
        delay = 0.5
        while not self.stopping.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self.hub.changed()  # whatever happened while we were not listening
                    delay = 0.5
                    while not self.stopping.is_set():
                        for notification in connection.notifies(timeout=1.0):
                            self.heard(notification.payload)
            except Exception as e:  # the database restarting must not end notifications for good
                log.warning("LISTEN connection lost (%s); retrying in %.1fs", e, delay)
                self.stopping.wait(delay)
                delay = min(delay * 2, 10.0)
