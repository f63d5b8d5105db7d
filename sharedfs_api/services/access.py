"""Access: who should reach a filesystem (by scope), and keeping its backend's access list (addresses or identities) equal to that set."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Set, Tuple

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session, sessionmaker

from .. import db
from ..backends import Backends
from ..drivers import Driver, FsSpec, Identity
from ..errors import DriverError
from .tx import Locks, is_postgres, lock_access, run

__all__ = ["Access", "spec"]

log = logging.getLogger(__name__)

ACCESS_FAILED = "access update failed"


def spec(fs: db.Filesystem) -> FsSpec:
    return FsSpec(fs.name, fs.project, fs.size_bytes, fs.export, tuple(fs.mount_options))


@dataclass
class _Plan:
    """wanted and granted are addresses, or instance ids for a driver whose access is by identity."""

    spec: FsSpec
    driver: Driver
    wanted: Set[str]
    granted: Set[str]
    stored: Dict[str, Tuple[str, Tuple[str, ...]]] = field(default_factory=dict, repr=False)  # identities
    result: Optional[Dict[str, Identity]] = field(default=None, repr=False)  # what set_identities returned


class _Rounds:
    """Per filesystem, in this process: how many syncs have begun reading its membership, and the
    last of them that reached the driver (or found nothing to do). A sync that took its ticket
    after its change committed is covered once a sync numbered above its ticket has succeeded:
    that one read the membership after the change."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._begun: Dict[int, int] = {}
        self._done: Dict[int, int] = {}

    def ticket(self, fs_id: int) -> int:
        with self._guard:
            return self._begun.get(fs_id, 0)

    def begin(self, fs_id: int) -> int:
        with self._guard:
            self._begun[fs_id] = self._begun.get(fs_id, 0) + 1
            return self._begun[fs_id]

    def done(self, fs_id: int, round_: int) -> None:
        with self._guard:
            self._done[fs_id] = max(self._done.get(fs_id, 0), round_)

    def covered(self, fs_id: int, ticket: int) -> bool:
        with self._guard:
            return self._done.get(fs_id, 0) > ticket


def by_identity(driver: Driver) -> bool:
    return driver.access_by == "identity"


class Access:
    """The wanted set of a filesystem is the addresses of its members; `grants` records the set its
    driver last accepted, so a driver is called only when the wanted set differs from it, and a
    failed call (grants unchanged) is retried by the next change or the reconcile.

    sync() runs after the change that alters membership has committed, and one filesystem's
    syncs are serialised (a lock per filesystem in the process, and on PostgreSQL an advisory
    lock held while the driver is called), so the last sync reads the newest membership and the
    driver never ends with an older set than the rows want."""

    def __init__(self, backends: Backends, sessions: sessionmaker, locks: Locks,
                 changed: Callable[[], None] = lambda: None) -> None:  # fmt: skip
        self.backends = backends
        self.sessions = sessions
        self.locks = locks
        self.changed = changed  # the agents' view holds identities: a changed set wakes the long-polls
        self.rounds = _Rounds()

    @staticmethod
    def _members(fs: db.Filesystem, *columns):
        """A select of these columns of the instances a filesystem belongs on, by its scope."""
        query = select(*columns)
        if fs.scope == "global":
            return query
        if fs.scope == "project":
            return query.where(db.Instance.project == fs.project)
        return query.join(db.Connection, db.Connection.instance_id == db.Instance.id).where(
            db.Connection.filesystem_id == fs.id, db.Instance.project == fs.project)  # fmt: skip

    @classmethod
    def members(cls, session: Session, fs: db.Filesystem) -> List[db.Instance]:
        """The instances a filesystem belongs on, by its scope."""
        return list(session.scalars(cls._members(fs, db.Instance)))

    @staticmethod
    def reached(session: Session, instance_id: str, project: str) -> List[db.Filesystem]:
        """The filesystems an instance reaches: global ones, its project's, those it is connected to."""
        connected = select(db.Connection.filesystem_id).where(db.Connection.instance_id == instance_id)
        return list(session.scalars(select(db.Filesystem).where(or_(
            db.Filesystem.scope == "global",
            (db.Filesystem.scope == "project") & (db.Filesystem.project == project),
            (db.Filesystem.project == project) & db.Filesystem.id.in_(connected),
        ))))  # fmt: skip

    @classmethod
    def wanted(cls, session: Session, fs: db.Filesystem) -> Set[str]:
        """The members' addresses: one column read, not an object made per member (a project of
        20,000 instances is read at each of its filesystems' changes)."""
        return {a for raw in session.scalars(cls._members(fs, db.Instance.addresses_json)) for a in json.loads(raw)}

    def _plan(self, session: Session, fs_id: int) -> Optional[_Plan]:
        fs = session.get(db.Filesystem, fs_id)
        if fs is None or fs.status != "available":
            return None
        driver = self.backends.get(fs.driver)
        if driver is None:
            log.warning("filesystem %s/%s: backend %r is not configured here; its access list was not updated",
                        fs.project, fs.name, fs.driver)  # fmt: skip
            return None
        if by_identity(driver):
            # The same contract keyed by instance: each member gets its own credential.
            stored = {g.instance_id: (g.secret, tuple(g.options)) for g in
                      session.scalars(select(db.IdentityGrant).where(db.IdentityGrant.filesystem_id == fs.id))}  # fmt: skip
            wanted = set(session.scalars(self._members(fs, db.Instance.id)))
            return _Plan(spec(fs), driver, wanted, set(stored), stored)
        granted = set(session.scalars(select(db.Grant.address).where(db.Grant.filesystem_id == fs.id)))
        return _Plan(spec(fs), driver, self.wanted(session, fs), granted)

    @staticmethod
    def _apply(plan: _Plan, force: bool) -> Optional[str]:
        """Call the driver when needed; the error message when it failed."""
        if plan.wanted == plan.granted and not force:
            return None
        try:
            if by_identity(plan.driver):
                plan.result = plan.driver.set_identities(plan.spec, frozenset(plan.wanted))
                if set(plan.result) != plan.wanted:
                    raise DriverError(f"the driver returned identities for {len(plan.result)} instances, "
                                      f"not the {len(plan.wanted)} wanted")  # fmt: skip
            else:
                plan.driver.set_access(plan.spec, frozenset(plan.wanted))
        except DriverError as e:
            log.error("access for %s/%s: %s", plan.spec.project, plan.spec.name, e)
            return str(e)
        return None

    @staticmethod
    def _record(session: Session, fs_id: int, plan: _Plan, error: Optional[str]) -> bool:
        """Store what the driver accepted; True when the agents' view changed (identities)."""
        fs = session.get(db.Filesystem, fs_id)
        if fs is None or fs.status != "available":
            return False  # deleted meanwhile: its grants went with it
        if error is not None:
            fs.status_detail = f"{ACCESS_FAILED}: {error}"
            return False
        if fs.status_detail.startswith(ACCESS_FAILED):
            fs.status_detail = ""
        if plan.result is not None:
            return Access._record_identities(session, fs_id, plan)
        if plan.wanted != plan.granted:
            session.execute(delete(db.Grant).where(db.Grant.filesystem_id == fs_id))
            session.add_all(db.Grant(filesystem_id=fs_id, address=a) for a in sorted(plan.wanted))
        return False

    @staticmethod
    def _record_identities(session: Session, fs_id: int, plan: _Plan) -> bool:
        result = {i: (ident.secret, tuple(ident.options)) for i, ident in (plan.result or {}).items()}
        if result == plan.stored:
            return False
        session.execute(delete(db.IdentityGrant).where(db.IdentityGrant.filesystem_id == fs_id))
        session.add_all(db.IdentityGrant(filesystem_id=fs_id, instance_id=i, secret=secret,
                                         options_json=json.dumps(list(options)))
                        for i, (secret, options) in sorted(result.items()))  # fmt: skip
        return True

    def sync(self, fs_id: int, force: bool = False) -> None:
        """Make the driver's access list equal to the addresses of the instances that should reach
        the filesystem (`force`: tell the driver even when grants say it has them, for the
        reconcile). A driver failure stays in status_detail; those it had keep it.

        Called after the change has committed: a sync that began reading after that, in this
        process, and succeeded has carried the change to the driver, so this one returns at once
        instead of queueing for a driver call of its own (a busy filesystem costs one driver call
        per round of waiters, not one per change)."""
        ticket = self.rounds.ticket(fs_id)
        with self.locks.access(fs_id):
            if not force and self.rounds.covered(fs_id, ticket):
                return
            round_ = self.rounds.begin(fs_id)
            if is_postgres(self.sessions):

                def locked(session: Session) -> Tuple[bool, bool]:
                    lock_access(session, fs_id)
                    plan = self._plan(session, fs_id)
                    if plan is None:
                        return False, True
                    error = self._apply(plan, force)
                    return self._record(session, fs_id, plan, error), error is None

                changed, applied = run(self.sessions, locked)
            else:
                # SQLite: one process, so the lock above serialises; the write lock is not held
                # while the driver works, or every other write would wait for it.
                plan = run(self.sessions, lambda session: self._plan(session, fs_id), write=False)
                changed, applied = False, True
                if plan is not None:
                    error = self._apply(plan, force)
                    changed = run(self.sessions, lambda session: self._record(session, fs_id, plan, error))
                    applied = error is None
            if applied:
                self.rounds.done(fs_id, round_)
        if changed:
            self.changed()

    def sync_all(self, fs_ids: Iterable[int]) -> None:
        for fs_id in fs_ids:
            self.sync(fs_id)
