"""nfs-ganesha as a user-space NFS server (v3 and v4), for the guest's kernel client or the nfs driver's tests.

With `export_dir`, ganesha serves only what the nfs driver adds (its INDEX.conf is %included),
answers on a private D-Bus (`Dbus`) and may run inside a mount namespace (`wrap`)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import List, Optional, Sequence

_CONFIG = """NFS_CORE_PARAM {{ Protocols = 3, 4; NFS_Port = 2049; MNT_Port = 20048;
                 Enable_NLM = false; Enable_RQUOTA = false; Bind_addr = 127.0.0.1; }}
NFSV4 {{ Graceless = true; RecoveryBackend = fs; RecoveryRoot = {base}/recovery; }}
EXPORT {{ Export_Id = 1; Path = {export}; Pseudo = /export; Access_Type = RW;
         Squash = No_Root_Squash; Protocols = 3, 4; Transports = TCP; SecType = sys;
         Attr_Expiration_Time = 0;  # re-read attributes: a re-created export must give ESTALE at once
         FSAL {{ Name = VFS; }} }}
LOG {{ Default_Log_Level = EVENT; }}
"""

# The nfs driver's ganesha: v4 only, nothing exported but what %include brings.
_DRIVER_CONFIG = """NFS_CORE_PARAM {{ Protocols = 4; NFS_Port = 2049; Enable_NLM = false; Enable_RQUOTA = false;
                 Bind_addr = {bind}; }}
NFSV4 {{ Graceless = true; RecoveryBackend = fs; RecoveryRoot = {base}/recovery; }}
LOG {{ Default_Log_Level = EVENT; }}
%include {export_dir}/INDEX.conf
"""

# A bus of its own (its socket in the test's directory): root connects, ganesha owns org.ganesha.nfsd.
_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="root"/>
    <allow own="org.ganesha.nfsd"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""


class Dbus:
    """A private dbus-daemon (`--print-address`) standing in for the system bus."""

    def __init__(self, base: Path) -> None:
        self.base = base.resolve()
        self.proc: Optional[subprocess.Popen] = None
        self.address = ""

    def start(self) -> Dbus:
        self.base.mkdir(parents=True, exist_ok=True)
        config = self.base / "bus.conf"
        config.write_text(_BUS_CONFIG.format(socket=self.base / "bus.sock"))
        self.proc = subprocess.Popen(["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     start_new_session=True)  # fmt: skip
        assert self.proc.stdout is not None
        self.address = self.proc.stdout.readline().strip()  # printed once it listens
        if not self.address:
            raise RuntimeError("dbus-daemon did not start")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Ganesha:
    def __init__(self, base: Path, export_dir: Optional[Path] = None, bind: str = "127.0.0.1",
                 dbus_address: str = "", wrap: Sequence[str] = ()) -> None:  # fmt: skip
        self.base = base.resolve()
        self.export = self.base / "export"
        self.export_dir, self.bind, self.dbus_address = export_dir, bind, dbus_address
        self.wrap: List[str] = list(wrap)
        self.proc: Optional[subprocess.Popen] = None
        self.rpcbind: Optional[subprocess.Popen] = None

    def start(self) -> Ganesha:
        for d in (self.export, self.base / "recovery"):
            d.mkdir(parents=True, exist_ok=True)
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", 2049)) == 0:
                raise RuntimeError("something already listens on 127.0.0.1:2049")
        if self.export_dir is None:
            (self.base / "ganesha.conf").write_text(_CONFIG.format(base=self.base, export=self.export))
        else:
            self.export_dir.mkdir(parents=True, exist_ok=True)
            (self.export_dir / "INDEX.conf").touch()
            (self.base / "ganesha.conf").write_text(_DRIVER_CONFIG.format(base=self.base, bind=self.bind,
                                                                          export_dir=self.export_dir))  # fmt: skip
        # ganesha registers its v3 services with rpcbind (the guest itself is told the ports);
        # one already running on this machine serves as well. v4 alone needs none.
        with socket.socket() as s:
            rpcbind_up = s.connect_ex(("127.0.0.1", 111)) == 0
        if not rpcbind_up and self.export_dir is None:
            Path("/run/rpcbind").mkdir(exist_ok=True)
            self.rpcbind = subprocess.Popen(["rpcbind", "-f", "-w"], start_new_session=True)
            time.sleep(0.3)
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.dbus_address} if self.dbus_address else None
        self.proc = subprocess.Popen(
            [*self.wrap, "ganesha.nfsd", "-F", "-L", str(self.base / "ganesha.log"), "-f", str(self.base / "ganesha.conf"),
             "-p", str(self.base / "ganesha.pid"), "-N", "NIV_EVENT"], start_new_session=True, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as s:
                if s.connect_ex((self.bind if self.bind != "0.0.0.0" else "127.0.0.1", 2049)) == 0 and self._on_bus():
                    return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()  # nothing left running: the caller has no handle on a failed start
                log = self.base / "ganesha.log"
                said = [line for line in log.read_text(errors="replace").splitlines() if ":CRIT :" in line or
                        ":FATAL :" in line or ":MAJ :" in line] if log.exists() else []  # fmt: skip
                raise RuntimeError(f"ganesha did not start (exit {self.proc.poll()}); see {log}: {said[-5:]}")
            time.sleep(0.05)

    def _on_bus(self) -> bool:
        """Without a bus of its own: true. With one: whether ganesha owns its name there yet."""
        if not self.dbus_address:
            return True
        argv = ["dbus-send", f"--bus={self.dbus_address}", "--print-reply", "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner", "string:org.ganesha.nfsd"]  # fmt: skip
        return "boolean true" in subprocess.run(argv, capture_output=True, text=True).stdout

    def restart(self) -> Ganesha:
        """Stop and start again: what it exports afterwards is what its config files say."""
        self.stop()
        return self.start()

    def stop(self) -> None:
        for proc in (self.proc, self.rpcbind):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
