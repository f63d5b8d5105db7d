"""A real sharedfs-api server process on a free loopback port, with tokens for each role."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_template = None  # the test session's devtools.apizygote.Zygote, made at the first forked start


def _shared_template():
    global _template
    if _template is None or _template.proc.poll() is not None:
        import atexit

        from devtools.apizygote import Zygote

        _template = Zygote()
        atexit.register(_template.close)
    return _template


class ApiServer:
    """`sharedfs-api serve` as a subprocess; stop() ends it by pid."""

    # Set by the test suite (tests/conftest.py): a start without `wrap` forks from one template
    # process per test session that imported the server once (devtools/apizygote.py): each start
    # is still a new process running `sharedfs-api serve` from its argument parsing on, without
    # the second of imports. Benches and demos leave it off: a fresh interpreter, as in production.
    fork_starts = False

    def __init__(self, base: Path, db_url: Optional[str] = None, driver: str = "static",
                 driver_opts: Optional[Dict[str, str]] = None, port: Optional[int] = None,
                 extra_args: Optional[List[str]] = None, wrap: Sequence[str] = ()) -> None:  # fmt: skip
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.db_url = db_url or f"sqlite:///{base / 'api.db'}"
        self.driver, self.driver_opts = driver, driver_opts or {}
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_args = extra_args or []
        self.wrap = list(wrap)  # an argv prefix, e.g. nsenter into a mount namespace (it must exec, not fork)
        self.proc: Optional[subprocess.Popen] = None

    def cli(self, *args: str) -> str:
        env = {**os.environ, "SHAREDFS_API_DB": self.db_url}
        return subprocess.run([sys.executable, "-m", "sharedfs_api", *args], env=env, check=True,
                              capture_output=True, text=True).stdout.strip()  # fmt: skip

    def token(self, role: str, project: Optional[str] = None, instance: Optional[str] = None) -> str:
        """A token stored as `sharedfs-api token create` stores it (the same calls, in this process: a
        CLI subprocess per token spent a second or more importing; tests/api/test_token_lifecycle.py
        runs the command itself)."""
        from sharedfs_api import db
        from sharedfs_api.auth import ROLES, store_token
        from sharedfs_api.schemas import IDENT

        if role not in ROLES or not all(v is None or IDENT.fullmatch(v) for v in (project, instance)):
            raise ValueError(f"token: bad role {role!r}, project {project!r} or instance {instance!r}")
        db.upgrade(self.db_url)
        engine = db.make_engine(self.db_url)
        try:
            return store_token(db.make_sessions(engine), role, project, instance)
        finally:
            engine.dispose()

    def start(self) -> ApiServer:
        # No lag shedding unless a test asks for it: the suite's servers share two cores with QEMU
        # guests and Ceph, where a late tick says the machine is busy, not the server (the
        # shedding has its own tests; --max-busy stays at its default).
        lag = [] if "--max-lag" in self.extra_args else ["--max-lag", "0"]
        argv = [*self.wrap, sys.executable, "-m", "sharedfs_api", "serve", "--db", self.db_url,
                "--listen", f"127.0.0.1:{self.port}", "--driver", self.driver, *lag, *self.extra_args]  # fmt: skip
        for key, value in self.driver_opts.items():
            argv += ["--driver-opt", f"{key}={value}"]
        self.log = open(self.base / f"server-{self.port}.log", "ab")  # noqa: SIM115 - closed in stop()
        if ApiServer.fork_starts and not self.wrap:
            self.proc = _shared_template().spawn(argv[argv.index("serve"):], self.log.name)
        else:
            self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            if self._answers():
                return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sharedfs-api did not start; see {self.log.name}")
            time.sleep(0.02)  # a refused connection costs nothing; the kill -9 test starts 50 servers

    def _answers(self) -> bool:
        """Whether our app answers: uvicorn listens only once the app's startup (migrations, the
        backends' setup, the worker) is done. A token-checked path without a token is refused with
        the API's own JSON 401 before any database work; /openapi.json, asked before, built the
        whole schema in each new process (50 ms of CPU, 41 times in the kill -9 test)."""
        try:
            answer = requests.get(self.url + "/v1.1/ready/os-instances", timeout=1)
            return answer.status_code == 401 and answer.json()["error"]["code"] == 401
        except (requests.RequestException, ValueError, KeyError, TypeError):
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.log.close()
        self.proc = None

    def settled(self, token: str, tenant: str, name: str, timeout: float = 120.0) -> Optional[dict]:
        """A filesystem's entry once the server's worker is done with it (not creating or deleting); None once gone."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.call("GET", f"/v1.1/{tenant}/os-filesystem/{name}", token)
            if answer.status_code == 404:
                return None
            entry = answer.json()["fs_entry"]
            if entry["status"] not in ("creating", "deleting"):
                return entry
            if time.monotonic() > deadline:
                raise AssertionError(f"{tenant}/{name} still {entry['status']} after {timeout} s")
            time.sleep(0.1)

    def call(self, method: str, path: str, token: Optional[str] = None, **kw) -> requests.Response:
        headers = kw.pop("headers", {})
        if token:
            headers["X-Auth-Token"] = token
        return requests.request(method, self.url + path, headers=headers, timeout=kw.pop("timeout", 30), **kw)
