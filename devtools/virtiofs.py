"""virtiofsd serving a host directory to a QEMU guest over a vhost-user socket, stopped by pid.

QEMU 7.2 in Debian 12 ships its own C virtiofsd as /usr/lib/qemu/virtiofsd (no separate package);
it sandboxes itself in mount, pid and network namespaces and exits when the guest powers off.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Optional

VIRTIOFSD = "/usr/lib/qemu/virtiofsd"


class Virtiofsd:
    def __init__(self, source: Path, socket: Path) -> None:
        self.source, self.socket = source, socket
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> Virtiofsd:
        self.socket.unlink(missing_ok=True)
        with open(self.socket.with_suffix(".log"), "wb") as log:
            self.proc = subprocess.Popen([VIRTIOFSD, "-f", f"--socket-path={self.socket}", "-o", f"source={self.source}",
                                          "-o", "cache=none"], stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 10
        while not self.socket.is_socket():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"virtiofsd did not start: {self.socket.with_suffix('.log').read_text()[-1000:]}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(10)
