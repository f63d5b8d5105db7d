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

__all__ = ["Services", "make_services", "Access", "FilesystemService", "InstanceService", "LastSeen", "FLUSH_INTERVAL"]


@dataclass
class Services:
    filesystems: FilesystemService
    instances: InstanceService
    access: Access


def make_services(sessions: sessionmaker, backends: Backends, changed: Callable[[], None]) -> Services:
    """`changed` is called after every commit that alters what an agent sees (wakes long-polls)."""
    access = Access(backends)
    return Services(
        filesystems=FilesystemService(sessions, backends, access, changed),
        instances=InstanceService(sessions, access, changed),
        access=access,
    )
