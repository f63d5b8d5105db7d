"""A Debian 12 system container booted with systemd-nspawn (systemd as PID 1, cloud-init NoCloud), for install tests.

The root filesystem is made once with debootstrap and cached by its package list (under
SHAREDFS_TEST_CACHE, default /var/cache/sharedfs-tests; devtools/cache.py), so later runs skip debootstrap.
Each container boots a copy of it, read-write, so a reboot keeps what the first boot did.
The container shares the host's network: it reaches servers on the host's 127.0.0.1 (or joins a
network namespace of the test's, e.g. the throw-away Ceph cluster's).
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional

import psutil

from .cache import CACHE, build_once

SUITE = "bookworm"
PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "cloud-init", "python3", "python3-venv", "python3-psutil",
    # the agent's optional journal fields (SHAREDFS_FS=…) go through systemd-python
    "python3-systemd",
    # debootstrap does not resolve the virtual package python3-cryptography needs for cloud-init
    "python3-cffi-backend",
    "glusterfs-client", "iproute2", "procps", "util-linux", "ca-certificates",
    # ceph-fuse's own systemd scope, shown in a container inside the Ceph cluster's network namespace
    "ceph-fuse",
]  # fmt: skip

_CLOUD_CFG = """# sharedfs tests: only the local NoCloud seed, never a metadata service (169.254.169.254)
datasource_list: [ NoCloud, None ]
network: {config: disabled}
# no locales package in the minimal root filesystem
locale: false
"""


def _mirror() -> str:
    """The Debian mirror this machine's apt uses."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    listing = Path("/etc/apt/sources.list")
    if listing.exists():
        for line in listing.read_text().splitlines():
            parts = line.split()
            if parts and parts[0] == "deb":
                return parts[1]
    return "http://deb.debian.org/debian"


def rootfs() -> Path:
    """The cached root filesystem, made first if needed (about a minute)."""
    key = hashlib.sha256(f"{SUITE} {' '.join(PACKAGES)} {_CLOUD_CFG}".encode()).hexdigest()[:12]
    path = CACHE / f"debian-{SUITE}-{key}"

    def build(building: Path) -> None:
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(building),
                        _mirror()], check=True, capture_output=True, timeout=1800)  # fmt: skip
        for deb in (building / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        (building / "etc/cloud/cloud.cfg.d/99-sharedfs-tests.cfg").write_text(_CLOUD_CFG)

    return build_once(path, build, " ".join(PACKAGES) + "\n")


def _name(process: psutil.Process) -> str:
    try:
        return process.name()
    except psutil.Error:
        return ""


class Container:
    """One booted container: `run()` executes inside it (nsenter into all its namespaces)."""

    def __init__(self, base: Path, name: str, hosts: Dict[str, str], user_data: str, instance_id: str,
                 vendor_data: Optional[str] = None, meta_data: str = "", netns: Optional[str] = None) -> None:  # fmt: skip
        self.base, self.name = base, name
        self.netns = netns  # a network namespace of ours (`ip netns`) instead of the host's network
        self.root = base / "root"
        self.seed = base / "seed"
        self.console = base / "console.log"
        self.proc: Optional[subprocess.Popen] = None
        self.leader: Optional[int] = None
        base.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-a", "--reflink=auto", str(rootfs()), str(self.root)], check=True)
        (self.root / "etc/hostname").write_text(name + "\n")
        (self.root / "etc/hosts").write_text(
            f"127.0.0.1 localhost {name}\n::1 localhost\n" + "".join(f"{ip} {h}\n" for h, ip in hosts.items())
        )
        self.seed.mkdir()
        (self.seed / "user-data").write_text(user_data)
        (self.seed / "meta-data").write_text(f"instance-id: {instance_id}\nlocal-hostname: {name}\n{meta_data}")
        if vendor_data is not None:
            (self.seed / "vendor-data").write_text(vendor_data)

    def chroot(self, *argv: str) -> subprocess.CompletedProcess:
        """Run a command in the root filesystem without booting it (cloud-init schema, …)."""
        return subprocess.run(["chroot", str(self.root), *argv], capture_output=True, text=True, timeout=120)

    def boot(self, timeout: float = 120) -> float:
        """Boot and wait until systemd has finished starting up; returns the seconds it took."""
        start = time.monotonic()
        with open(self.console, "ab") as console:
            self.proc = subprocess.Popen(
                ["systemd-nspawn", "-b", "-D", str(self.root), "--register=no", "--keep-unit",
                 f"--machine={self.name}", "--bind=/dev/fuse", f"--bind={self.seed}:/var/lib/cloud/seed/nocloud",
                 "--console=read-only",
                 *([f"--network-namespace-path=/run/netns/{self.netns}"] if self.netns else [])],
                stdout=console, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while self.leader is None:
            # nspawn forks a helper before the container's init; the leader is the one that
            # became systemd.
            children = psutil.Process(self.proc.pid).children(recursive=True) if self.proc.poll() is None else []
            inits = [c.pid for c in children if _name(c) == "systemd"]
            if inits:
                self.leader = inits[0]
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"container did not start; see {self.console}")
            else:
                time.sleep(0.05)
        while True:
            state = self.run("systemctl", "is-system-running", timeout=10).stdout.strip()
            if state in ("running", "degraded"):
                return time.monotonic() - start
            if time.monotonic() > deadline:
                tail = self.console.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"boot did not finish within {timeout}s (state {state!r}):\n{tail}")
            time.sleep(0.2)

    def argv(self, *argv: str) -> List[str]:
        return ["nsenter", f"--target={self.leader}", "--all", "--", *argv]

    def run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*argv), capture_output=True, text=True, timeout=timeout)

    def popen(self, *argv: str, **kw) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*argv), **kw)

    def mounts(self) -> Dict[str, str]:
        """Mount point -> fstype, as the container sees them."""
        out = {}
        with open(f"/proc/{self.leader}/mountinfo") as f:
            for line in f:
                fields = line.split(" ")
                out[fields[4]] = fields[fields.index("-", 6) + 1]
        return out

    def poweroff(self, timeout: float = 60) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # nspawn turns it into a clean poweroff
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc, self.leader = None, None
        # nspawn cannot remove this itself when /run is not a tmpfs
        shutil.rmtree(f"/run/systemd/nspawn/propagate/{self.name}", ignore_errors=True)

    def remove(self) -> None:
        self.poweroff()
        shutil.rmtree(self.base, ignore_errors=True)
