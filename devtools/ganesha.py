"""nfs-ganesha as a user-space NFS server on 127.0.0.1 (v3 and v4), for the guest's kernel client."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Optional

_CONFIG = """NFS_CORE_PARAM {{ Protocols = 3, 4; NFS_Port = 2049; MNT_Port = 20048;
                 Enable_NLM = false; Enable_RQUOTA = false; Bind_addr = 127.0.0.1; }}
NFSV4 {{ Graceless = true; RecoveryBackend = fs; RecoveryRoot = {base}/recovery; }}
EXPORT {{ Export_Id = 1; Path = {export}; Pseudo = /export; Access_Type = RW;
         Squash = No_Root_Squash; Protocols = 3, 4; Transports = TCP; SecType = sys;
         Attr_Expiration_Time = 0;  # re-read attributes: a re-created export must give ESTALE at once
         FSAL {{ Name = VFS; }} }}
LOG {{ Default_Log_Level = EVENT; }}
"""


class Ganesha:
    def __init__(self, base: Path) -> None:
        self.base = base.resolve()
        self.export = self.base / "export"
        self.proc: Optional[subprocess.Popen] = None
        self.rpcbind: Optional[subprocess.Popen] = None

    def start(self) -> Ganesha:
        for d in (self.export, self.base / "recovery"):
            d.mkdir(parents=True, exist_ok=True)
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", 2049)) == 0:
                raise RuntimeError("something already listens on 127.0.0.1:2049")
        (self.base / "ganesha.conf").write_text(_CONFIG.format(base=self.base, export=self.export))
        # ganesha registers its v3 services with rpcbind (the guest itself is told the ports);
        # one already running on this machine serves as well.
        with socket.socket() as s:
            rpcbind_up = s.connect_ex(("127.0.0.1", 111)) == 0
        if not rpcbind_up:
            Path("/run/rpcbind").mkdir(exist_ok=True)
            self.rpcbind = subprocess.Popen(["rpcbind", "-f", "-w"], start_new_session=True)
            time.sleep(0.3)
        self.proc = subprocess.Popen(
            ["ganesha.nfsd", "-F", "-L", str(self.base / "ganesha.log"), "-f", str(self.base / "ganesha.conf"),
             "-p", str(self.base / "ganesha.pid"), "-N", "NIV_EVENT"], start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", 2049)) == 0:
                    return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ganesha did not start; see {self.base / 'ganesha.log'}")
            time.sleep(0.05)

    def stop(self) -> None:
        for proc in (self.proc, self.rpcbind):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
