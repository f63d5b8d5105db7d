"""Health probes that can never hang the caller: stat and readdir in a forked child, bounded."""

from __future__ import annotations

import errno
import os
import signal
import time
from typing import Dict, Iterable, Optional, Set

__all__ = ["probe"]

# Children killed at their deadline but maybe not dead yet (a stat stuck in the kernel dies
# only when the kernel lets go); reaped on later calls so they never pile up as zombies.
_abandoned: Set[int] = set()


def _child(path: str) -> None:
    # A probe stuck on a dead server may outlive the agent: it must hold none of the parent's
    # files (its pipes would keep a caller waiting for EOF, its flock would block the next pass).
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, 1 << 16)
    except OSError:
        os._exit(255)
    try:
        os.stat(path)
        with os.scandir(path) as entries:
            next(entries, None)  # one readdir: a FUSE client that lost its server fails here
        code = 0
    except OSError as e:
        code = e.errno if 0 < e.errno < 256 else 255
    except BaseException:
        code = 255
    os._exit(code)


def probe(paths: Iterable[str], timeout: float) -> Dict[str, Optional[str]]:
    """Probe every path at once; None means healthy, otherwise a short reason.

    A probe of a mount whose server is gone can block in the kernel for minutes, so each runs
    in its own child and is abandoned (killed, not awaited) when the deadline passes.
    """
    children: Dict[int, str] = {}
    for path in paths:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            _child(path)
        children[pid] = path
    results: Dict[str, Optional[str]] = {}
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while children and time.monotonic() < deadline:
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                path = children.pop(pid)
                code = os.waitstatus_to_exitcode(status)
                results[path] = None if code == 0 else _reason(code)
        if children:
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
    for pid, path in children.items():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _abandoned.add(pid)
        results[path] = f"no answer within {timeout:g}s (server unreachable?)"
    _reap_abandoned()
    return results


def _reason(code: int) -> str:
    if code == 255:
        return "probe failed"
    return f"{errno.errorcode.get(code, str(code))}: {os.strerror(code)}"


def _reap_abandoned() -> None:
    """Collect children abandoned by earlier probes that have since died."""
    for pid in list(_abandoned):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _abandoned.discard(pid)
