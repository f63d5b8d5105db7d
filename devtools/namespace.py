"""A private mount namespace held open by a sleeping process: real mounts the host never sees."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import List, Sequence

from sharedfs_agent.actual import read_mountinfo


def namespace_members(namespace: str) -> List[int]:
    """Pids of the processes in a mount namespace (compared by its /proc/PID/ns/mnt link)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "ns" / "mnt") == namespace:
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


class MountNamespace:
    """`unshare --mount --propagation private`; commands run inside with nsenter."""

    def __init__(self) -> None:
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sleep", "infinity"], start_new_session=True
        )
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{self.holder.pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt"):
            if time.monotonic() > deadline:
                raise RuntimeError("unshare did not create a mount namespace")
            time.sleep(0.01)
        self.ns = os.readlink(f"/proc/{self.holder.pid}/ns/mnt")

    def argv(self, argv: Sequence[str]) -> List[str]:
        return ["nsenter", f"--target={self.holder.pid}", "--mount", "--", *argv]

    def run(self, argv: Sequence[str], timeout: float = 120, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(argv), capture_output=True, text=True, timeout=timeout, **kw)

    def popen(self, argv: Sequence[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(self.argv(argv), **kw)

    def mounts(self):
        return {r.mount_point: r for r in read_mountinfo(f"/proc/{self.holder.pid}/mountinfo")}

    def read(self, path: str) -> str:
        return self.run(["cat", path], check=True).stdout

    def write(self, path: str, text: str) -> None:
        self.run(["sh", "-c", 'printf %s "$1" > "$2"', "sh", text, path], check=True)

    def members(self) -> List[int]:
        """Processes living in this namespace: ours, since only our tests enter it."""
        return namespace_members(self.ns)

    def close(self, under: str) -> None:
        """Unmount what tests mounted below `under`, then stop every process of the namespace."""
        for mp in sorted((m for m in self.mounts() if m.startswith(under)), key=len, reverse=True):
            self.run(["umount", "-l", mp], timeout=30)
        for pid in self.members():
            try:
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.holder.wait(10)
