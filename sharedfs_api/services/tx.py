"""Transactions with bounded, jittered retries on both databases, and the locks that serialise one name or filesystem."""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
import zlib
from typing import Callable, Dict, Iterator, Optional, TypeVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from .. import db
from ..errors import Conflict

__all__ = ["run", "Locks", "is_postgres", "ATTEMPTS"]

log = logging.getLogger(__name__)

T = TypeVar("T")

ATTEMPTS = 10  # a transaction that lost this many races in a row gives up with 409
# PostgreSQL: serialization_failure, deadlock_detected, lock_not_available.
TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03"}

# Advisory lock classes on PostgreSQL (the two-key form: class, id).
NAME_LOCK = 0x5F51  # one filesystem name, while a PUT checks it and inserts
ACCESS_LOCK = 0x5F52  # one filesystem's access list, while it is computed and sent to the driver
JOB_LOCK = 0x5F53  # one filesystem's create or delete job, held by the worker doing it


def is_postgres(sessions: sessionmaker) -> bool:
    return sessions.kw["bind"].dialect.name == "postgresql"


def _transient(error: DBAPIError) -> bool:
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    if code in TRANSIENT_SQLSTATES:
        return True
    message = str(error.orig).lower()
    return "database is locked" in message or "database table is locked" in message or "busy" in message


def run(sessions: sessionmaker, work: Callable[[Session], T], write: bool = True) -> T:
    """work(session) in one transaction, committed. A serialization failure, deadlock or busy
    SQLite runs it again from the start (bounded, with jittered backoff), and so does a unique or
    foreign-key violation (a concurrent change got there first: the retry sees it and answers as
    for the state it finds). What still fails after ATTEMPTS is a 409, never a 500.
    `work` must be safe to run again: it may only raise ApiError, or call idempotent drivers."""
    last: Optional[Exception] = None
    for attempt in range(ATTEMPTS):
        with sessions() as session:
            if write:
                session.connection(execution_options={db.WRITE: True})
            try:
                result = work(session)
                session.commit()
                return result
            except IntegrityError as e:
                last = e
            except DBAPIError as e:
                if not _transient(e) or e.connection_invalidated:
                    raise
                last = e
        log.debug("transaction attempt %d lost a race: %s", attempt + 1, last)
        time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))
    if isinstance(last, IntegrityError):
        raise Conflict("the change conflicts with a concurrent change to the same resource; retry")
    raise Conflict("the database stayed busy with concurrent changes; retry")


def lock_name(session: Session, name: str) -> None:
    """Serialise every PUT of one filesystem name, across projects and processes (PostgreSQL;
    SQLite's BEGIN IMMEDIATE already serialises every write)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:c, :k)"),
                        {"c": NAME_LOCK, "k": zlib.crc32(name.encode()) & 0x7FFFFFFF})  # fmt: skip


def lock_access(session: Session, fs_id: int) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:c, :k)"), {"c": ACCESS_LOCK, "k": fs_id})


class Locks:
    """In-process locks per filesystem (access lists; jobs), and job claims that hold across
    processes on PostgreSQL: a session advisory lock on a connection of its own, which the
    server releases when the process dies, so a job left by `kill -9` is free at once."""

    def __init__(self, sessions: sessionmaker) -> None:
        self.engine = sessions.kw["bind"]
        self.postgres = self.engine.dialect.name == "postgresql"
        self._guard = threading.Lock()
        self._access: Dict[int, threading.Lock] = {}
        self._jobs: set = set()

    @contextlib.contextmanager
    def access(self, fs_id: int) -> Iterator[None]:
        with self._guard:
            lock = self._access.setdefault(fs_id, threading.Lock())
        with lock:
            yield

    @contextlib.contextmanager
    def job(self, fs_id: int) -> Iterator[bool]:
        """Yields True when this thread holds fs_id's job, False when another worker has it."""
        with self._guard:
            if fs_id in self._jobs:
                yield False
                return
            self._jobs.add(fs_id)
        try:
            if not self.postgres:
                yield True
                return
            with self.engine.connect() as connection:
                connection = connection.execution_options(isolation_level="AUTOCOMMIT")
                params = {"c": JOB_LOCK, "k": fs_id}
                got = connection.execute(text("SELECT pg_try_advisory_lock(:c, :k)"), params).scalar()
                try:
                    yield bool(got)
                finally:
                    if got:
                        connection.execute(text("SELECT pg_advisory_unlock(:c, :k)"), params)
        finally:
            with self._guard:
                self._jobs.discard(fs_id)
