"""A throw-away single-node Ceph (mon, mgr, OSD, MDS) with one CephFS, in a network namespace, stopped by pid.

Debian's own packages (ceph-mon ceph-mgr ceph-osd ceph-mds): no systemd, no cephadm. Every daemon
listens on ADDRESS, which exists only inside the namespace, on a tap device that a QEMU guest can
plug into (Ceph tells clients the daemons' own addresses, so user-mode port forwards cannot reach
the OSD and MDS). Clients on the host run inside the namespace (`mount_namespace()`), with the
namespace's /etc/ceph holding this cluster's conf and a client key. Bootstrap takes ~20 s on
these machines: start it once per test session.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .namespace import MountNamespace

ADDRESS = "10.0.2.100"  # the address QEMU's guests already use for the host's servers (guest-init.sh: 10.0.2.15/24)
TAP = "cephtap0"
CLIENT = "sfs"  # the cephx user the agent mounts as: rw on the filesystem's / and nothing else

_CONF = """[global]
fsid = {fsid}
mon host = [v2:{ip}:3300,v1:{ip}:6789]
public addr = {ip}
public network = {ip}/24
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
keyring = {base}/$name.keyring
run dir = {base}/run
admin socket = {base}/run/$name.$pid.asok
log file = {base}/log/$name.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
# The test machines' disks are often fuller than Ceph's 30 % warning level.
mon data avail warn = 2
mon data avail crit = 1
# Daemons only: a client's pid file (one per name) made a quick remount fail while the old ceph-fuse exited.
[mon]
pid file = {base}/run/$name.pid
mon data = {base}/mon.$id
[mgr]
pid file = {base}/run/$name.pid
mgr data = {base}/mgr.$id
mgr disabled modules = dashboard
[osd]
pid file = {base}/run/$name.pid
osd data = {base}/osd.$id
osd objectstore = bluestore
bluestore block size = 4294967296
osd memory target = 939524096
[mds]
pid file = {base}/run/$name.pid
mds data = {base}/mds.$id
[client]
# A client of a dead cluster gives up on a mount after this, not the default 300 s.
client mount timeout = 15
"""


class CephCluster:
    """Bootstrap with start(); the daemons' pids are kept, stop() kills exactly those (and freeze()
    SIGSTOPs them for dead-cluster tests, thaw() resumes them)."""

    def __init__(self, base: Path, netns: str = "sfsceph") -> None:
        self.base = base.resolve()
        self.netns = netns
        self.conf = self.base / "ceph.conf"
        self.etc = self.base / "etc-ceph"  # bind-mounted on /etc/ceph inside client namespaces
        self.daemons: Dict[str, subprocess.Popen] = {}
        self.fs_name = "cephfs"

    # -- plumbing --------------------------------------------------------------------------------
    def _in_ns(self, argv: Sequence[str]) -> List[str]:
        return ["ip", "netns", "exec", self.netns, *argv]

    def ceph(self, *args: str, timeout: float = 60) -> str:
        return subprocess.run(self._in_ns(["ceph", "-c", str(self.conf), *args]), capture_output=True, text=True,
                              check=True, timeout=timeout).stdout  # fmt: skip

    def _daemon(self, name: str, argv: Sequence[str]) -> None:
        with open(self.base / "log" / f"{name}.out", "wb") as log:
            self.daemons[name] = subprocess.Popen(self._in_ns(argv), stdout=log, stderr=subprocess.STDOUT,
                                                  stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip

    # -- life cycle ------------------------------------------------------------------------------
    def start(self, timeout: float = 180) -> CephCluster:
        if Path(f"/run/netns/{self.netns}").exists():
            raise RuntimeError(f"network namespace {self.netns} exists: a cluster of an earlier run is left over")
        for d in ("log", "run", "mon.a", "mgr.x", "osd.0", "mds.a", "etc-ceph"):
            (self.base / d).mkdir(parents=True, exist_ok=True)
        for argv in (["ip", "netns", "add", self.netns],
                     self._in_ns(["ip", "link", "set", "lo", "up"]),
                     self._in_ns(["ip", "tuntap", "add", "dev", TAP, "mode", "tap"]),
                     self._in_ns(["ip", "addr", "add", f"{ADDRESS}/24", "dev", TAP]),
                     self._in_ns(["ip", "link", "set", TAP, "up"])):  # fmt: skip
            subprocess.run(argv, check=True, capture_output=True)
        fsid = str(uuid.uuid4())
        self.conf.write_text(_CONF.format(fsid=fsid, ip=ADDRESS, base=self.base))
        b, c = self.base, str(self.conf)
        run = lambda *argv: subprocess.run(argv, check=True, capture_output=True, timeout=120)  # noqa: E731
        run("ceph-authtool", "--create-keyring", f"{b}/mon.a.keyring", "--gen-key", "-n", "mon.", "--cap", "mon", "allow *")
        run("ceph-authtool", "--create-keyring", f"{b}/client.admin.keyring", "--gen-key", "-n", "client.admin",
            "--cap", "mon", "allow *", "--cap", "osd", "allow *", "--cap", "mds", "allow *", "--cap", "mgr", "allow *")
        run("ceph-authtool", f"{b}/mon.a.keyring", "--import-keyring", f"{b}/client.admin.keyring")
        run("monmaptool", "--create", "--fsid", fsid, "--addv", "a", f"[v2:{ADDRESS}:3300,v1:{ADDRESS}:6789]",
            f"{b}/monmap")
        run(*self._in_ns(["ceph-mon", "-c", c, "--mkfs", "-i", "a", "--monmap", f"{b}/monmap",
                          "--keyring", f"{b}/mon.a.keyring"]))  # fmt: skip
        self._daemon("mon.a", ["ceph-mon", "-c", c, "-i", "a", "-f"])
        self.ceph("auth", "get-or-create", "mgr.x", "mon", "allow profile mgr", "osd", "allow *", "mds", "allow *",
                  "-o", f"{b}/mgr.x.keyring")  # fmt: skip
        self._daemon("mgr.x", ["ceph-mgr", "-c", c, "-i", "x", "-f"])
        osd_uuid = str(uuid.uuid4())
        osd_id = self.ceph("osd", "new", osd_uuid).strip()
        run(*self._in_ns(["ceph-osd", "-c", c, "-i", osd_id, "--mkfs", "--mkkey", "--no-mon-config",
                          "--osd-uuid", osd_uuid, "--keyring", f"{b}/osd.{osd_id}.keyring"]))  # fmt: skip
        self.ceph("auth", "add", f"osd.{osd_id}", "osd", "allow *", "mon", "allow profile osd", "mgr",
                  "allow profile osd", "-i", f"{b}/osd.{osd_id}.keyring")  # fmt: skip
        self._daemon(f"osd.{osd_id}", ["ceph-osd", "-c", c, "-i", osd_id, "-f"])
        self.ceph("auth", "get-or-create", "mds.a", "mon", "allow profile mds", "osd", "allow rwx", "mds", "allow *",
                  "mgr", "allow profile mds", "-o", f"{b}/mds.a.keyring")  # fmt: skip
        self._daemon("mds.a", ["ceph-mds", "-c", c, "-i", "a", "-f"])
        self.ceph("osd", "pool", "create", "cephfs_metadata", "8")
        self.ceph("osd", "pool", "create", "cephfs_data", "8")
        self.ceph("fs", "new", self.fs_name, "cephfs_metadata", "cephfs_data")
        self._wait_ready(timeout)
        # The agent's user: a key in a secretfile (the bare base64 key), as mount.ceph and ceph-fuse take it.
        self.ceph("fs", "authorize", self.fs_name, f"client.{CLIENT}", "/", "rw")
        key = self.ceph("auth", "print-key", f"client.{CLIENT}").strip()
        (self.etc / f"{CLIENT}.secret").write_text(key + "\n")
        (self.etc / f"{CLIENT}.secret").chmod(0o600)
        (self.etc / "ceph.conf").write_text(self.conf.read_text())
        return self

    def _wait_ready(self, timeout: float) -> None:
        """HEALTH_OK comes before the placement groups are active: wait for an active MDS and all PGs clean."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for name, proc in self.daemons.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"ceph daemon {name} exited: {(self.base / 'log' / f'{name}.out').read_text()[-2000:]}")
            try:
                health, mds, pgs = self.ceph("health"), self.ceph("mds", "stat"), self.ceph("pg", "stat")
            except subprocess.SubprocessError as e:
                last = str(e)
            else:
                states = pgs.split(": ", 1)[-1].split(";")[0]  # "16 active+clean" when done
                last = f"{health.strip()} | {mds.strip()} | {states}"
                if health.startswith("HEALTH_OK") and "up:active" in mds and states.endswith(" active+clean") \
                        and "," not in states:  # fmt: skip
                    return
            time.sleep(0.5)
        raise RuntimeError(f"ceph did not become ready in {timeout:.0f}s: {last}")

    def mkdir(self, path: str) -> None:
        """A directory inside the filesystem, made through an admin ceph-fuse in a throw-away namespace."""
        mnt = self.base / "admin-mnt"
        mnt.mkdir(exist_ok=True)
        script = (f'ceph-fuse -c "{self.conf}" --id admin "{mnt}" >/dev/null 2>&1 && mkdir -p "{mnt}{path}";'
                  f' rc=$?; umount "{mnt}"; exit $rc')  # fmt: skip
        subprocess.run(self._in_ns(["unshare", "--mount", "--propagation", "private", "sh", "-c", script]),
                       check=True, capture_output=True, timeout=60)  # fmt: skip

    def read(self, path: str) -> Optional[str]:
        """A file's text inside the filesystem, read through an admin ceph-fuse; None if absent."""
        mnt = self.base / "admin-mnt"
        mnt.mkdir(exist_ok=True)
        script = (f'ceph-fuse -c "{self.conf}" --id admin "{mnt}" >/dev/null 2>&1 || exit 3; cat "{mnt}{path}";'
                  f' rc=$?; umount "{mnt}"; exit $rc')  # fmt: skip
        out = subprocess.run(self._in_ns(["unshare", "--mount", "--propagation", "private", "sh", "-c", script]),
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        if out.returncode == 3:
            raise RuntimeError(f"admin ceph-fuse failed: {out.stderr}")
        return out.stdout if out.returncode == 0 else None

    def client_log(self, lines: int = 15) -> str:
        """The tail of the agent's ceph-fuse log: mount.fuse.ceph exits 0 whatever ceph-fuse said."""
        path = self.base / "log" / f"client.{CLIENT}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def freeze(self) -> None:
        """Every daemon SIGSTOPped: a cluster that accepts connections and never answers."""
        for proc in self.daemons.values():
            os.kill(proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for proc in self.daemons.values():
            os.kill(proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        # A throw-away cluster: nothing to flush, so no orderly shutdown (the MDS alone takes ~7 s).
        for proc in self.daemons.values():
            try:
                os.killpg(proc.pid, signal.SIGCONT)
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)
        self.daemons.clear()
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)

    # -- clients ---------------------------------------------------------------------------------
    def mount_namespace(self) -> ClusterMountNamespace:
        return ClusterMountNamespace(self)


class ClusterMountNamespace(MountNamespace):
    """A private mount namespace inside the cluster's network namespace, with this cluster's
    /etc/ceph (conf + the client's secretfile) bind-mounted over the host's."""

    def __init__(self, cluster: CephCluster) -> None:
        self.cluster = cluster
        self.holder = subprocess.Popen(
            cluster._in_ns(["unshare", "--mount", "--propagation", "private", "sleep", "infinity"]),
            start_new_session=True,
        )
        # `ip netns exec` and `unshare` both exec: the holder's pid becomes the sleep's.
        deadline = time.monotonic() + 5
        while True:
            try:
                if os.readlink(f"/proc/{self.holder.pid}/exe").endswith("/sleep"):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("could not enter the cluster's network namespace")
            time.sleep(0.02)
        self.sleeper = self.holder.pid
        self.ns = os.readlink(f"/proc/{self.sleeper}/ns/mnt")
        self.run(["mount", "--bind", str(cluster.etc), "/etc/ceph"], check=True)

    def argv(self, argv: Sequence[str]) -> List[str]:
        return ["nsenter", f"--target={self.sleeper}", "--mount", "--net", "--", *argv]

    def mounts(self):
        from sharedfs_agent.actual import read_mountinfo

        return {r.mount_point: r for r in read_mountinfo(f"/proc/{self.sleeper}/mountinfo")}
