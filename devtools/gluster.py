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
from typing import Dict, Optional

GLUSTERD = "/usr/sbin/glusterd"

_VOLFILE = """volume management
    type mgmt/glusterd
    option working-directory {state}
    option transport-type socket
    option transport.socket.listen-port 24007
    option transport.socket.bind-address 127.0.0.1
    option ping-timeout 0
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


def gluster(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["gluster", "--mode=script", *args], capture_output=True, text=True, check=check, timeout=60)


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Glusterd:
    """One glusterd and the volumes a test session creates on it."""

    def __init__(self, base: Path) -> None:
        self.base = base.resolve()
        self.host = brick_host()
        self.proc: Optional[subprocess.Popen] = None
        self.volumes: Dict[str, Path] = {}

    def start(self) -> None:
        if port_in_use(24007):
            raise RuntimeError("a glusterd already listens on 127.0.0.1:24007 (only one per machine); stop it first")
        state = self.base / "state"
        state.mkdir(parents=True)
        if os.path.isdir("/var/lib/glusterd/groups"):
            shutil.copytree("/var/lib/glusterd/groups", state / "groups")
        (self.base / "glusterd.vol").write_text(_VOLFILE.format(state=state))
        with open(self.base / "glusterd.out", "wb") as log:
            self.proc = subprocess.Popen(
                [GLUSTERD, "-N", "-f", str(self.base / "glusterd.vol"), f"--log-file={self.base / 'glusterd.log'}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while gluster("volume", "list", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"glusterd did not start; see {self.base / 'glusterd.log'}")
            time.sleep(0.1)

    def create_volume(self, name: str) -> str:
        """Create and start a one-brick volume; returns its export, host:/name."""
        brick = self.base / "bricks" / name
        brick.mkdir(parents=True)
        gluster("volume", "create", name, f"{self.host}:{brick}", "force")
        gluster("volume", "start", name)
        self.volumes[name] = brick
        return f"{self.host}:/{name}"

    def brick_pid(self, name: str) -> int:
        (pidfile,) = glob.glob(f"/var/run/gluster/vols/{name}/*.pid")
        return int(Path(pidfile).read_text())

    def delete_volume(self, name: str) -> None:
        gluster("volume", "stop", name, "force", check=False)
        gluster("volume", "delete", name, check=False)
        self.volumes.pop(name, None)

    def stop(self) -> None:
        brick_pids = []
        for name in list(self.volumes):
            try:
                brick_pids.append(self.brick_pid(name))
            except (ValueError, OSError):
                pass
            self.delete_volume(name)
        for pid in brick_pids:  # bricks we started, if "volume stop" left them
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
