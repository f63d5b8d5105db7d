"""The API's rules, between HTTP and the database: filesystems, scopes, instances, drivers, access grants."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Set, Tuple

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session, sessionmaker

from . import db
from .auth import Principal
from .drivers import Driver, FsSpec
from .errors import BadRequest, Conflict, DriverError, Forbidden, NotFound
from .schemas import FsEntryIn, InstanceIn, StateIn, check_name, parse_size

__all__ = ["Service", "fs_entry", "agent_entry"]

log = logging.getLogger(__name__)


def fs_entry(fs: db.Filesystem) -> dict:
    """The seed's fs_entry as the API answers it."""
    return {
        "name": fs.name,
        "size": fs.size,
        "scope": fs.scope,
        "project": fs.project,
        "fs_type": fs.fs_type,
        "mount_point": fs.mount_point,
        "mount_options": fs.mount_options,
        "export": fs.export,
        "status": fs.status,
        "status_detail": fs.status_detail,
    }


def agent_entry(fs: db.Filesystem) -> dict:
    """One entry of the agent's desired-state document (DESIGN.md)."""
    return {
        "name": fs.name,
        "fs_type": fs.fs_type,
        "export": fs.export,
        "mount_point": fs.mount_point,
        "mount_options": fs.mount_options,
        "scope": fs.scope,
        "size": fs.size,
    }


@dataclass
class Service:
    """Every change commits, then calls `changed()` so long-polls (here and in other processes) wake."""

    sessions: sessionmaker
    drivers: Dict[str, Driver]  # "static" plus the configured one
    default_driver: str
    changed: Callable[[], None]

    # -- filesystems ------------------------------------------------------------------------

    def _fs(self, session: Session, tenant: str, name: str, principal: Principal) -> db.Filesystem:
        """The filesystem a caller may see under this tenant: its own, or a global one."""
        fs = session.scalar(select(db.Filesystem).where(db.Filesystem.project == tenant, db.Filesystem.name == name))
        if fs is None:
            fs = session.scalar(
                select(db.Filesystem).where(db.Filesystem.scope == "global", db.Filesystem.name == name)
            )
        if fs is None:
            raise NotFound(f"filesystem {name!r} not found in project {tenant!r}")
        return fs

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
            return fs_entry(self._fs(session, tenant, name, principal))

    def put_fs(self, principal: Principal, tenant: str, name: str, entry: FsEntryIn) -> Tuple[int, dict]:
        """201 with the new entry, 200 when an identical one exists, 409 when a different one does."""
        principal.require_manager(tenant)
        check_name("tenant", tenant)
        if entry.name is not None and entry.name != name:
            raise BadRequest(f"fs_entry.name {entry.name!r} differs from the name in the URL {name!r}")
        if entry.project is not None and entry.project != tenant:
            raise BadRequest(f"fs_entry.project {entry.project!r} differs from the tenant in the URL {tenant!r}")
        if entry.scope == "global" and not principal.admin:
            raise Forbidden("only an admin token may create a global filesystem")
        driver_name = "static" if entry.export is not None else self.default_driver
        if driver_name == "static" and entry.export is None:
            raise BadRequest(
                "fs_entry.export is required: this server creates no filesystems itself "
                "(it runs the static driver; see serve --driver)"
            )
        if driver_name == "static" and not principal.admin:
            raise Forbidden("only an admin token may register an existing export (static driver)")
        driver = self.drivers[driver_name]
        fs_type = entry.fs_type or driver.fs_type
        if not fs_type:
            raise BadRequest("fs_entry.fs_type is required for an existing export")
        if driver_name != "static" and fs_type != driver.fs_type:
            raise BadRequest(f"fs_entry.fs_type {fs_type!r}: this server's {driver.name} driver makes {driver.fs_type}")
        wanted = {
            "size": entry.size, "scope": entry.scope, "fs_type": fs_type,
            "mount_point": entry.mount_point or f"/mnt/{name}",
            "mount_options_json": json.dumps(entry.mount_options),
        }  # fmt: skip
        with self.sessions() as session:
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
                if same:
                    return 200, fs_entry(existing)
                where = "in this project" if mine else f"as a global filesystem of project {existing.project!r}"
                raise Conflict(f"filesystem {name!r} already exists {where} with other settings")
            fs = db.Filesystem(project=tenant, name=name, size_bytes=parse_size(entry.size), driver=driver_name,
                               status="creating", export="", status_detail="", **wanted)  # fmt: skip
            session.add(fs)
            session.commit()
        # The driver runs outside any transaction: it may take seconds. The row says "creating"
        # meanwhile and never claims an export the driver has not made.
        try:
            export = driver.create(FsSpec(name, tenant, fs.size_bytes, entry.export or ""))
            status, detail = "available", ""
        except DriverError as e:
            export, status, detail = "", "error", str(e)
            log.error("create %s/%s: %s", tenant, name, e)
        with self.sessions() as session:
            fs = session.get(db.Filesystem, fs.id)
            fs.export, fs.status, fs.status_detail = export, status, detail
            session.commit()
            if status == "available":
                self._sync_access(session, fs)
            result = fs_entry(fs)
        self.changed()
        return 201, result

    def delete_fs(self, principal: Principal, tenant: str, name: str) -> None:
        principal.require_manager(tenant)
        with self.sessions() as session:
            fs = self._fs(session, tenant, name, principal)
            if fs.project != tenant or (fs.scope == "global" and not principal.admin):
                raise Forbidden(f"filesystem {name!r} is global; only an admin token may delete it")
            fs.status = "deleting"
            session.commit()
            spec = FsSpec(fs.name, fs.project, fs.size_bytes, fs.export)
            driver = self.drivers.get(fs.driver)
        self.changed()  # instances stop seeing it (and unmount) while the driver works
        try:
            if driver is not None:
                driver.delete(spec)
        except DriverError as e:
            with self.sessions() as session:
                row = session.get(db.Filesystem, fs.id)
                row.status, row.status_detail = "error", f"delete failed: {e}"
                session.commit()
            self.changed()
            raise Conflict(f"filesystem {name!r} could not be deleted: {e}") from None
        with self.sessions() as session:
            session.execute(delete(db.Filesystem).where(db.Filesystem.id == fs.id))
            session.commit()
        self.changed()

    # -- instances and connections ----------------------------------------------------------

    def _members(self, session: Session, fs: db.Filesystem) -> List[db.Instance]:
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

    def _sync_access(self, session: Session, fs: db.Filesystem) -> None:
        """Make the driver's ACL equal to the addresses of the instances that should reach fs."""
        driver = self.drivers.get(fs.driver)
        if driver is None or fs.status != "available":
            return
        wanted: Set[str] = {a for inst in self._members(session, fs) for a in inst.addresses}
        granted = set(session.scalars(select(db.Grant.address).where(db.Grant.filesystem_id == fs.id)))
        try:
            if wanted - granted:
                driver.attach(fs.name, sorted(wanted - granted))
            if granted - wanted:
                driver.unattach(fs.name, sorted(granted - wanted))
        except DriverError as e:
            log.error("access for %s/%s: %s", fs.project, fs.name, e)
            fs.status_detail = f"access update failed: {e}"
            session.commit()
            return
        session.execute(delete(db.Grant).where(db.Grant.filesystem_id == fs.id))
        session.add_all(db.Grant(filesystem_id=fs.id, address=a) for a in sorted(wanted))
        if fs.status_detail.startswith("access update failed"):
            fs.status_detail = ""
        session.commit()

    @staticmethod
    def _reached(session: Session, instance_id: str, project: str) -> List[db.Filesystem]:
        """The filesystems an instance reaches: global ones, its project's, those it is connected to."""
        connected = select(db.Connection.filesystem_id).where(db.Connection.instance_id == instance_id)
        return list(session.scalars(select(db.Filesystem).where(or_(
            db.Filesystem.scope == "global",
            (db.Filesystem.scope == "project") & (db.Filesystem.project == project),
            db.Filesystem.id.in_(connected),
        ))))  # fmt: skip

    def _sync_for_instance(self, session: Session, instance: db.Instance) -> None:
        """An instance came or changed address: every filesystem it reaches is re-synced."""
        for fs in self._reached(session, instance.id, instance.project):
            self._sync_access(session, fs)

    def put_instance(self, principal: Principal, tenant: str, instance_id: str, body: InstanceIn) -> Tuple[int, dict]:
        principal.require_instance(tenant, instance_id)
        check_name("tenant", tenant)
        check_name("instance id", instance_id)
        addresses = json.dumps(body.addresses)
        with self.sessions() as session:
            instance = session.get(db.Instance, instance_id)
            if instance is not None and instance.project != tenant:
                if principal.admin or principal.project == instance.project:
                    raise Conflict(f"instance {instance_id!r} is registered in project {instance.project!r}")
                raise Forbidden(f"instance {instance_id!r} belongs to another project")
            if instance is not None and instance.addresses_json == addresses:
                return 200, self._instance_view(instance)
            code = 200 if instance is not None else 201
            if instance is None:
                instance = db.Instance(id=instance_id, project=tenant, addresses_json=addresses)
                session.add(instance)
            instance.addresses_json = addresses
            session.commit()
            self._sync_for_instance(session, instance)
            view = self._instance_view(instance)
        self.changed()
        return code, view

    @staticmethod
    def _instance_view(instance: db.Instance) -> dict:
        return {"id": instance.id, "project": instance.project, "addresses": instance.addresses}

    def list_instances(self, principal: Principal, tenant: str) -> List[dict]:
        principal.require_manager(tenant)
        with self.sessions() as session:
            rows = session.scalars(select(db.Instance).where(db.Instance.project == tenant).order_by(db.Instance.id))
            return [self._instance_view(i) for i in rows]

    def delete_instance(self, principal: Principal, tenant: str, instance_id: str) -> None:
        principal.require_manager(tenant)
        with self.sessions() as session:
            instance = session.get(db.Instance, instance_id)
            if instance is None or instance.project != tenant:
                raise NotFound(f"instance {instance_id!r} is not registered in project {tenant!r}")
            reached = self._reached(session, instance_id, tenant)
            session.delete(instance)
            session.commit()
            for fs in reached:
                self._sync_access(session, fs)
        self.changed()

    def fs_instances(self, principal: Principal, tenant: str, name: str) -> List[dict]:
        """The instances the filesystem belongs on (connected: true), and those that still
        report a state for it after leaving (connected: false; "unmounted" once they let go)."""
        principal.require_manager(tenant)
        with self.sessions() as session:
            fs = self._fs(session, tenant, name, principal)
            members = {i.id: i for i in self._members(session, fs)}
            states = {s.instance_id: s for s in session.scalars(
                select(db.MountState).where(db.MountState.filesystem_id == fs.id))}  # fmt: skip
            former = [session.get(db.Instance, i) for i in states if i not in members]
            everyone = list(members.values()) + [i for i in former if i is not None]
            if not principal.admin:
                everyone = [i for i in everyone if i.project == tenant]
            out = []
            for instance in sorted(everyone, key=lambda i: i.id):
                state = states.get(instance.id)
                out.append({
                    "id": instance.id,
                    "project": instance.project,
                    "addresses": instance.addresses,
                    "connected": instance.id in members,
                    "mount_state": state.state if state else "pending",
                    "detail": state.detail if state else "",
                    "updated_at": state.updated_at.isoformat() if state else None,
                })  # fmt: skip
            return out

    def connect(self, principal: Principal, tenant: str, name: str, instance_id: str) -> Tuple[int, dict]:
        principal.require_manager(tenant)
        with self.sessions() as session:
            fs = self._fs(session, tenant, name, principal)
            instance = session.get(db.Instance, instance_id)
            if instance is None or instance.project != tenant:
                raise NotFound(f"instance {instance_id!r} is not registered in project {tenant!r} "
                               f"(PUT /v1.1/{tenant}/os-instances/{instance_id} first)")  # fmt: skip
            if session.get(db.Connection, (fs.id, instance_id)) is not None:
                return 200, {"id": instance_id}
            session.add(db.Connection(filesystem_id=fs.id, instance_id=instance_id))
            session.commit()
            self._sync_access(session, fs)
        self.changed()
        return 201, {"id": instance_id}

    def disconnect(self, principal: Principal, tenant: str, name: str, instance_id: str) -> None:
        principal.require_manager(tenant)
        with self.sessions() as session:
            fs = self._fs(session, tenant, name, principal)
            link = session.get(db.Connection, (fs.id, instance_id))
            if link is None:
                raise NotFound(f"instance {instance_id!r} is not connected to {name!r}")
            session.delete(link)
            session.commit()
            self._sync_access(session, fs)
        self.changed()

    # -- the agents' side -------------------------------------------------------------------

    def instance_project(self, instance_id: str) -> Optional[str]:
        with self.sessions() as session:
            instance = session.get(db.Instance, instance_id)
            return instance.project if instance else None

    def report_state(self, principal: Principal, tenant: str, instance_id: str, name: str, body: StateIn) -> None:
        principal.require_instance(tenant, instance_id)
        with self.sessions() as session:
            instance = session.get(db.Instance, instance_id)
            if instance is None or instance.project != tenant:
                raise NotFound(f"instance {instance_id!r} is not registered in project {tenant!r}")
            fs = self._fs(session, tenant, name, principal)
            row = session.get(db.MountState, (fs.id, instance_id))
            if row is None:
                row = db.MountState(filesystem_id=fs.id, instance_id=instance_id, state=body.state)
                session.add(row)
            row.state, row.detail, row.updated_at = body.state, body.detail, db.now()
            session.commit()
