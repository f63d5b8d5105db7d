"""Instances: registration (which changes who reaches what), listing, deregistration, and their agents' reports."""

from __future__ import annotations

import json
import logging
from typing import Callable, List, Sequence, Tuple

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from .. import db
from ..auth import Principal, store_token
from ..errors import ApiError, Conflict, NotFound
from ..representations import instance_entry
from ..schemas import InstanceIn, StateIn, check_name
from .access import Access
from .lookup import find_fs, find_instance
from .tx import run

__all__ = ["InstanceService"]

log = logging.getLogger(__name__)

CLOUD = Principal("admin")  # the cloud's own notifications act with an admin's rights


class InstanceService:
    """Every change commits, then calls `changed()` so long-polls (here and in other processes) wake."""

    def __init__(self, sessions: sessionmaker, access: Access, changed: Callable[[], None],
                 kick: Callable[[], None] = lambda: None) -> None:  # fmt: skip
        self.sessions = sessions
        self.access = access
        self.changed = changed
        self.kick = kick  # the worker: a delete may be waiting for this report

    def put_instance(self, principal: Principal, tenant: str, instance_id: str, body: InstanceIn) -> Tuple[int, dict]:
        """201 registered, 200 updated or unchanged; every filesystem it reaches gets its new access set.
        An id registered (or once registered) in another project, or a deregistered id asked for by
        its own old token, is 409 "not available" alike: a project learns nothing of others' ids."""
        principal.require_instance(tenant, instance_id)
        check_name("tenant", tenant)
        check_name("instance id", instance_id)
        addresses = json.dumps(body.addresses)

        def register(session: Session) -> Tuple[int, dict, List[int]]:
            if session.get(db.DeletedInstance, instance_id) is not None:
                raise Conflict(f"instance {instance_id!r} was deleted in the cloud; instance ids are not reused")
            instance = session.get(db.Instance, instance_id)
            retired = session.get(db.RetiredInstance, instance_id)
            owner = instance.project if instance is not None else retired.project if retired is not None else None
            if owner is not None and owner != tenant:
                if principal.admin:
                    raise Conflict(f"instance {instance_id!r} is registered in project {owner!r}")
                raise Conflict(f"instance id {instance_id!r} is not available")
            if instance is None and retired is not None and principal.role == "instance":
                raise Conflict(f"instance id {instance_id!r} is not available")
            if instance is not None and instance.addresses_json == addresses:
                return 200, instance_entry(instance), []
            code = 200 if instance is not None else 201
            if instance is None:
                if retired is not None:
                    session.delete(retired)  # its project (or an admin) registers it again
                instance = db.Instance(id=instance_id, project=tenant, addresses_json=addresses)
                session.add(instance)
            instance.addresses_json = addresses
            session.flush()
            return code, instance_entry(instance), [fs.id for fs in Access.reached(session, instance_id, tenant)]

        code, entry, reached = run(self.sessions, register)
        self.access.sync_all(reached)
        if reached or code == 201:
            self.changed()
        return code, entry

    def list_instances(self, principal: Principal, tenant: str) -> List[dict]:
        principal.require_manager(tenant)
        with self.sessions() as session:
            rows = session.scalars(select(db.Instance).where(db.Instance.project == tenant).order_by(db.Instance.id))
            return [instance_entry(i) for i in rows]

    def list_all(self) -> List[dict]:
        """Every instance of every project (the CLI's `instance list`; no HTTP call lists across projects)."""
        with self.sessions() as session:
            rows = session.scalars(select(db.Instance).order_by(db.Instance.project, db.Instance.id))
            return [instance_entry(i) for i in rows]

    def delete_instance(self, principal: Principal, tenant: str, instance_id: str) -> None:
        principal.require_manager(tenant)

        def deregister(session: Session) -> List[int]:
            instance = find_instance(session, tenant, instance_id)
            reached = [fs.id for fs in Access.reached(session, instance_id, tenant)]
            session.delete(instance)
            if session.get(db.RetiredInstance, instance_id) is None:
                session.add(db.RetiredInstance(id=instance_id, project=tenant))
            return reached

        self.access.sync_all(run(self.sessions, deregister))
        self.changed()

    def report_state(self, principal: Principal, tenant: str, instance_id: str, name: str, body: StateIn) -> None:
        """Only for a filesystem the instance reaches, or reported while it did (to say it let go);
        any other name is 404 as for one that does not exist, so no name leaks."""
        principal.require_instance(tenant, instance_id)

        def record(session: Session) -> bool:
            find_instance(session, tenant, instance_id)
            missing = NotFound(f"filesystem {name!r} not found in project {tenant!r}")
            try:
                fs = find_fs(session, tenant, name)
            except NotFound:
                raise missing from None
            row = session.get(db.MountState, (fs.id, instance_id))
            if row is None:
                if fs.id not in {f.id for f in Access.reached(session, instance_id, tenant)}:
                    raise missing
                row = db.MountState(filesystem_id=fs.id, instance_id=instance_id, state=body.state)
                session.add(row)
            row.state, row.detail, row.updated_at = body.state, body.detail, db.now()
            return fs.status == "deleting"

        if run(self.sessions, record) and body.state == "unmounted":
            self.kick()  # its delete may run now, not at the worker's next poll

    # -- the cloud's instance lifecycle (nova_listener.InstanceLifecycle) -------------------------

    def register(self, project: str, instance_id: str, addresses: Sequence[str]) -> None:
        """The cloud says the instance exists with exactly these addresses: registered or updated,
        the access lists follow; ignored once deleted. ValueError: never acceptable (not retried)."""
        with self.sessions() as session:
            if session.get(db.DeletedInstance, instance_id) is not None:
                return
        self._claim(project, instance_id)
        try:
            self.put_instance(CLOUD, project, instance_id, InstanceIn(addresses=list(addresses)))
        except ApiError as e:  # a bad id, another project's instance id, deleted meanwhile
            raise ValueError(e.message) from None

    set_addresses = register  # both say "exists with exactly these addresses"

    def _claim(self, project: str, instance_id: str) -> None:
        """The cloud's word wins: an id the cloud places in `project` that another project registered
        (by mistake or to squat it) leaves that project with its tokens, states and access first."""

        def take(session: Session) -> List[int]:
            instance = session.get(db.Instance, instance_id)
            retired = session.get(db.RetiredInstance, instance_id)
            if retired is not None and retired.project != project:
                session.delete(retired)
            if instance is None or instance.project == project:
                return []
            log.warning("instance %s: registered in project %s, but the cloud says %s; moved",
                        instance_id, instance.project, project)  # fmt: skip
            reached = [fs.id for fs in Access.reached(session, instance_id, instance.project)]
            session.execute(delete(db.Token).where(db.Token.instance_id == instance_id))
            session.execute(delete(db.MountState).where(db.MountState.instance_id == instance_id))
            session.delete(instance)
            return reached

        reached = run(self.sessions, take)
        if reached:
            self.access.sync_all(reached)
            self.changed()

    def deregister(self, instance_id: str) -> None:
        """The cloud deleted the instance: its registration and tokens go, its addresses leave every
        access list, and the id is remembered so nothing registers it again."""

        def forget(session: Session) -> List[int]:
            if session.get(db.DeletedInstance, instance_id) is None:
                session.add(db.DeletedInstance(id=instance_id))
            session.execute(delete(db.Token).where(db.Token.instance_id == instance_id))
            instance = session.get(db.Instance, instance_id)
            if instance is None:
                return []
            reached = [fs.id for fs in Access.reached(session, instance_id, instance.project)]
            session.delete(instance)
            return reached

        self.access.sync_all(run(self.sessions, forget))
        self.changed()

    def enroll(self, project: str, instance_id: str) -> str:
        """Nova's vendordata at boot: the instance is registered in project if it is not yet (its
        addresses come from Nova's notifications or its own agent) and gets a fresh instance token."""
        with self.sessions() as session:
            if session.get(db.DeletedInstance, instance_id) is not None:
                raise Conflict(f"instance {instance_id!r} was deleted in the cloud")
            known = session.get(db.Instance, instance_id)
        if known is None or known.project != project:
            self._claim(project, instance_id)  # the cloud's word wins over a squatter's registration
            self.put_instance(CLOUD, project, instance_id, InstanceIn())
        return store_token(self.sessions, "instance", project, instance_id)
