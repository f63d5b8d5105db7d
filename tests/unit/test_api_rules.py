"""The API's rules in process, without HTTP: the services on SQLite with a recording fake driver."""

from __future__ import annotations

import asyncio
import datetime as dt
import shlex
import shutil
from pathlib import Path
from typing import AbstractSet, Dict, List, Tuple

import pytest

from sharedfs_agent import wire
from sharedfs_api import cli, db, drivers
from sharedfs_api.auth import Principal
from sharedfs_api.backends import BackendConfig, Backends, parse_backend, read_config, shorthand
from sharedfs_api.drivers import Driver, FsSpec
from sharedfs_api.drivers.glusterfs import GlusterfsDriver
from sharedfs_api.errors import BadRequest, Conflict, DriverError, Forbidden, NotFound
from sharedfs_api.representations import agent_entry, fs_entry
from sharedfs_api.schemas import FsEntryIn, InstanceIn
from sharedfs_api.services import LastSeen, make_services
from sharedfs_api.view import AgentView, Hub

ADMIN = Principal("admin")
PROJ1 = Principal("project", "p1")
INST1 = Principal("instance", "p1", "i1")


class FakeDriver(Driver):
    """Records what it was asked and keeps each filesystem's access set, as a backend would.
    A method named in `failing` raises DriverError instead."""

    name = "fake"
    fs_type = "fakefs"

    def __init__(self, options) -> None:
        super().__init__(options)
        self.fs_type = options.get("fs_type", "fakefs")
        self.calls: List[Tuple[str, str]] = []
        self.access: Dict[str, AbstractSet[str]] = {}
        self.failing: set = set()

    def _record(self, method: str, fs: FsSpec) -> None:
        self.calls.append((method, fs.name))
        if method in self.failing:
            raise DriverError(f"{method} refused by the fake")

    def create(self, fs: FsSpec) -> str:
        self._record("create", fs)
        self.access[fs.name] = frozenset()
        return f"fake:/{fs.name}"

    def delete(self, fs: FsSpec) -> None:
        self._record("delete", fs)
        self.access.pop(fs.name, None)

    def set_access(self, fs: FsSpec, addresses: AbstractSet[str]) -> None:
        self._record("set_access", fs)
        self.access[fs.name] = frozenset(addresses)

    def inventory(self):
        return None  # a test that wants the reconcile to list replaces this


class World:
    """Services on a fresh SQLite database, backends `fake` (fakefs) and `other` (otherfs)."""

    def __init__(self, tmp_path, template: Path, made: List[FakeDriver]) -> None:
        shutil.copy(template, tmp_path / "api.db")
        self.url = f"sqlite:///{tmp_path / 'api.db'}"
        self.sessions = db.make_sessions(db.make_engine(self.url))
        self.backends = Backends([BackendConfig("fake", "fake"), BackendConfig("other", "fake", {"fs_type": "otherfs"})])
        self.backends.setup({"db_url": self.url})
        self.fake, self.other = self.backends.get("fake"), self.backends.get("other")
        self.changes = 0
        self.services = make_services(self.sessions, self.backends, self._changed)
        self.made = made

    def _changed(self) -> None:
        self.changes += 1

    def register(self, tenant: str, instance: str, *addresses: str, who: Principal = ADMIN):
        return self.services.instances.put_instance(who, tenant, instance, InstanceIn(addresses=list(addresses)))

    def create(self, tenant: str, name: str, who: Principal = ADMIN, **entry):
        """The answer of the PUT; then the worker's pass, as the server's runs it soon after."""
        entry.setdefault("size", "1Gb")
        answer = self.services.filesystems.put_fs(who, tenant, name, FsEntryIn(**entry))
        self.drain()
        return answer

    def delete(self, tenant: str, name: str, who: Principal = ADMIN) -> dict:
        entry = self.services.filesystems.delete_fs(who, tenant, name)
        self.drain()
        return entry

    def drain(self) -> None:
        self.services.worker.drain(timeout=10)

    def row(self, tenant: str, name: str) -> dict:
        return self.services.filesystems.get_fs(ADMIN, tenant, name)

    def grants(self, name: str) -> set:
        with self.sessions() as session:
            return {g.address for g in session.query(db.Grant).join(db.Filesystem).where(db.Filesystem.name == name)}


@pytest.fixture
def made(monkeypatch) -> List[FakeDriver]:
    """Every FakeDriver the code under test makes, in order (`fake` is a driver name while it runs)."""
    made: List[FakeDriver] = []

    def make(options):
        made.append(FakeDriver(options))
        return made[-1]

    monkeypatch.setitem(drivers.DRIVERS, "fake", make)
    return made


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A database migrated once (by the real migrations), copied for each test."""
    path = tmp_path_factory.mktemp("template") / "api.db"
    db.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def world(tmp_path, template, made) -> World:
    w = World(tmp_path, template, made)
    w.register("p1", "i1", "10.0.0.1")
    w.register("p1", "i2", "10.0.0.2")
    w.register("p2", "j1", "10.0.1.1")
    return w


# -- creating: which backend, and what a failure leaves --------------------------------------


def test_an_entry_without_fs_type_goes_to_the_first_backend_and_starts_reachable_by_nobody(world):
    code, entry = world.create("p1", "data")
    assert (code, entry["status"], entry["export"]) == (202, "creating", "")  # the worker makes it
    entry = world.row("p1", "data")
    assert (entry["status"], entry["fs_type"], entry["export"]) == ("available", "fakefs", "fake:/data")
    assert world.fake.calls == [("create", "data")]  # nobody wanted yet: no set_access needed
    assert world.fake.access == {"data": frozenset()}
    assert world.create("p1", "data")[0] == 200  # identical: nothing made twice
    assert world.fake.calls == [("create", "data")]


def test_fs_type_chooses_the_backend(world):
    world.create("p1", "o1", fs_type="otherfs")
    assert world.row("p1", "o1")["export"] == "fake:/o1"
    assert world.other.calls == [("create", "o1")] and world.fake.calls == []
    with pytest.raises(BadRequest, match="this server's backends make fakefs, otherfs"):
        world.create("p1", "n1", fs_type="nfs")


def test_an_export_is_registered_by_static_and_only_by_an_admin(world):
    code, entry = world.create("p1", "st", export="h:/v", fs_type="nfs")
    assert (code, entry["status"], entry["export"]) == (201, "available", "h:/v")
    with pytest.raises(Forbidden, match="only an admin"):
        world.create("p1", "st2", who=PROJ1, export="h:/v", fs_type="nfs")
    with pytest.raises(BadRequest, match="fs_type is required"):
        world.create("p1", "st3", export="h:/v")
    assert world.fake.calls == [] and world.other.calls == []


def test_a_server_without_backends_creates_nothing(tmp_path, template, made):
    shutil.copy(template, tmp_path / "bare.db")
    url = f"sqlite:///{tmp_path / 'bare.db'}"
    services = make_services(db.make_sessions(db.make_engine(url)), Backends(), lambda: None)
    with pytest.raises(BadRequest, match="fs_entry.export is required"):
        services.filesystems.put_fs(ADMIN, "p1", "x", FsEntryIn(size="1Gb"))
    with pytest.raises(NotFound):
        services.filesystems.get_fs(ADMIN, "p1", "x")


def test_a_failed_create_leaves_an_error_row_without_export(world):
    world.fake.failing.add("create")
    assert world.create("p1", "bad", scope="project")[0] == 202
    entry = world.row("p1", "bad")
    assert (entry["status"], entry["export"]) == ("error", "")
    assert "create refused by the fake" in entry["status_detail"]
    assert world.fake.calls == [("create", "bad")]  # no access granted to a filesystem in error
    assert world.grants("bad") == set()


def test_global_filesystems_are_admin_only_and_their_names_unique(world):
    with pytest.raises(Forbidden, match="global"):
        world.create("p1", "g", who=PROJ1, scope="global")
    world.create("p2", "g", scope="global")
    with pytest.raises(Conflict, match="global filesystem of project 'p2'"):
        world.create("p1", "g")


# -- access: the whole wanted set follows scopes, connections and instances -------------------


def test_instance_scope_follows_connect_and_disconnect(world):
    world.create("p1", "s")
    assert world.services.filesystems.connect(ADMIN, "p1", "s", "i1") == (201, {"id": "i1"})
    assert world.fake.access["s"] == {"10.0.0.1"}
    assert world.services.filesystems.connect(PROJ1, "p1", "s", "i2")[0] == 201
    assert world.fake.access["s"] == {"10.0.0.1", "10.0.0.2"}  # the whole set, not the change
    assert world.services.filesystems.connect(ADMIN, "p1", "s", "i1")[0] == 200
    world.services.filesystems.disconnect(ADMIN, "p1", "s", "i1")
    assert world.fake.access["s"] == {"10.0.0.2"}
    world.services.filesystems.disconnect(ADMIN, "p1", "s", "i2")
    assert world.fake.access["s"] == frozenset()  # nobody
    assert world.grants("s") == set()
    with pytest.raises(NotFound, match="not connected"):
        world.services.filesystems.disconnect(ADMIN, "p1", "s", "i2")


def test_connect_needs_a_registered_instance_of_the_project(world):
    world.create("p1", "s")
    with pytest.raises(NotFound, match="PUT /v1.1/p1/os-instances/nope first"):
        world.services.filesystems.connect(ADMIN, "p1", "s", "nope")
    with pytest.raises(NotFound):
        world.services.filesystems.connect(ADMIN, "p1", "s", "j1")  # of project p2
    assert world.fake.access["s"] == frozenset()


def test_project_scope_follows_membership_addresses_and_deregistration(world):
    world.create("p1", "proj", scope="project")
    assert world.fake.access["proj"] == {"10.0.0.1", "10.0.0.2"}
    world.register("p1", "i3", "10.0.0.3")
    assert world.fake.access["proj"] == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}
    world.register("p1", "i3", "10.0.0.33", "10.0.0.34")  # the instance's addresses changed
    assert world.fake.access["proj"] == {"10.0.0.1", "10.0.0.2", "10.0.0.33", "10.0.0.34"}
    world.services.instances.delete_instance(PROJ1, "p1", "i3")
    assert world.fake.access["proj"] == {"10.0.0.1", "10.0.0.2"}
    world.register("p2", "j2", "10.0.1.2")  # another project's instance changes nothing here
    assert world.fake.access["proj"] == {"10.0.0.1", "10.0.0.2"}
    assert world.grants("proj") == {"10.0.0.1", "10.0.0.2"}


def test_global_scope_reaches_every_instance(world):
    world.create("p1", "all", scope="global")
    assert world.fake.access["all"] == {"10.0.0.1", "10.0.0.2", "10.0.1.1"}
    world.services.instances.delete_instance(ADMIN, "p2", "j1")
    assert world.fake.access["all"] == {"10.0.0.1", "10.0.0.2"}


def test_the_driver_is_called_only_when_the_wanted_set_changes(world):
    world.create("p1", "proj", scope="project")
    calls = len(world.fake.calls)
    assert world.register("p1", "i1", "10.0.0.1")[0] == 200  # unchanged registration
    world.register("p2", "j1", "10.0.1.9")  # reaches nothing of fake's
    assert len(world.fake.calls) == calls


def test_a_failed_access_update_is_reported_and_repaired_by_the_next_change(world):
    world.create("p1", "proj", scope="project")
    world.fake.failing.add("set_access")
    world.register("p1", "i3", "10.0.0.3")
    entry = world.row("p1", "proj")
    assert entry["status"] == "available"  # those it had keep it
    assert entry["status_detail"] == "access update failed: set_access refused by the fake"
    assert world.grants("proj") == {"10.0.0.1", "10.0.0.2"}  # what the driver last accepted
    world.fake.failing.clear()
    world.register("p1", "i4", "10.0.0.4")
    assert world.fake.access["proj"] == {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}
    assert world.row("p1", "proj")["status_detail"] == ""


def test_the_view_follows_scopes_and_only_shows_available_filesystems(world):
    world.create("p1", "proj", scope="project")
    world.create("p1", "mine")
    world.services.filesystems.connect(ADMIN, "p1", "mine", "i1")
    world.fake.failing.add("create")
    world.create("p1", "broken", scope="project")
    view = AgentView(world.sessions, Hub())
    snap = asyncio.run(view.snapshot())
    i1 = {e["name"] for e in snap.global_fs + snap.by_project["p1"] + snap.by_instance["i1"]}
    i2 = {e["name"] for e in snap.global_fs + snap.by_project["p1"] + snap.by_instance["i2"]}
    assert (i1, i2) == ({"proj", "mine"}, {"proj"})
    body, _ = view.document(snap, "i1")
    assert body.startswith(b'{"filesystems":[{"export":"fake:/mine"')


# -- deleting ---------------------------------------------------------------------------------


def test_delete_asks_the_driver_then_forgets_the_filesystem(world):
    world.create("p1", "gone", scope="project")
    changes = world.changes
    assert world.delete("p1", "gone", PROJ1)["status"] == "deleting"
    assert world.fake.calls[-1] == ("delete", "gone")
    assert world.changes == changes + 2  # once it leaves the views, once it is gone
    with pytest.raises(NotFound):
        world.row("p1", "gone")
    assert world.grants("gone") == set()


def test_a_failed_delete_leaves_an_error_row(world):
    world.create("p1", "stuck")
    world.fake.failing.add("delete")
    assert world.delete("p1", "stuck")["status"] == "deleting"  # the worker's driver call fails
    entry = world.row("p1", "stuck")
    assert (entry["status"], entry["status_detail"]) == ("error", "delete failed: delete refused by the fake")
    world.fake.failing.clear()
    world.delete("p1", "stuck")  # deleting again works
    with pytest.raises(NotFound):
        world.row("p1", "stuck")


def report(world, instance: str, name: str, state: str, detail: str = "") -> None:
    from sharedfs_api.schemas import StateIn

    who = Principal("instance", "p1", instance)
    world.services.instances.report_state(who, "p1", instance, name, StateIn(state=state, detail=detail))


def backdate(world, name: str, table, column: str, by: dt.timedelta) -> None:
    """As if that much time had passed since the column's value was written."""
    with world.sessions() as session:
        fs_id = session.query(db.Filesystem.id).filter_by(name=name).scalar()
        key = {"id": fs_id} if table is db.Filesystem else {"filesystem_id": fs_id}
        for row in session.query(table).filter_by(**key):
            setattr(row, column, getattr(row, column) - by)
        session.commit()


def test_a_delete_waits_until_every_instance_that_reported_has_unmounted(world):
    """Invariant 14: the storage is destroyed only once the instances that mounted it let go."""
    world.create("p1", "home", scope="project")
    report(world, "i1", "home", "mounted")
    report(world, "i2", "home", "mounted")
    world.delete("p1", "home", PROJ1)
    assert ("delete", "home") not in world.fake.calls  # both still hold it
    assert world.row("p1", "home")["status"] == "deleting"
    snap = asyncio.run(AgentView(world.sessions, Hub()).snapshot())
    assert [e["name"] for e in snap.by_project.get("p1", [])] == []  # out of every view: agents unmount
    # The agents' reports are still taken, and the listing shows who the delete waits for.
    report(world, "i1", "home", "unmounted")
    world.drain()
    listing = world.services.filesystems.fs_instances(PROJ1, "p1", "home")
    listed = {i["id"]: (i["connected"], i["mount_state"]) for i in listing}
    assert listed == {"i1": (True, "unmounted"), "i2": (True, "mounted")}
    assert world.row("p1", "home")["status"] == "deleting"
    report(world, "i2", "home", "busy", "in use")  # a busy unmount is still a hold
    world.drain()
    assert ("delete", "home") not in world.fake.calls
    report(world, "i2", "home", "unmounted")
    world.drain()
    assert world.fake.calls[-1] == ("delete", "home")
    with pytest.raises(NotFound):
        world.row("p1", "home")


def test_a_delete_waits_for_no_gone_agent_no_old_error_and_not_past_its_bound(world):
    world.create("p1", "quiet", scope="project")
    report(world, "i1", "quiet", "mounted")
    backdate(world, "quiet", db.MountState, "updated_at", dt.timedelta(minutes=4))  # last heard of then
    report(world, "i2", "quiet", "error", "refused: outside the allowed roots")  # it never mounted
    world.delete("p1", "quiet")
    assert world.fake.calls[-1] == ("delete", "quiet")  # i2's error is from before the DELETE

    world.create("p1", "held", scope="project")
    report(world, "i1", "held", "mounted")
    world.delete("p1", "held")
    assert ("delete", "held") not in world.fake.calls
    backdate(world, "held", db.Filesystem, "deleting_since", dt.timedelta(minutes=11))  # past --delete-wait
    backdate(world, "held", db.MountState, "updated_at", dt.timedelta(minutes=1))  # its agent still alive
    world.drain()
    assert world.fake.calls[-1] == ("delete", "held")

    world.create("p1", "late", scope="project")  # an instance that never reported holds nothing
    world.delete("p1", "late")
    assert world.fake.calls[-1] == ("delete", "late")


def test_a_waiting_delete_is_taken_up_again_by_a_restarted_server(world):
    """kill -9 while a delete waits: the row (deleting, deleting_since) is all the state there is."""
    world.create("p1", "kept", scope="project")
    report(world, "i1", "kept", "mounted")
    world.delete("p1", "kept")
    assert world.services.worker.run_pending() == 0  # waiting costs one query, no job run
    restarted = make_services(db.make_sessions(db.make_engine(world.url)), world.backends, lambda: None)
    restarted.worker.drain(timeout=10)
    assert world.row("p1", "kept")["status"] == "deleting"
    report(world, "i1", "kept", "unmounted")
    restarted.worker.drain(timeout=10)
    assert world.fake.calls[-1] == ("delete", "kept")
    with pytest.raises(NotFound):
        world.row("p1", "kept")


def test_a_global_filesystem_is_deleted_only_by_an_admin_of_its_project(world):
    world.create("p1", "g", scope="global")
    with pytest.raises(Forbidden):
        world.delete("p1", "g", PROJ1)
    with pytest.raises(Forbidden):
        world.delete("p2", "g")  # seen from another project
    world.delete("p1", "g")


# -- roles and instances ----------------------------------------------------------------------


def test_roles(world):
    with pytest.raises(Forbidden):
        world.services.filesystems.list_fs(INST1, "p1")
    with pytest.raises(Forbidden):
        world.services.filesystems.list_fs(PROJ1, "p2")
    with pytest.raises(Forbidden):
        world.register("p1", "i2", "10.0.0.9", who=INST1)  # another instance
    assert world.register("p1", "i1", "10.0.0.1", who=INST1)[0] == 200  # itself
    with pytest.raises(Conflict, match="instance id 'j1' is not available"):
        world.register("p1", "j1", who=PROJ1)  # the same answer as for any id it may not have
    with pytest.raises(Conflict, match="registered in project 'p2'"):
        world.register("p1", "j1")


def test_instances_that_left_stay_listed_until_their_agent_lets_go(world):
    from sharedfs_api.schemas import StateIn

    world.create("p1", "s")
    world.services.filesystems.connect(ADMIN, "p1", "s", "i1")
    world.services.instances.report_state(INST1, "p1", "i1", "s", StateIn(state="mounted"))
    world.services.filesystems.disconnect(ADMIN, "p1", "s", "i1")
    (left,) = world.services.filesystems.fs_instances(ADMIN, "p1", "s")
    assert (left["id"], left["connected"], left["mount_state"]) == ("i1", False, "mounted")


# -- representations --------------------------------------------------------------------------


def test_the_agent_entry_speaks_the_wire_contract(world):
    world.create("p1", "w", mount_options=["ro"])
    with world.sessions() as session:
        row = session.query(db.Filesystem).one()
        entry = agent_entry(row)
        assert set(entry) <= set(wire.ENTRY_KEYS)
        assert entry == {"name": "w", "fs_type": "fakefs", "export": "fake:/w", "mount_point": "/mnt/w",
                         "mount_options": ["ro"], "scope": "instance", "size": "1Gb"}  # fmt: skip
        assert fs_entry(row)["status"] == "available"


# -- the CLI goes through the services --------------------------------------------------------


def test_cli_instance_add_updates_access_lists(world, capsys):
    world.create("p1", "proj", scope="project")
    cli.main(["instance", "add", "--db", world.url, "--backend", "fake=fake", "--project", "p1", "--id", "i9",
              "--address", "10.0.0.9"])  # fmt: skip
    assert "instance i9 in project p1: 10.0.0.9" in capsys.readouterr().out
    assert world.made[-1].calls == [("set_access", "proj")]
    assert world.made[-1].access["proj"] == {"10.0.0.1", "10.0.0.2", "10.0.0.9"}
    assert world.grants("proj") == {"10.0.0.1", "10.0.0.2", "10.0.0.9"}
    with pytest.raises(SystemExit, match="registered in project 'p2'"):
        cli.main(["instance", "add", "--db", world.url, "--project", "p1", "--id", "j1"])
    cli.main(["instance", "list", "--db", world.url])
    assert "p1\ti9\t10.0.0.9" in capsys.readouterr().out


def test_cli_instance_add_without_the_backend_warns_and_keeps_grants(world, caplog):
    world.create("p1", "proj", scope="project")
    cli.main(["instance", "add", "--db", world.url, "--project", "p1", "--id", "i9", "--address", "10.0.0.9"])
    assert "backend 'fake' is not configured here" in caplog.text
    assert world.grants("proj") == {"10.0.0.1", "10.0.0.2"}


# -- backend configuration --------------------------------------------------------------------


def test_backend_flags_config_file_and_shorthand(tmp_path, made):
    assert parse_backend("gl=glusterfs,brick_root=/srv/b,quota=false") == BackendConfig(
        "gl", "glusterfs", {"brick_root": "/srv/b", "quota": "false"})  # fmt: skip
    config = tmp_path / "api.conf"
    config.write_text("[backend gl]\ndriver = glusterfs\nbrick_root = /srv/b\n"
                      "gluster_command = ssh g1 gluster\n\n[backend f]\ndriver = fake\n")  # fmt: skip
    assert read_config(str(config)) == [
        BackendConfig("gl", "glusterfs", {"brick_root": "/srv/b", "gluster_command": "ssh g1 gluster"}),
        BackendConfig("f", "fake", {}),
    ]
    assert shorthand("static", {}) == []
    assert shorthand("glusterfs", {"brick_root": "/b"}) == [BackendConfig("glusterfs", "glusterfs", {"brick_root": "/b"})]
    backends = Backends(read_config(str(config)))
    assert backends.for_new(None, None)[0] == "gl"  # the first is the default
    assert backends.for_new("fakefs", None)[0] == "f"
    assert backends.for_new("glusterfs", "h:/v")[0] == "static"


@pytest.mark.parametrize(
    "configs, words",
    [
        ([BackendConfig("a", "nosuch")], "unknown driver 'nosuch'"),
        ([BackendConfig("static", "fake")], "built in"),
        ([BackendConfig("s", "static")], "built in"),
        ([BackendConfig("Bad Name", "fake")], "must match"),
        ([BackendConfig("a", "fake"), BackendConfig("a", "fake", {"fs_type": "x"})], "configured twice"),
        ([BackendConfig("a", "fake"), BackendConfig("b", "fake")], "both make fakefs"),
    ],
)
def test_bad_backend_configurations_are_refused(made, configs, words):
    with pytest.raises(ValueError, match=words):
        Backends(configs)


@pytest.mark.parametrize("text", ["gl", "gl=glusterfs,brick_root"])
def test_bad_backend_flags_are_refused(text):
    with pytest.raises(ValueError, match="expected"):
        parse_backend(text)


def test_bad_config_files_are_refused(tmp_path):
    config = tmp_path / "api.conf"
    config.write_text("[gl]\ndriver = glusterfs\n")
    with pytest.raises(ValueError, match=r"is not \[backend NAME\]"):
        read_config(str(config))
    config.write_text("[backend gl]\nbrick_root = /b\n")
    with pytest.raises(ValueError, match="no driver"):
        read_config(str(config))
    with pytest.raises(ValueError, match="--config"):
        read_config(str(tmp_path / "missing.conf"))


# -- the glusterfs driver's access list, against a recording gluster command ------------------


def test_glusterfs_set_access_writes_the_whole_set_and_nobody_for_none(tmp_path):
    log = tmp_path / "gluster.log"
    script = 'echo "$*" >> ' + shlex.quote(str(log))
    command = f"sh -c {shlex.quote(script)} gluster"  # $0 is "gluster", "$*" the driver's arguments
    driver = GlusterfsDriver({"brick_root": str(tmp_path / "bricks"), "gluster_command": command})
    driver.do_setup({})
    fs = FsSpec("vol", "p1", 1 << 30, "h:/vol")
    driver.set_access(fs, frozenset({"10.0.0.2", "10.0.0.1"}))
    driver.set_access(fs, frozenset())
    assert log.read_text().splitlines() == [
        "--mode=script volume list",
        "--mode=script volume set vol auth.allow 10.0.0.1,10.0.0.2",
        "--mode=script volume set vol auth.allow 0.0.0.0",  # an empty auth.allow would mean everyone
    ]


# -- jobs, crashes, reconcile, races ----------------------------------------------------------


def test_an_identical_put_while_deleting_is_refused_not_answered_for_a_vanishing_filesystem(world):
    world.create("p1", "d")
    world.services.filesystems.delete_fs(ADMIN, "p1", "d")  # accepted; the worker has not run
    with pytest.raises(Conflict, match="is being deleted"):
        world.services.filesystems.put_fs(ADMIN, "p1", "d", FsEntryIn(size="1Gb"))
    world.drain()
    assert world.create("p1", "d")[0] == 202  # once it is gone, made again


def test_a_create_cut_short_by_a_crash_is_cleaned_then_made_again(world):
    world.services.filesystems.put_fs(ADMIN, "p1", "cut", FsEntryIn(size="1Gb", scope="project"))
    with world.sessions() as session:  # as if a worker had claimed it and died in the driver
        session.query(db.Filesystem).filter_by(name="cut").update({"attempts": 1})
        session.commit()
    world.drain()
    assert world.fake.calls[:2] == [("delete", "cut"), ("create", "cut")]
    assert world.row("p1", "cut")["status"] == "available"
    assert world.fake.access["cut"] == {"10.0.0.1", "10.0.0.2"} == world.grants("cut")


def test_reconcile_removes_orphans_marks_missing_and_resends_access(world):
    world.fake.inventory = lambda: set(world.fake.access) | {"orphan"}
    world.create("p1", "kept", scope="project")
    world.create("p1", "lost", scope="project")
    world.fake.access.pop("lost")  # its volume vanished behind our back
    world.fake.access["kept"] = frozenset({"10.9.9.9"})  # an address added by hand
    report = world.services.worker.reconcile()
    assert report.orphans_removed == ["fake/orphan"] and report.missing == ["p1/lost"]
    assert ("delete", "orphan") in world.fake.calls
    assert world.fake.access["kept"] == {"10.0.0.1", "10.0.0.2"}
    lost = world.row("p1", "lost")
    assert (lost["status"], lost["export"]) == ("error", "")


def test_concurrent_global_puts_of_one_name_make_one_row(world):
    import threading

    answers, errors = [], []

    def put(project: str) -> None:
        try:
            answers.append(world.services.filesystems.put_fs(ADMIN, project, "one", FsEntryIn(size="1Gb", scope="global")))
        except Conflict as e:
            errors.append(e.message)

    threads = [threading.Thread(target=put, args=(f"p{n}",)) for n in range(20)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    with world.sessions() as session:
        assert session.query(db.Filesystem).filter_by(name="one").count() == 1
    assert len(answers) == 1 and len(errors) == 19
    assert all("already exists as a global filesystem" in m for m in errors)


def test_instance_ids_of_other_projects_and_retired_ids_are_not_available(world):
    from sharedfs_api.schemas import StateIn

    with pytest.raises(Conflict, match="^instance id 'j1' is not available$"):
        world.register("p1", "j1", who=PROJ1)
    world.services.instances.delete_instance(PROJ1, "p1", "i1")
    with pytest.raises(Conflict, match="^instance id 'i1' is not available$"):
        world.register("p1", "i1", "10.0.0.1", who=INST1)  # its old token cannot bring it back
    with pytest.raises(Conflict, match="^instance id 'i1' is not available$"):
        world.register("p2", "i1", who=Principal("project", "p2"))  # nor can another project take it
    assert world.register("p1", "i1", "10.0.0.1", who=PROJ1)[0] == 201  # its project can
    world.create("p2", "theirs", scope="project")
    with pytest.raises(NotFound, match="filesystem 'theirs' not found"):
        world.services.instances.report_state(INST1, "p1", "i1", "theirs", StateIn(state="mounted"))
    world.create("p1", "unconnected")
    with pytest.raises(NotFound, match="filesystem 'unconnected' not found"):
        world.services.instances.report_state(INST1, "p1", "i1", "unconnected", StateIn(state="mounted"))


def test_last_seen_is_kept_in_memory_and_written_in_one_batch(world):
    seen = LastSeen(world.sessions)
    listed = lambda: {e["id"]: e["last_seen"] for e in world.services.instances.list_instances(ADMIN, "p1")}  # noqa: E731
    assert listed() == {"i1": None, "i2": None}
    seen.saw("i1")
    seen.saw("gone-meanwhile")  # deregistered before the flush: matches no row, no error
    assert listed()["i1"] is None  # nothing written on a poll
    merged = {e["id"]: e["last_seen"] for e in seen.merge(world.services.instances.list_instances(ADMIN, "p1"))}
    assert merged["i1"] is not None and merged["i2"] is None  # this process answers at once
    assert seen.flush() == 2 and seen.flush() == 0
    first = listed()["i1"]
    assert first == merged["i1"] and listed()["i2"] is None
    assert dt.datetime.fromisoformat(first).tzinfo is not None
    # A time older than the one written (another process's late flush) never moves it back.
    seen.pending["i1"] = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
    seen.flush()
    assert listed()["i1"] == first


def test_the_clouds_word_wins_over_a_squatted_instance_id(world):
    """p2 registered the id Nova then creates in p1 (a mistake or a squat): Nova's notification moves
    it, with its old project's tokens and access, and p2's filesystem no longer reaches its address."""
    world.create("p2", "p2home", scope="project")
    world.register("p2", "vm-x", "10.0.1.50")
    assert "10.0.1.50" in world.fake.access["p2home"]
    from sharedfs_api.auth import store_token

    store_token(world.sessions, "instance", "p2", "vm-x")
    world.create("p1", "p1home", scope="project")
    world.services.instances.register("p1", "vm-x", ["10.0.0.50"])
    listed = {i["id"]: i for i in world.services.instances.list_instances(ADMIN, "p1")}
    assert listed["vm-x"]["addresses"] == ["10.0.0.50"]
    assert "vm-x" not in {i["id"] for i in world.services.instances.list_instances(ADMIN, "p2")}
    assert "10.0.1.50" not in world.fake.access["p2home"] and "10.0.0.50" in world.fake.access["p1home"]
    with world.sessions() as session:
        assert session.query(db.Token).filter(db.Token.instance_id == "vm-x").count() == 0
    # Vendordata at boot for an id another project holds: the cloud's word wins there too.
    world.register("p2", "vm-y", "10.0.1.51")
    assert world.services.instances.enroll("p1", "vm-y")
    assert "vm-y" in {i["id"] for i in world.services.instances.list_instances(ADMIN, "p1")}
