"""Filesystems: create (by the chosen backend), list, show, delete, and connecting instances to them."""

from __future__ import annotations

import json
import logging
from typing import Callable, List, Optional, Tuple

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from .. import db
from ..auth import Principal
from ..backends import STATIC, Backends
from ..drivers import Driver, FsSpec
from ..errors import BadRequest, Conflict, Forbidden, NotFound
from ..representations import fs_entry, fs_instance_entry
from ..schemas import FsEntryIn, check_name, parse_size
from .access import Access
from .lookup import find_fs, find_instance
from .tx import lock_name, run

__all__ = ["FilesystemService"]

log = logging.getLogger(__name__)


class FilesystemService:
    """Every change commits, then calls `changed()` so long-polls (here and in other processes) wake."""

    def __init__(self, sessions: sessionmaker, backends: Backends, access: Access, changed: Callable[[], None],
                 kick: Callable[[], None]) -> None:  # fmt: skip
        self.sessions = sessions
        self.backends = backends
        self.access = access
        self.changed = changed
        self.kick = kick  # wakes the worker: a create or delete is waiting

    def list_fs(self, principal: Principal, tenant: str) -> List[dict]:
        principal.require_manager(tenant)
        with self.sessions() as session:
            rows = session.scalars(
                select(db.Filesystem)
                .where(or_(db.Filesystem.project == tenant, db.Filesystem.scope == "global"))
                .order_by(db.Filesystem.name)
            )
            return [fs_entry(fs) for fs in rows]

    def get_fs(self, principal: Principal, tenant: str, name: str) -> dict:
        principal.require_manager(tenant)
        with self.sessions() as session:
            return fs_entry(find_fs(session, tenant, name))

    def _backend(self, principal: Principal, entry: FsEntryIn) -> Tuple[str, Driver, str]:
        """The backend that makes this entry, its driver, and the entry's fs_type."""
        backend, driver = self.backends.for_new(entry.fs_type, entry.export)
        if backend == STATIC and not principal.admin:
            raise Forbidden("only an admin token may register an existing export (static driver)")
        fs_type = entry.fs_type or driver.fs_type
        if not fs_type:
            raise BadRequest("fs_entry.fs_type is required for an existing export")
        return backend, driver, fs_type

    def put_fs(self, principal: Principal, tenant: str, name: str, entry: FsEntryIn) -> Tuple[int, dict]:
        """202 with status `creating` when a backend makes it (the worker does; the row says so
        meanwhile), 201 for a static export (nothing to make), 200 when an identical one exists
        (202 while it is still being made), 409 when a different one exists or it is being deleted."""
        principal.require_manager(tenant)
        check_name("tenant", tenant)
        if entry.name is not None and entry.name != name:
            raise BadRequest(f"fs_entry.name {entry.name!r} differs from the name in the URL {name!r}")
        if entry.project is not None and entry.project != tenant:
            raise BadRequest(f"fs_entry.project {entry.project!r} differs from the tenant in the URL {tenant!r}")
        if entry.scope == "global" and not principal.admin:
            raise Forbidden("only an admin token may create a global filesystem")
        backend, driver, fs_type = self._backend(principal, entry)
        wanted = {
            "size": entry.size, "scope": entry.scope, "fs_type": fs_type,
            "mount_point": entry.mount_point or f"/mnt/{name}",
            "mount_options_json": json.dumps(entry.mount_options),
        }  # fmt: skip
        size_bytes = parse_size(entry.size)
        static_export = driver.create(FsSpec(name, tenant, size_bytes, entry.export)) if backend == STATIC else ""

        def insert(session: Session) -> Tuple[int, dict, Optional[int]]:
            lock_name(session, name)  # one name's PUTs in turn, in every project and process
            existing = self._same_name(session, tenant, name, entry, wanted)
            if existing is not None:
                return (202 if existing.status == "creating" else 200), fs_entry(existing), None
            fs = db.Filesystem(project=tenant, name=name, size_bytes=size_bytes, driver=backend, attempts=0,
                               status="available" if backend == STATIC else "creating",
                               export=static_export, status_detail="", **wanted)  # fmt: skip
            session.add(fs)
            session.flush()
            return (201 if backend == STATIC else 202), fs_entry(fs), fs.id

        code, result, fs_id = run(self.sessions, insert)
        if fs_id is not None:
            if backend == STATIC:
                self.access.sync(fs_id)
            else:
                self.kick()  # the worker makes it; the row never claims an export before then
            self.changed()
        return code, result

    @staticmethod
    def _same_name(session: Session, tenant: str, name: str, entry: FsEntryIn, wanted: dict) -> Optional[db.Filesystem]:
        """The identical filesystem if it exists already; Conflict if one with this name differs
        or is being deleted (an identical PUT must not answer for a filesystem about to vanish)."""
        same_name = session.scalars(
            select(db.Filesystem).where(
                db.Filesystem.name == name,
                or_(db.Filesystem.project == tenant, db.Filesystem.scope == "global", entry.scope == "global"),
            )
        ).all()
        for existing in same_name:
            mine = existing.project == tenant
            same = (
                mine
                and all(getattr(existing, k) == v for k, v in wanted.items())
                and (entry.export is None or entry.export == existing.export)
            )
            if same and existing.status == "deleting":
                raise Conflict(f"filesystem {name!r} is being deleted; create it again once it is gone")
            if same:
                return existing
            where = ("in this project" if mine else f"as a global filesystem of project {existing.project!r}"
                     if existing.scope == "global" else f"in project {existing.project!r}")  # fmt: skip
            raise Conflict(f"filesystem {name!r} already exists {where} with other settings")
        return None

    def delete_fs(self, principal: Principal, tenant: str, name: str) -> dict:
        """202 with status `deleting`: it leaves every view at once and the worker has the driver
        destroy it (a static registration, with nothing to destroy, is gone at once)."""
        principal.require_manager(tenant)

        def mark(session: Session) -> Tuple[dict, bool]:
            fs = find_fs(session, tenant, name)
            if fs.project != tenant or (fs.scope == "global" and not principal.admin):
                raise Forbidden(f"filesystem {name!r} is global; only an admin token may delete it")
            if fs.status != "deleting":  # a repeated DELETE does not restart the wait for the unmounts
                fs.deleting_since = db.now()
            fs.status, fs.status_detail = "deleting", ""
            entry = fs_entry(fs)
            if fs.driver == STATIC:
                session.delete(fs)
                return entry, False
            return entry, True

        entry, queued = run(self.sessions, mark)
        self.changed()  # instances stop seeing it (and unmount) while the driver works
        if queued:
            self.kick()
        return entry

    def fs_instances(self, principal: Principal, tenant: str, name: str) -> List[dict]:
        """The instances the filesystem belongs on (connected: true), and those that still
        report a state for it after leaving (connected: false; "unmounted" once they let go)."""
        principal.require_manager(tenant)
        with self.sessions() as session:
            fs = find_fs(session, tenant, name)
            members = {i.id: i for i in self.access.members(session, fs)}
            states = {s.instance_id: s for s in session.scalars(
                select(db.MountState).where(db.MountState.filesystem_id == fs.id))}  # fmt: skip
            former = [session.get(db.Instance, i) for i in states if i not in members]
            everyone = list(members.values()) + [i for i in former if i is not None]
            if not principal.admin:
                everyone = [i for i in everyone if i.project == tenant]
            return [fs_instance_entry(i, i.id in members, states.get(i.id)) for i in sorted(everyone, key=lambda i: i.id)]

    def connect(self, principal: Principal, tenant: str, name: str, instance_id: str) -> Tuple[int, dict]:
        principal.require_manager(tenant)

        def link(session: Session) -> Tuple[int, int]:
            fs = find_fs(session, tenant, name)
            find_instance(session, tenant, instance_id, f" (PUT /v1.1/{tenant}/os-instances/{instance_id} first)")
            if session.get(db.Connection, (fs.id, instance_id)) is not None:
                return 200, fs.id
            session.add(db.Connection(filesystem_id=fs.id, instance_id=instance_id))
            return 201, fs.id

        code, fs_id = run(self.sessions, link)
        self.access.sync(fs_id)
        if code == 201:
            self.changed()
        return code, {"id": instance_id}

    def disconnect(self, principal: Principal, tenant: str, name: str, instance_id: str) -> None:
        """Only an instance of the tenant's own project: a global filesystem's other connections
        are not this project's to undo (404, as for an instance that does not exist)."""
        principal.require_manager(tenant)

        def unlink(session: Session) -> int:
            fs = find_fs(session, tenant, name)
            find_instance(session, tenant, instance_id)
            link = session.get(db.Connection, (fs.id, instance_id))
            if link is None:
                raise NotFound(f"instance {instance_id!r} is not connected to {name!r}")
            session.delete(link)
            return fs.id

        fs_id = run(self.sessions, unlink)
        self.access.sync(fs_id)
        self.changed()
