"""The API's rules between the callers (HTTP routers, the CLI) and the database: filesystems, instances, access."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sqlalchemy.orm import sessionmaker

from ..backends import Backends
from .access import Access
from .filesystems import FilesystemService
from .instances import InstanceService
from .last_seen import FLUSH_INTERVAL, LastSeen
from .tx import Locks
from .worker import DELETE_WAIT, ReconcileReport, Worker

__all__ = ["Services", "make_services", "Access", "FilesystemService", "InstanceService", "Worker",
           "ReconcileReport", "LastSeen", "FLUSH_INTERVAL"]  # fmt: skip


@dataclass
class Services:
    filesystems: FilesystemService
    instances: InstanceService
    access: Access
    worker: Worker


def make_services(sessions: sessionmaker, backends: Backends, changed: Callable[[], None],
                  reconcile_every: float = 300.0, delete_wait: float = DELETE_WAIT) -> Services:  # fmt: skip
    """`changed` is called after every commit that alters what an agent sees (wakes long-polls).
    The worker is not started here: the server starts it (create_app), the CLI drains it."""
    locks = Locks(sessions)
    access = Access(backends, sessions, locks, changed)
    worker = Worker(sessions, backends, access, locks, changed, reconcile_every, delete_wait=delete_wait)
    return Services(
        filesystems=FilesystemService(sessions, backends, access, changed, worker.kick),
        instances=InstanceService(sessions, access, changed, worker.kick),
        access=access,
        worker=worker,
    )
