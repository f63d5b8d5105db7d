"""Run a helper without a shell, bounded by a timeout that kills its whole process group."""

from __future__ import annotations

import os
import signal
import time
from typing import Sequence

from ..errors import TimeoutExpired
from ..records import dataclass

__all__ = ["Result", "run"]

_OUTPUT_LIMIT = 64 * 1024  # what we keep of a helper's stdout/stderr for messages


@dataclass(frozen=True)
class Result:
    argv: Sequence[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def summary(self) -> str:
        """The helper's last words, on one line, for status and log."""
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return text[-1][:300] if text else f"exit status {self.returncode}"


def _read(f) -> str:
    f.seek(0)
    return f.read(_OUTPUT_LIMIT).decode("utf-8", "replace")


def _output_file(name: str):
    """An anonymous file in memory (memfd), for a helper's output: a file, as tempfile's would be,
    without tempfile (and the shutil, random, bz2 and lzma it brings) in the idle daemon."""
    return open(os.memfd_create(f"sharedfs-helper-{name}", os.MFD_CLOEXEC), "w+b")  # noqa: SIM115 - the caller closes


def run(argv: Sequence[str], timeout: float) -> Result:
    """Run argv in a new session; past `timeout` seconds SIGKILL its process group.

    Output goes to temporary files, not pipes: a daemon the helper forks (the GlusterFS FUSE
    client) could inherit a pipe and keep communicate() waiting long after the helper exited.
    A new session makes the helper a group leader, so the kill reaches every child it left
    behind (csi-driver-nfs#1271: an abandoned mount.nfs poisoned every later mount).
    """
    import subprocess  # only when a helper runs: an idle daemon runs none (0.3 MB less)

    start = time.monotonic()
    with _output_file("stdout") as out, _output_file("stderr") as err:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            close_fds=True,
        )
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass  # stuck in the kernel (D state); it is reaped by a later wait, not awaited
            raise TimeoutExpired(f"{argv[0]} did not finish within {timeout:g}s; killed its process group") from None
        return Result(tuple(argv), returncode, _read(out), _read(err), time.monotonic() - start)
