"""The nfs driver for real: ganesha exports added over D-Bus, a btrfs qgroup as the size, a client in a network namespace."""

from __future__ import annotations

import ctypes.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools.apiserver import ApiServer
from devtools.ganesha import Dbus, Ganesha
from devtools.namespace import MountNamespace
from devtools.netns import NetNamespace
from tests.conftest import need_root
from tests.support import require, wait_for

REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20
pytestmark = [pytest.mark.root]


class Setup:
    def __init__(self) -> None:
        self.ns = self.net = self.bus = self.ganesha = self.server = None

    def start(self, workdir: Path) -> None:
        need_root()
        for tool in ("ganesha.nfsd", "dbus-daemon", "dbus-send", "mkfs.btrfs", "btrfs", "ip"):
            require(shutil.which(tool) is not None,
                    f"{tool} (Debian packages nfs-ganesha nfs-ganesha-vfs dbus-daemon btrfs-progs iproute2)")  # fmt: skip
        require(ctypes.util.find_library("nfs") is not None, "libnfs (Debian package libnfs13, with libnfs-utils)")
        base = workdir / "ganesha-driver"
        self.root, self.export_dir = base / "btrfs", base / "export.d"
        self.root.mkdir(parents=True)
        image = base / "btrfs.img"
        with open(image, "wb") as f:
            f.truncate(512 * MiB)  # sparse: only what is written takes room
        subprocess.run(["mkfs.btrfs", "-q", "-f", str(image)], check=True, capture_output=True)
        self.ns = MountNamespace()  # the btrfs mount, ganesha and the API server live here only
        self.ns.run(["mount", "-o", "loop", str(image), str(self.root)], check=True)
        self.net = NetNamespace(f"sfg{os.getpid() % 100000}", "10.213.79.0", base, {})
        self.host = self.net.host_address  # ganesha listens there: the client's only way in
        self.bus = Dbus(base / "bus").start()
        self.ganesha = Ganesha(base / "ganesha", export_dir=self.export_dir, bind=self.host,
                               dbus_address=self.bus.address, wrap=self.ns.argv([])).start()  # fmt: skip
        options = {"export_root": str(self.root), "export_dir": str(self.export_dir), "export_host": self.host,
                   "dbus_address": self.bus.address}  # fmt: skip
        self.server = ApiServer(base / "api", driver="nfs", driver_opts=options, wrap=self.ns.argv([])).start()
        self.admin = self.server.token("admin")

    def close(self) -> None:
        """Whatever start() got to, stopped by its own handle."""
        for part, stop in ((self.server, "stop"), (self.ganesha, "stop"), (self.bus, "stop"), (self.net, "close")):
            if part is not None:
                getattr(part, stop)()
        if self.ns is not None:
            self.ns.close(str(self.root))

    def call(self, method: str, path: str, **kw):
        return self.server.call(method, path, self.admin, **kw)

    def client(self, export: str, path: str, size: int) -> dict:
        """The libnfs client in the network namespace: mount `export`, write `size` bytes to `path`."""
        host, _, pseudo = export.partition(":")
        result = self.net.run('cd "$1" && shift && exec "$@"', str(REPO), sys.executable, "-m", "devtools.nfsclient",
                              host, pseudo, path, str(size))  # fmt: skip
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def exports(self) -> str:
        argv = ["dbus-send", f"--bus={self.bus.address}", "--print-reply", "--dest=org.ganesha.nfsd",
                "/org/ganesha/nfsd/ExportMgr", "org.ganesha.nfsd.exportmgr.ShowExports"]  # fmt: skip
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def setup(workdir):
    s = Setup()
    try:
        s.start(workdir)
        yield s
    finally:
        s.close()


def test_export_follows_connections_and_the_size_is_enforced(setup):
    s = setup
    assert s.call("PUT", "/v1.1/p1/os-instances/vm1", json={"instance": {"addresses": [s.net.address]}}).ok
    created = s.call("PUT", "/v1.1/p1/os-filesystem/nfs1", json={"fs_entry": {"size": "16Mb", "fs_type": "nfs"}})
    assert created.status_code == 202, created.text
    entry = s.server.settled(s.admin, "p1", "nfs1")
    assert (entry["status"], entry["export"], entry["fs_type"]) == ("available", f"{s.host}:/nfs1", "nfs"), entry
    conf = (s.export_dir / "nfs1.conf").read_text()
    assert "Access_Type = None;" in conf and "CLIENT" not in conf  # nobody yet
    assert f"%include {s.export_dir / 'nfs1.conf'}" in (s.export_dir / "INDEX.conf").read_text()
    assert str(s.root / "nfs1") in s.exports()

    before = s.client(entry["export"], "/before", MiB)
    assert before["mount"] != "OK", before  # refused before connect

    assert s.call("PUT", "/v1.1/p1/os-filesystem/nfs1/instances/vm1").status_code == 201
    assert f"Clients = {s.net.address};" in (s.export_dir / "nfs1.conf").read_text()
    small = s.client(entry["export"], "/small", 4 * MiB)
    assert (small["mount"], small["write"], small["written"]) == ("OK", "OK", 4 * MiB), small
    owner = s.ns.run(["stat", "-c", "%s %u", str(s.root / "nfs1" / "small")]).stdout.split()
    assert owner == [str(4 * MiB), "65534"], owner  # the client's root squashed to nobody

    big = s.client(entry["export"], "/big", 32 * MiB)  # twice the size: the server says no, by its own word
    assert big["mount"] == "OK" and big["write"] != "OK" and big["status"] in ("NFS4ERR_DQUOT", "NFS4ERR_NOSPC"), big
    assert 8 * MiB <= big["written"] <= 16 * MiB, big  # what the quota had left after /small, no more
    print(f"\nnfs driver: past the 16 MiB size, {big['status']} after {big['written'] / MiB:.1f} MiB of /big")

    assert s.call("DELETE", "/v1.1/p1/os-filesystem/nfs1/instances/vm1").status_code == 202
    assert "CLIENT" not in (s.export_dir / "nfs1.conf").read_text()
    after = s.client(entry["export"], "/after", MiB)
    assert after["mount"] != "OK", after  # refused after disconnect

    assert s.call("DELETE", "/v1.1/p1/os-filesystem/nfs1").status_code == 202
    assert s.server.settled(s.admin, "p1", "nfs1") is None
    assert not (s.export_dir / "nfs1.conf").exists() and "nfs1" not in (s.export_dir / "INDEX.conf").read_text()
    assert str(s.root / "nfs1") not in s.exports()
    assert s.ns.run(["test", "-e", str(s.root / "nfs1")]).returncode == 1  # the subvolume and its data: gone
    assert "nfs1" not in s.ns.run(["btrfs", "subvolume", "list", str(s.root)], check=True).stdout


def test_export_survives_a_ganesha_restart_and_ro_is_read_only(setup):
    s = setup
    assert s.call("PUT", "/v1.1/p2/os-instances/vm2", json={"instance": {"addresses": [s.net.address]}}).ok
    for name, options in (("keep", []), ("rofs", ["ro"])):
        entry = {"size": "64Mb", "fs_type": "nfs", "mount_options": options}
        assert s.call("PUT", f"/v1.1/p2/os-filesystem/{name}", json={"fs_entry": entry}).status_code == 202
        assert s.server.settled(s.admin, "p2", name)["status"] == "available"
        assert s.call("PUT", f"/v1.1/p2/os-filesystem/{name}/instances/vm2").status_code == 201
    export = f"{s.host}:/keep"
    assert s.client(export, "/one", MiB)["write"] == "OK"
    read_only = s.client(f"{s.host}:/rofs", "/no", MiB)
    assert read_only["mount"] == "OK" and read_only["written"] == 0, read_only
    assert read_only["status"] in ("NFS4ERR_ROFS", "NFS4ERR_ACCESS", "NFS4ERR_PERM"), read_only
    print(f"\nnfs driver: a ro export answers a create with {read_only['status']} ({read_only['write']})")

    s.ganesha.restart()  # the export comes back from INDEX.conf, with its clients
    assert str(s.root / "keep") in s.exports()
    again = s.client(export, "/two", MiB)
    assert (again["mount"], again["write"]) == ("OK", "OK"), again
    assert s.ns.run(["test", "-s", str(s.root / "keep" / "one")]).returncode == 0  # the data too

    for name in ("keep", "rofs"):
        assert s.call("DELETE", f"/v1.1/p2/os-filesystem/{name}").status_code == 202
        assert s.server.settled(s.admin, "p2", name) is None


def test_latency_create_to_available_and_connect_to_mountable(setup):
    """The figures for docs/benchmarks.md: median of 5 each (printed with -s)."""
    s = setup
    assert s.call("PUT", "/v1.1/p3/os-instances/vm3", json={"instance": {"addresses": [s.net.address]}}).ok
    created, connected = [], []
    for n in range(5):
        name = f"lat{n}"
        start = time.monotonic()
        assert s.call("PUT", f"/v1.1/p3/os-filesystem/{name}", json={"fs_entry": {"size": "64Mb"}}).status_code == 202
        assert s.server.settled(s.admin, "p3", name)["status"] == "available"
        created.append(time.monotonic() - start)
        start = time.monotonic()
        assert s.call("PUT", f"/v1.1/p3/os-filesystem/{name}/instances/vm3").status_code == 201
        assert wait_for(lambda: s.client(f"{s.host}:/{name}", f"/m{n}", 1)["write"] == "OK", timeout=30)  # noqa: B023
        connected.append(time.monotonic() - start)
    for n in range(5):
        assert s.call("DELETE", f"/v1.1/p3/os-filesystem/lat{n}").status_code == 202
    print(
        f"\nnfs driver (ganesha, btrfs): create -> available {statistics.median(created) * 1000:.0f} ms, "
        f"connect -> mountable {statistics.median(connected) * 1000:.0f} ms (median of 5)"
    )
    assert wait_for(lambda: all(s.server.settled(s.admin, "p3", f"lat{n}") is None for n in range(5)), timeout=60)
