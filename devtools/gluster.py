"""A real single-node glusterd for tests and the demo: private state dir, bound to loopback, stopped by pid."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional

from .namespace import namespace_members

GLUSTERD = "/usr/sbin/glusterd"

_VOLFILE = """volume management
    type mgmt/glusterd
    option working-directory {state}
    option transport-type socket
    option transport.socket.listen-port 24007
{bind}    option ping-timeout 0
    option event-threads 1
    option max-port 60999
end-volume
"""


def brick_host() -> str:
    """The gluster CLI refuses 127.0.0.1 and localhost as brick hosts: use this machine's name,
    which must resolve to a loopback address so nothing leaves the machine."""
    name = socket.gethostname()
    address = socket.gethostbyname(name)
    if not address.startswith("127."):
        raise RuntimeError(f"hostname {name} resolves to {address}, not loopback; add it to /etc/hosts")
    return name


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Glusterd:
    """One glusterd and the volumes a test session creates on it.

    glusterd runs in a private mount namespace, and so does every gluster CLI call: quota and
    geo-replication make auxiliary FUSE mounts (/var/run/gluster/VOL/), which must not land in
    the host's mount table. `bind` is 127.0.0.1 unless a test needs clients in a network
    namespace of its own (then 0.0.0.0: only loopback and that namespace ever connect).
    """

    def __init__(self, base: Path, bind: str = "127.0.0.1") -> None:
        self.base = base.resolve()
        self.bind = bind
        self.host = brick_host()
        self.proc: Optional[subprocess.Popen] = None
        self.volumes: Dict[str, Path] = {}

    @property
    def command(self) -> List[str]:
        """The gluster CLI, run inside glusterd's mount namespace (also handed to the API driver)."""
        return ["nsenter", f"--target={self.proc.pid}", "--mount", "--", "gluster"]

    def driver_options(self, brick_root: Path, quota: bool = True) -> Dict[str, str]:
        """--driver-opt values for an API server whose glusterfs driver makes volumes on this glusterd."""
        return {"brick_root": str(brick_root), "brick_host": self.host,
                "gluster_command": " ".join(self.command), "quota": str(quota).lower()}  # fmt: skip

    def gluster(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([*self.command, "--mode=script", *args], capture_output=True, text=True,
                              check=check, timeout=120)  # fmt: skip

    def start(self) -> None:
        if port_in_use(24007):
            raise RuntimeError("a glusterd already listens on 127.0.0.1:24007 (only one per machine); stop it first")
        state = self.base / "state"
        state.mkdir(parents=True)
        if os.path.isdir("/var/lib/glusterd/groups"):
            shutil.copytree("/var/lib/glusterd/groups", state / "groups")
        # With no bind-address glusterd and its bricks listen on every address; an explicit
        # 0.0.0.0 makes bricks listen on the address the brick host name resolves to.
        bind = "" if self.bind == "0.0.0.0" else f"    option transport.socket.bind-address {self.bind}\n"
        (self.base / "glusterd.vol").write_text(_VOLFILE.format(state=state, bind=bind))
        with open(self.base / "glusterd.out", "wb") as log:
            self.proc = subprocess.Popen(
                [
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    GLUSTERD,
                    "-N",
                    "-f",
                    str(self.base / "glusterd.vol"),
                    f"--log-file={self.base / 'glusterd.log'}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while self.gluster("volume", "list", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"glusterd did not start; see {self.base / 'glusterd.log'}")
            time.sleep(0.1)

    def create_volume(self, name: str) -> str:
        """Create and start a one-brick volume; returns its export, host:/name."""
        brick = self.base / "bricks" / name
        brick.mkdir(parents=True)
        self.gluster("volume", "create", name, f"{self.host}:{brick}", "force")
        self.gluster("volume", "start", name)
        self.volumes[name] = brick
        return f"{self.host}:/{name}"

    def brick_pid(self, name: str) -> int:
        (pidfile,) = glob.glob(f"/var/run/gluster/vols/{name}/*.pid")
        return int(Path(pidfile).read_text())

    def delete_volume(self, name: str) -> None:
        self.gluster("volume", "stop", name, "force", check=False)
        self.gluster("volume", "delete", name, check=False)
        self.volumes.pop(name, None)

    def stop(self) -> None:
        for name in list(self.volumes):
            self.delete_volume(name)
        if self.proc is None:
            return
        # Bricks, quotad and aux clients that glusterd started live in its mount namespace,
        # whoever created their volume (a test or the API's driver): all of them are ours.
        namespace = os.readlink(f"/proc/{self.proc.pid}/ns/mnt")
        for pid in namespace_members(namespace):
            if pid != self.proc.pid:
                try:
                    os.kill(pid, signal.SIGCONT)
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
