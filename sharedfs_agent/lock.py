"""The pass lock: one reconcile pass at a time per state_dir, whether from `once`, `release` or the daemon."""

from __future__ import annotations

import fcntl
import os
import time

from .errors import LockHeld

__all__ = ["PassLock"]


class PassLock:
    """One pass at a time per state_dir, also against a running daemon (flock, freed on exit)."""

    def __init__(self, path: str, wait: float) -> None:
        self.path, self.wait, self.fd = path, wait, -1

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    raise LockHeld(f"another sharedfs-agent holds {self.path}") from None
                time.sleep(0.1)

    def __exit__(self, *exc) -> None:
        os.close(self.fd)
