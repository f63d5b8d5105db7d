"""A real Manila for tests: from PyPI in a cached venv; API, scheduler and share service with the in-tree DummyDriver.

The venv is made once per pinned requirements file (devtools/manila-requirements.txt; devtools/venvcache.py).
Manila runs with the PostgreSQL database it is given (devtools/postgres.py; with SQLite its three processes
failed a share's delete with "database is locked"), `auth_strategy = noauth` (a token `user:project` is an
admin of that project) and the RabbitMQ it is given (devtools/rabbitmq.py). The API is Manila's WSGI application in a threaded wsgiref
server, as devtools/keystone.py serves Keystone: manila-api's own server needs oslo.service's eventlet backend.

What the DummyDriver does (manila/tests/share/drivers/dummy.py), which the tests rely on: a share is
`available` at once with three export locations, `11.0.0.11:/path/to/fake/share/…` (admin only),
`10.0.0.10:…` (preferred) and `10.0.0.20:…`; it accepts `ip` rules on NFS shares and `user` rules on
CIFS shares, and raises for any other pair, which Manila turns into rules in `error`.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional

import requests

from .apiserver import free_port
from .venvcache import cached_venv, service_env, wsgi_server

REQUIREMENTS = Path(__file__).with_name("manila-requirements.txt")
HOST = "sharedfs-test"  # Manila's host name for its share service: pools are HOST@BACKEND#POOL
BACKEND = "alpha"
MICROVERSION = "2.51"
# Manila routes /v2/{project_id}/… only for a project id of hex digits and dashes (its project_id_regex), as
# Keystone's are; noauth takes any, so the tests use one of that form.
PROJECT = "5ba4ed0c0ffee0005ba4ed0c0ffee000"

_SERVE = wsgi_server("from manila.wsgi.api import application")


def venv() -> Path:
    """The cached Manila venv, made first if needed (about four minutes)."""
    return cached_venv("manila", REQUIREMENTS)


class Manila:
    """Schema, then manila-scheduler, manila-share and the API on a free port; stop() ends each by pid.

    `call()` speaks to the API as the admin of project `project` (noauth; hex, as Keystone's ids)."""

    def __init__(self, base: Path, transport_url: str, database_url: str, project: str = PROJECT) -> None:
        self.base = base.resolve()
        self.transport_url = transport_url
        # Manila's venv has psycopg2 (pinned), named here: SQLAlchemy 2.1's default is psycopg 3.
        self.database_url = database_url.replace("postgresql+psycopg://", "postgresql+psycopg2://", 1)
        self.project = project
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}/v2"  # the service root; project ids follow it
        self.venv = venv()
        self.conf = self.base / "manila.conf"
        self.procs: Dict[str, subprocess.Popen] = {}
        self.logs: List = []

    def start(self, timeout: float = 120) -> Manila:
        for sub in ("state", "lock"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            "[DEFAULT]\n"
            "auth_strategy = noauth\n"
            f"api_paste_config = {self.venv / 'etc/manila/api-paste.ini'}\n"
            f"transport_url = {self.transport_url}\n"
            f"state_path = {self.base / 'state'}\n"
            f"host = {HOST}\n"
            f"log_dir = {self.base}\n"
            f"enabled_share_backends = {BACKEND}\n"
            "enabled_share_protocols = NFS,CIFS\n"
            "default_share_type = default\n"
            # Services report to the scheduler every periodic_interval; the default fuzzy delay (60 s)
            # would keep the first report, and so every create, waiting.
            "periodic_interval = 5\nperiodic_fuzzy_delay = 0\n"
            f"[{BACKEND}]\n"
            "share_driver = manila.tests.share.drivers.dummy.DummyDriver\n"
            "driver_handles_share_servers = False\n"
            "share_backend_name = ALPHA\n"
            "dummy_driver_default_driver_method_delay = 0\n"
            "dummy_driver_driver_methods_delays =\n"
            f"[database]\nconnection = {self.database_url}\n"
            f"[oslo_concurrency]\nlock_path = {self.base / 'lock'}\n"
        )
        python = str(self.venv / "bin/python")
        # Manila's own migrations (its models alone leave PostgreSQL's ENUM types unnamed).
        schema = subprocess.run([str(self.venv / "bin/manila-manage"), "--config-file", str(self.conf), "db", "sync"],
                                env=service_env(), capture_output=True, text=True, timeout=600)  # fmt: skip
        if schema.returncode != 0:
            raise RuntimeError(f"Manila's schema was not made: {schema.stderr[-3000:]}")
        try:
            for service in ("scheduler", "share"):
                self._spawn(service, [str(self.venv / f"bin/manila-{service}"), "--config-file", str(self.conf)])
            self._spawn("api", [python, "-c", _SERVE, str(self.port), "--config-file", str(self.conf)])
            self._wait(timeout)
            self.share_type("default", {"driver_handles_share_servers": "False"})
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, service: str, argv: List[str]) -> None:
        log = open(self.base / f"{service}.out", "ab")  # noqa: SIM115 - closed in stop()
        self.logs.append(log)
        self.procs[service] = subprocess.Popen(argv, env=service_env(), stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True)  # fmt: skip

    def _wait(self, timeout: float) -> None:
        """Ready: the scheduler knows the share backend's pool. A create cast before that is lost."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                pools = self.call("GET", "/scheduler-stats/pools", timeout=5)
                if pools.status_code == 200 and any(p["name"].startswith(f"{HOST}@{BACKEND}")
                                                    for p in pools.json()["pools"]):  # fmt: skip
                    return
            except requests.RequestException:
                pass
            dead = [name for name, proc in self.procs.items() if proc.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = ", ".join(dead) or "timeout"
                raise RuntimeError(f"Manila did not start ({why}); see {self.base}/*.out and *.log")
            time.sleep(0.25)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        for log in self.logs:
            log.close()
        self.logs.clear()

    # -- Manila's own API, as its admin ---------------------------------------------------------

    @property
    def project_url(self) -> str:
        return f"{self.endpoint}/{self.project}"

    def call(self, method: str, path: str, **kw) -> requests.Response:
        headers = {"X-Auth-Token": f"admin:{self.project}", "X-OpenStack-Manila-API-Version": MICROVERSION,
                   **kw.pop("headers", {})}  # fmt: skip
        return requests.request(method, self.project_url + path, headers=headers, timeout=kw.pop("timeout", 30), **kw)

    def share_type(self, name: str, extra_specs: Dict[str, str]) -> str:
        """A public share type (made once); its id."""
        listed = self.call("GET", "/types")
        if listed.status_code != 200:
            raise RuntimeError(f"Manila GET /types: {listed.status_code} {listed.text[:500]}")
        found = listed.json()["share_types"]
        for share_type in found:
            if share_type["name"] == name:
                return share_type["id"]
        body = {"share_type": {"name": name, "extra_specs": extra_specs}}
        answer = self.call("POST", "/types", json=body)
        answer.raise_for_status()
        return answer.json()["share_type"]["id"]

    def shares(self) -> List[dict]:
        answer = self.call("GET", "/shares/detail")
        answer.raise_for_status()
        return answer.json()["shares"]

    def share(self, share_id: str) -> Optional[dict]:
        answer = self.call("GET", f"/shares/{share_id}")
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        return answer.json()["share"]

    def rules(self, share_id: str) -> List[dict]:
        answer = self.call("GET", "/share-access-rules", params={"share_id": share_id})
        answer.raise_for_status()
        return answer.json()["access_list"]
