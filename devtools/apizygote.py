"""A process that has imported sharedfs-api once and forks each `sharedfs-api serve` of a test from there.

Why: tests/api/test_load.py kills the server with SIGKILL 40 times, and each new process spent a
second or more of CPU importing (SQLAlchemy, FastAPI, pydantic, uvicorn) before doing anything the
test is about. A forked child is still a new server process: it runs `sharedfs_api.cli.main(argv)`
from the top (argument parsing, the migrations check, the backends' setup, the worker resuming what
the killed one left, binding the port), in a session of its own, its output in its log; only the
imported modules are inherited, and the template has done nothing else (no thread, no database
connection, no app). Production starts are not changed by this.

Run as a script (`python devtools/apizygote.py`); it reads one request per line on stdin (JSON:
argv, log path) and writes `pid N` for each, then `exit N STATUS` when that child ends.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
from typing import Dict, List, Optional


def _child(argv: List[str], log: str) -> None:
    """In the forked child: become `sharedfs-api ARGV` with stdout and stderr to `log`; never returns."""
    code = 1
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(null)
        os.close(out)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        sys.argv = ["sharedfs-api", *argv]
        from sharedfs_api.cli import main

        try:
            code = main(argv) or 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if not isinstance(e.code, (int, type(None))):
                print(e.code, file=sys.stderr)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _serve() -> None:
    # The module path of `python -m sharedfs_api` (the working directory first), not this script's
    # directory, whose file names (cache, metadata, postgres …) could shadow other modules.
    sys.path[0] = os.getcwd()
    # Everything `serve` imports, imported once here (nothing is created: no app, no engine, no thread).
    import sharedfs_api.app  # noqa: F401
    import sharedfs_api.cli  # noqa: F401
    import sharedfs_api.server  # noqa: F401

    requests_in, answers = sys.stdin.buffer, sys.stdout
    print("ready", file=answers, flush=True)
    children = set()
    pending = b""
    while True:
        readable, _, _ = select.select([requests_in], [], [], 0.02)
        if readable:
            chunk = os.read(requests_in.fileno(), 65536)
            if not chunk:
                break  # the test process is gone: so is the template (its children live on, as servers)
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    _child(request["argv"], request["log"])
                children.add(pid)
                print(f"pid {pid}", file=answers, flush=True)
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                children.discard(pid)
                print(f"exit {pid} {os.waitstatus_to_exitcode(status)}", file=answers, flush=True)


class Zygote:
    """The template process, from the test's side; spawn() returns a Popen-like handle."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)  # fmt: skip
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the sharedfs-api template process did not start")
        self.lock = threading.Condition()
        self.exits: Dict[int, int] = {}
        self.pids: List[int] = []
        threading.Thread(target=self._read, name="api zygote", daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            kind, pid, *rest = line.split()
            with self.lock:
                if kind == "pid":
                    self.pids.append(int(pid))
                else:
                    self.exits[int(pid)] = int(rest[0])
                self.lock.notify_all()

    def spawn(self, argv: List[str], log: str) -> Child:
        with self.lock:
            known = len(self.pids)
            self.proc.stdin.write(json.dumps({"argv": argv, "log": log}) + "\n")
            self.proc.stdin.flush()
            if not self.lock.wait_for(lambda: len(self.pids) > known, timeout=30):
                raise RuntimeError("the sharedfs-api template process did not fork")
            return Child(self, self.pids[known])

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


class Child:
    """What ApiServer uses of subprocess.Popen: pid, poll, wait, send_signal, kill, returncode."""

    def __init__(self, zygote: Zygote, pid: int) -> None:
        self.zygote, self.pid = zygote, pid
        self.returncode: Optional[int] = None

    def poll(self) -> Optional[int]:
        with self.zygote.lock:
            self.returncode = self.zygote.exits.get(self.pid)
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        with self.zygote.lock:
            if not self.zygote.lock.wait_for(lambda: self.pid in self.zygote.exits, timeout=timeout):
                raise subprocess.TimeoutExpired(["sharedfs-api", "serve"], timeout)
            self.returncode = self.zygote.exits[self.pid]
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


if __name__ == "__main__":
    _serve()
