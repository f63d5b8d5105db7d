"""Access: who should reach a filesystem (by scope), and keeping its backend's access list equal to that set."""

from __future__ import annotations

import logging
from typing import Iterable, List, Set

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from .. import db
from ..backends import Backends
from ..drivers import FsSpec
from ..errors import DriverError

__all__ = ["Access", "spec"]

log = logging.getLogger(__name__)

ACCESS_FAILED = "access update failed"


def spec(fs: db.Filesystem) -> FsSpec:
    return FsSpec(fs.name, fs.project, fs.size_bytes, fs.export)


class Access:
    """The wanted set of a filesystem is the addresses of its members; `grants` records the set its
    driver last accepted, so a driver is called only when the wanted set differs from it, and a
    failed call (grants unchanged) is retried by the next change."""

    def __init__(self, backends: Backends) -> None:
        self.backends = backends

    @staticmethod
    def members(session: Session, fs: db.Filesystem) -> List[db.Instance]:
        """The instances a filesystem belongs on, by its scope."""
        if fs.scope == "global":
            return list(session.scalars(select(db.Instance)))
        if fs.scope == "project":
            return list(session.scalars(select(db.Instance).where(db.Instance.project == fs.project)))
        return list(
            session.scalars(
                select(db.Instance).join(db.Connection, db.Connection.instance_id == db.Instance.id)
                .where(db.Connection.filesystem_id == fs.id)
            )
        )  # fmt: skip

    @staticmethod
    def reached(session: Session, instance_id: str, project: str) -> List[db.Filesystem]:
        """The filesystems an instance reaches: global ones, its project's, those it is connected to."""
        connected = select(db.Connection.filesystem_id).where(db.Connection.instance_id == instance_id)
        return list(session.scalars(select(db.Filesystem).where(or_(
            db.Filesystem.scope == "global",
            (db.Filesystem.scope == "project") & (db.Filesystem.project == project),
            db.Filesystem.id.in_(connected),
        ))))  # fmt: skip

    def sync(self, session: Session, fs: db.Filesystem) -> None:
        """Make the driver's access list equal to the addresses of the instances that should reach fs.
        A driver failure stays in status_detail (the filesystem stays available to those it had)."""
        if fs.status != "available":
            return
        driver = self.backends.get(fs.driver)
        if driver is None:
            log.warning("filesystem %s/%s: backend %r is not configured here; its access list was not updated",
                        fs.project, fs.name, fs.driver)  # fmt: skip
            return
        wanted: Set[str] = {a for inst in self.members(session, fs) for a in inst.addresses}
        granted = set(session.scalars(select(db.Grant.address).where(db.Grant.filesystem_id == fs.id)))
        if wanted != granted:
            try:
                driver.set_access(spec(fs), frozenset(wanted))
            except DriverError as e:
                log.error("access for %s/%s: %s", fs.project, fs.name, e)
                fs.status_detail = f"{ACCESS_FAILED}: {e}"
                session.commit()
                return
        session.execute(delete(db.Grant).where(db.Grant.filesystem_id == fs.id))
        session.add_all(db.Grant(filesystem_id=fs.id, address=a) for a in sorted(wanted))
        if fs.status_detail.startswith(ACCESS_FAILED):
            fs.status_detail = ""
        session.commit()

    def sync_all(self, session: Session, filesystems: Iterable[db.Filesystem]) -> None:
        for fs in filesystems:
            self.sync(session, fs)
