"""The worker: carries out creates and deletes outside the requests, resumes them after a crash, and reconciles drivers with the rows."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Set

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from .. import db
from ..backends import STATIC, Backends
from ..drivers import Driver, FsSpec
from ..errors import DriverError
from .access import Access, spec
from .tx import Locks, run

__all__ = ["Worker", "ReconcileReport", "MAX_ATTEMPTS"]

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5  # a create that a crash interrupted this often is given up (status error)
PENDING = ("creating", "deleting")
# A delete waits for an instance's unmount only while its agent shows signs of life: a long-poll
# (last_seen, written up to a minute late, and a poll is held up to a minute or two) or a report.
AGENT_GONE_AFTER = dt.timedelta(minutes=3)
DELETE_WAIT = 600.0  # the longest a delete waits for the unmounts (serve --delete-wait)


@dataclass
class ReconcileReport:
    orphans_removed: List[str] = field(default_factory=list)  # backend/volume
    missing: List[str] = field(default_factory=list)  # project/name marked error
    access_synced: int = 0


def with_options(fs: Optional[db.Filesystem], extra: Sequence[str]) -> List[str]:
    """The filesystem's mount options, then the backend's (driver.mount_options) whose key it lacks."""
    own = fs.mount_options if fs is not None else []
    keys = {o.partition("=")[0] for o in own}
    return [*own, *(o for o in extra if o.partition("=")[0] not in keys)]


class Worker:
    """Jobs are the rows in status `creating` or `deleting`: nothing else records them, so a job
    survives any crash with its row. A worker claims one with Locks.job (in-process; on
    PostgreSQL an advisory lock the server drops with the connection of a dead process), so two
    workers never run one job, and a job whose worker died is free at once. A create resumed
    after a crash first removes what the interrupted attempt may have left (unless another row
    of that backend has the name), then makes it again."""

    def __init__(self, sessions: sessionmaker, backends: Backends, access: Access, locks: Locks,
                 changed: Callable[[], None], reconcile_every: float = 300.0, threads: int = 2,
                 delete_wait: float = DELETE_WAIT) -> None:  # fmt: skip
        self.sessions = sessions
        self.backends = backends
        self.access = access
        self.locks = locks
        self.changed = changed
        self.reconcile_every = reconcile_every
        self.threads = threads
        self.delete_wait = dt.timedelta(seconds=delete_wait)
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self._threads: List[threading.Thread] = []
        self._reconcile_lock = threading.Lock()
        self.last_reconcile = 0.0

    # -- the thread ------------------------------------------------------------------------

    def kick(self) -> None:
        self.wake.set()

    def start(self) -> None:
        for n in range(self.threads):
            thread = threading.Thread(target=self._loop, args=(n == 0,), name=f"sharedfs-worker-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 1.0) -> None:
        """Stops taking jobs; one under way is left to finish or to be resumed by the next start."""
        self.stopping.set()
        self.wake.set()
        for thread in self._threads:
            thread.join(timeout)

    def _loop(self, reconciles: bool) -> None:
        while not self.stopping.is_set():
            try:
                if reconciles and time.monotonic() - self.last_reconcile >= self.reconcile_every:
                    self.reconcile()
                self.run_pending()
            except Exception:  # the worker must outlive a database restart or a driver bug
                log.exception("worker pass failed; retrying")
                self.stopping.wait(1.0)
            # Polled as well as kicked: other processes (and the CLI) queue jobs too.
            self.wake.wait(1.0)
            self.wake.clear()

    # -- jobs ------------------------------------------------------------------------------

    def pending(self) -> List[int]:
        """The jobs that can run now, in one query: every create, and every delete no instance
        holds up any more (invariant 14). A delete waits while an instance has reported a state
        other than `unmounted` for it, unless its agent has shown no sign of life for
        AGENT_GONE_AFTER, or the state is an `error` from before the DELETE (a refused or failed
        mount: nothing to let go of; an agent that held a mount reports again as it lets go), or
        `delete_wait` has passed since the DELETE (a row made `deleting` before that column
        existed has no deleting_since and waits no more)."""
        now = db.now()
        alive = now - AGENT_GONE_AFTER
        holds_on = exists().where(
            db.MountState.filesystem_id == db.Filesystem.id,
            db.MountState.state != "unmounted",
            ~and_(db.MountState.state == "error", db.MountState.updated_at < db.Filesystem.deleting_since),
            db.Instance.id == db.MountState.instance_id,
            or_(db.Instance.last_seen >= alive, db.MountState.updated_at >= alive),
        )
        ready = or_(
            db.Filesystem.status == "creating",
            and_(db.Filesystem.status == "deleting",
                 or_(db.Filesystem.deleting_since.is_(None), db.Filesystem.deleting_since < now - self.delete_wait,
                     ~holds_on)),
        )  # fmt: skip
        with self.sessions() as session:
            return list(session.scalars(select(db.Filesystem.id).where(ready).order_by(db.Filesystem.id)))

    def run_pending(self) -> int:
        """Every job no other worker holds, once; the number done."""
        done = 0
        for fs_id in self.pending():
            if self.stopping.is_set():
                break
            with self.locks.job(fs_id) as mine:
                if mine:
                    done += self._run(fs_id)
        return done

    def drain(self, timeout: float = 300.0) -> None:
        """Until no job can run (the CLI's reconcile; tests). A delete still waiting for instances
        to unmount is left as it is: a server's worker, or a later reconcile, carries it out."""
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() > deadline:
                raise TimeoutError("jobs still pending")
            if not self.run_pending():
                time.sleep(0.2)  # held by another worker

    def _run(self, fs_id: int) -> int:
        with self.sessions() as session:
            fs = session.get(db.Filesystem, fs_id)
            if fs is None or fs.status not in PENDING:
                return 0  # done by another worker before we held it
            status = fs.status
        if status == "creating":
            self._create(fs_id)
        else:
            self._delete(fs_id)
        return 1

    @staticmethod
    def _name_shared(session: Session, fs: db.Filesystem) -> bool:
        """Another row of the same backend has this name (another project's): what the driver
        holds under it may be that row's, so it is never destroyed on this row's behalf."""
        return session.scalar(select(db.Filesystem.id).where(
            db.Filesystem.driver == fs.driver, db.Filesystem.name == fs.name, db.Filesystem.id != fs.id
        ).limit(1)) is not None  # fmt: skip

    def _create(self, fs_id: int) -> None:
        def claim(session: Session):
            fs = session.get(db.Filesystem, fs_id)
            if fs is None or fs.status != "creating":
                return None
            fs.attempts += 1
            return spec(fs), fs.driver, fs.attempts, self._name_shared(session, fs)

        claimed = run(self.sessions, claim)
        if claimed is None:
            return
        fs_spec, backend, attempts, shared = claimed
        driver = self.backends.get(backend)
        export, error, options = "", None, ()
        if driver is None:
            error = f"backend {backend!r} is not configured on this server"
        elif attempts > MAX_ATTEMPTS:
            error = f"create interrupted {attempts - 1} times; given up"
        else:
            try:
                if attempts > 1 and not shared:
                    log.info("resuming create of %s/%s: removing what attempt %d left", fs_spec.project,
                             fs_spec.name, attempts - 1)  # fmt: skip
                    driver.delete(fs_spec)
                export = driver.create(fs_spec)
                options = driver.mount_options(fs_spec)
            except DriverError as e:
                error = str(e)
                log.error("create %s/%s: %s", fs_spec.project, fs_spec.name, e)

        def finish(session: Session) -> bool:
            values = {"export": export, "status": "available", "status_detail": ""} if error is None \
                else {"export": "", "status": "error", "status_detail": error}  # fmt: skip
            if error is None and options:
                values["mount_options_json"] = json.dumps(with_options(session.get(db.Filesystem, fs_id), options))
            result = session.execute(update(db.Filesystem).where(
                db.Filesystem.id == fs_id, db.Filesystem.status == "creating").values(**values))  # fmt: skip
            return result.rowcount == 1

        # A DELETE that came meanwhile made the row `deleting`: its job removes what we made.
        if run(self.sessions, finish) and error is None:
            self.access.sync(fs_id)
        self.changed()

    def _delete(self, fs_id: int) -> None:
        with self.sessions() as session:
            fs = session.get(db.Filesystem, fs_id)
            if fs is None or fs.status != "deleting":
                return
            fs_spec, backend, shared = spec(fs), fs.driver, self._name_shared(session, fs)
        driver = self.backends.get(backend)
        try:
            if driver is None:
                log.warning("delete %s/%s: backend %r is not configured here; forgetting it without the driver",
                            fs_spec.project, fs_spec.name, backend)  # fmt: skip
            elif not shared:
                driver.delete(fs_spec)
        except DriverError as e:
            log.error("delete %s/%s: %s", fs_spec.project, fs_spec.name, e)
            detail = f"delete failed: {e}"
            run(self.sessions, lambda session: session.execute(update(db.Filesystem).where(
                db.Filesystem.id == fs_id, db.Filesystem.status == "deleting").values(
                status="error", export="", status_detail=detail)))  # fmt: skip
            self.changed()
            return
        run(self.sessions, lambda session: session.execute(db.Filesystem.__table__.delete().where(
            db.Filesystem.id == fs_id, db.Filesystem.status == "deleting")))  # fmt: skip
        self.changed()

    # -- reconcile -------------------------------------------------------------------------

    def reconcile(self) -> ReconcileReport:
        """Drivers against rows, like Manila's ensure_shares: what a backend holds under our names
        with no row is removed (a create or delete cut short before its row said so); a row
        `available` whose volume is gone becomes `error` with no export (not made again: an empty
        volume would hide the loss of the data); every available filesystem's access list is
        sent again, whole."""
        with self._reconcile_lock:
            self.last_reconcile = time.monotonic()
            report = ReconcileReport()
            for backend, driver in self.backends.drivers.items():
                if backend != STATIC:
                    self._reconcile_backend(backend, driver, report)
            with self.sessions() as session:
                available = list(session.scalars(select(db.Filesystem.id).where(db.Filesystem.status == "available")))
            for fs_id in available:
                self.access.sync(fs_id, force=True)
            report.access_synced = len(available)
            if report.orphans_removed or report.missing:
                self.changed()
            return report

    def _rows(self, backend: str) -> List[db.Filesystem]:
        with self.sessions() as session:
            return list(session.scalars(select(db.Filesystem).where(db.Filesystem.driver == backend)))

    def _reconcile_backend(self, backend: str, driver: Driver, report: ReconcileReport) -> None:
        try:
            # Listed before the rows are read: a row always exists before its volume, so a
            # volume listed here with no row afterwards has none (or its delete is under way).
            held: Optional[Set[str]] = driver.inventory()
        except DriverError as e:
            log.error("reconcile %s: %s", backend, e)
            return
        if held is None:
            return  # this driver cannot list what it holds
        names = {fs.name for fs in self._rows(backend)}
        for name in sorted(held - names):
            with self.sessions() as session:  # read again: one made since the first read is not an orphan
                if session.scalar(select(db.Filesystem.id).where(db.Filesystem.driver == backend,
                                                                 db.Filesystem.name == name).limit(1)) is not None:  # fmt: skip
                    continue
            log.warning("reconcile %s: %r has no row; removing it", backend, name)
            try:
                driver.delete(FsSpec(name, "", 0, ""))
                report.orphans_removed.append(f"{backend}/{name}")
            except DriverError as e:
                log.error("reconcile %s: removing %r: %s", backend, name, e)
        gone = [fs for fs in self._rows(backend) if fs.status == "available" and fs.name not in held]
        if not gone:
            return
        try:
            held = driver.inventory() or set()  # again: one made since the first listing is not missing
        except DriverError as e:
            log.error("reconcile %s: %s", backend, e)
            return
        for fs in gone:
            if fs.name in held:
                continue
            log.error("reconcile %s: %s/%s is available but its volume is gone", backend, fs.project, fs.name)

            def mark(session: Session, fs_id: int = fs.id) -> int:
                return session.execute(update(db.Filesystem).where(
                    db.Filesystem.id == fs_id, db.Filesystem.status == "available").values(
                    status="error", export="", status_detail="its volume is missing from the backend (reconcile)"
                )).rowcount  # fmt: skip

            if run(self.sessions, mark):
                report.missing.append(f"{fs.project}/{fs.name}")
