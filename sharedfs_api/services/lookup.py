"""Rows by the names in a URL, or NotFound with the message the API answers."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import db
from ..errors import NotFound

__all__ = ["find_fs", "find_instance"]


def find_fs(session: Session, tenant: str, name: str) -> db.Filesystem:
    """The filesystem a caller may see under this tenant: its own, or a global one."""
    fs = session.scalar(select(db.Filesystem).where(db.Filesystem.project == tenant, db.Filesystem.name == name))
    if fs is None:
        fs = session.scalar(select(db.Filesystem).where(db.Filesystem.scope == "global", db.Filesystem.name == name))
    if fs is None:
        raise NotFound(f"filesystem {name!r} not found in project {tenant!r}")
    return fs


def find_instance(session: Session, tenant: str, instance_id: str, hint: str = "") -> db.Instance:
    """The instance registered in this tenant (an instance never changes project)."""
    instance = session.get(db.Instance, instance_id)
    if instance is None or instance.project != tenant:
        raise NotFound(f"instance {instance_id!r} is not registered in project {tenant!r}{hint}")
    return instance
