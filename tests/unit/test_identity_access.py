"""Access by identity: the API keeps one credential per member instance and hands it to that instance alone; the agent keeps it in a file, never in argv, fstab, ledger or status."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import AbstractSet, Dict, List

import pytest

from sharedfs_agent import wire
from sharedfs_agent.config import AgentConfig
from sharedfs_agent.desired import parse_document
from sharedfs_agent.host.fake import FakeHost
from sharedfs_agent.mounters import registry
from sharedfs_agent.reconcile import Reconciler
from sharedfs_api import db, drivers
from sharedfs_api.auth import Principal
from sharedfs_api.backends import BackendConfig, Backends
from sharedfs_api.drivers import Driver, FsSpec, Identity
from sharedfs_api.drivers.cephfs import AUTH_ID, CephfsDriver, auth_id
from sharedfs_api.errors import DriverError
from sharedfs_api.schemas import FsEntryIn, InstanceIn
from sharedfs_api.services import make_services
from sharedfs_api.view import AgentView, Hub

ADMIN = Principal("admin")
KEY = "AQA4XQhrqsTMHxAAhxki3Nwq5nujF1gKWTo9kQ=="


class IdentityDriver(Driver):
    """Hands out one key per instance, as the cephfs driver does; `fail` makes set_identities raise."""

    name = "ids"
    fs_type = "cephfs"
    access_by = "identity"

    def __init__(self, options) -> None:
        super().__init__(options)
        self.wanted: List[AbstractSet[str]] = []
        self.generation = 0
        self.fail = False

    def create(self, fs: FsSpec) -> str:
        return f"mon1:6789,mon2:6789:/volumes/g/{fs.name}/uuid"

    def delete(self, fs: FsSpec) -> None:
        pass

    def set_identities(self, fs: FsSpec, instance_ids: AbstractSet[str]) -> Dict[str, Identity]:
        if self.fail:
            raise DriverError("mgr unreachable")
        self.wanted.append(frozenset(instance_ids))
        return {i: Identity(f"K{self.generation}{i}".ljust(40, "A"), (f"name=sfs.{fs.name}.{i}",))
                for i in instance_ids}  # fmt: skip


@pytest.fixture
def api(tmp_path, monkeypatch):
    monkeypatch.setitem(drivers.DRIVERS, "ids", IdentityDriver)
    url = f"sqlite:///{tmp_path / 'api.db'}"
    db.upgrade(url)
    sessions = db.make_sessions(db.make_engine(url))
    backends = Backends([BackendConfig("ceph", "ids")])
    backends.setup({"db_url": url})
    changes = []
    services = make_services(sessions, backends, lambda: changes.append(1))
    for instance in ("i1", "i2"):
        services.instances.put_instance(ADMIN, "p1", instance, InstanceIn(addresses=[]))
    services.filesystems.put_fs(ADMIN, "p1", "cfs", FsEntryIn(size="1Gb", mount_point="/mnt/cfs"))
    services.worker.drain(timeout=10)
    view = AgentView(sessions, Hub(), identity_backends={"ceph"})
    return services, backends.get("ceph"), view, changes


def documents(view: AgentView, instance: str, secrets: bool = True) -> List[dict]:
    view.hub.changed()  # a fresh snapshot
    snap = asyncio.run(view.snapshot())
    return json.loads(view.document(snap, instance, secrets)[0])["filesystems"]


def test_a_connected_instance_alone_gets_its_key_and_loses_it_on_disconnect(api):
    services, driver, view, changes = api
    assert documents(view, "i1") == [] and driver.wanted == []  # made reachable by nobody: nothing to revoke
    before = len(changes)
    services.filesystems.connect(ADMIN, "p1", "cfs", "i1")
    assert driver.wanted[-1] == {"i1"}
    assert len(changes) > before  # the view changed: long-polls are woken
    (entry,) = documents(view, "i1")
    key = entry[wire.SECRET_KEY]
    assert wire.SECRET.fullmatch(key) and "name=sfs.cfs.i1" in entry["mount_options"]
    assert documents(view, "i2") == []
    (read_by_admin,) = documents(view, "i1", secrets=False)
    assert wire.SECRET_KEY not in read_by_admin
    shown = json.dumps([services.filesystems.get_fs(ADMIN, "p1", "cfs"), services.filesystems.list_fs(ADMIN, "p1")])
    assert key not in shown

    services.filesystems.disconnect(ADMIN, "p1", "cfs", "i1")
    assert driver.wanted[-1] == frozenset()
    assert documents(view, "i1") == []


def test_a_failed_identity_update_is_reported_and_retried_by_the_reconcile(api):
    services, driver, view, _ = api
    driver.fail = True
    services.filesystems.connect(ADMIN, "p1", "cfs", "i1")
    assert services.filesystems.get_fs(ADMIN, "p1", "cfs")["status_detail"] == "access update failed: mgr unreachable"
    assert documents(view, "i1") == []  # no key yet: not in the view
    driver.fail = False
    services.worker.reconcile()
    assert services.filesystems.get_fs(ADMIN, "p1", "cfs")["status_detail"] == ""
    assert documents(view, "i1")[0][wire.SECRET_KEY]


def test_a_deregistered_instance_is_revoked(api):
    services, driver, view, _ = api
    services.filesystems.connect(ADMIN, "p1", "cfs", "i1")
    services.instances.delete_instance(ADMIN, "p1", "i1")
    assert driver.wanted[-1] == frozenset()
    with services.access.sessions() as session:
        assert session.query(db.IdentityGrant).count() == 0


def test_cephx_ids_fit_both_clients():
    assert auth_id("data", "vm-1.a_b") == "sfs.data.vm-1.a_b"
    assert auth_id("a-b", "c") != auth_id("a", "b-c")  # no pair takes another's id
    for fs_name in ("f", "f" * 40, "f" * 64):
        ids = {auth_id(fs_name, "i" * 64), auth_id(fs_name, "i" * 63 + "j")}
        assert len(ids) == 2 and all(AUTH_ID.fullmatch(i) and len(i) <= 64 for i in ids), ids
    with pytest.raises(ValueError, match="client 'nfs'"):
        CephfsDriver({"client": "nfs"})
    assert (CephfsDriver({}).fs_type, CephfsDriver({"client": "fuse"}).fs_type) == ("cephfs", "ceph-fuse")


# -- the agent ---------------------------------------------------------------------------------


@pytest.fixture
def agent(tmp_path):
    root = tmp_path / "mnt"
    root.mkdir()
    config = AgentConfig(state_dir=str(tmp_path / "state"), fstab=str(tmp_path / "fstab"),
                         allowed_roots=(str(root),), secret_dir="/etc/ceph", mount_point_uid=os.getuid(),
                         mount_point_gid=os.getgid())  # fmt: skip
    (tmp_path / "fstab").write_text("# foreign\n")
    mounters = registry(entry_points=())
    return config, mounters, str(root)


def entry(root: str, **over) -> dict:
    return {"name": "cfs", "fs_type": "cephfs", "export": "mon1:6789,mon2:6789:/volumes/g/cfs/u",
            "mount_point": f"{root}/cfs", "mount_options": ["name=sfs.cfs.i1"], "secret": KEY, **over}  # fmt: skip


def test_the_agent_refuses_bad_secrets_without_repeating_them(agent):
    config, mounters, root = agent
    bad = {
        "not a key!": "secret is not",
        42: "secret is not",
    }
    for secret, reason in bad.items():
        (rejection,) = parse_document({"filesystems": [entry(root, secret=secret)]}, mounters, config).rejections
        assert rejection.reason.startswith(reason) and "not a key" not in rejection.reason
    glusterfs = entry(root, fs_type="glusterfs", export="h:/v", mount_options=[])
    assert "takes no secret" in parse_document({"filesystems": [glusterfs]}, mounters, config).rejections[0].reason
    own = entry(root, mount_options=["secretfile=/etc/ceph/other.secret"])
    assert (
        "may not name its own secretfile"
        in parse_document({"filesystems": [own]}, mounters, config).rejections[0].reason
    )
    (fs,) = parse_document({"filesystems": [entry(root)]}, mounters, config).filesystems
    assert fs.secret == KEY and KEY not in repr(fs)
    assert "secretfile=/etc/ceph/sharedfs-cfs.secret" in fs.options


def test_the_key_is_in_its_file_only_never_in_argv_fstab_ledger_or_status(agent):
    config, mounters, root = agent
    host = FakeHost({"ceph": "ceph", "fuse.ceph": "fuse.ceph-fuse"})
    reconciler = Reconciler(config, mounters, host)
    for fs_type, export, option in (("cephfs", "mon1:6789:/volumes/g/cfs/u", "secretfile"),
                                    ("ceph-fuse", "/volumes/g/cfs/u", "ceph.keyfile")):  # fmt: skip
        name_option = "name=sfs.cfs.i1" if fs_type == "cephfs" else "ceph.id=sfs.cfs.i1"
        doc = {"filesystems": [entry(root, fs_type=fs_type, export=export, mount_options=[name_option])]}
        result = reconciler.run_pass(parse_document(doc, mounters, config), fresh=True)
        assert not result.failed, result.verdicts
        argv = host.argv[f"{root}/cfs"]
        assert KEY not in " ".join(argv) and f"{option}=/etc/ceph/sharedfs-cfs.secret" in " ".join(argv)
        assert host.files == {"/etc/ceph/sharedfs-cfs.secret": KEY + "\n"}
        fstab_text, ledger_text = Path(config.fstab).read_text(), Path(config.ledger_path).read_text()
        assert KEY not in fstab_text and "sharedfs-cfs.secret" in fstab_text and KEY not in ledger_text
        assert KEY not in repr(result)
        # Gone from the document: unmounted, and its key's file removed.
        reconciler.run_pass(parse_document({"filesystems": []}, mounters, config), fresh=True)
        assert host.files == {} and f"{root}/cfs" not in host.table


def test_a_rotated_key_reaches_its_file_without_a_remount(agent):
    config, mounters, root = agent
    host = FakeHost({"ceph": "ceph"})
    reconciler = Reconciler(config, mounters, host)
    reconciler.run_pass(parse_document({"filesystems": [entry(root)]}, mounters, config), fresh=True)
    other = "B" * 38 + "=="
    reconciler.run_pass(parse_document({"filesystems": [entry(root, secret=other)]}, mounters, config), fresh=True)
    assert host.files["/etc/ceph/sharedfs-cfs.secret"] == other + "\n"
    assert len(host.actions("mount")) == 1
