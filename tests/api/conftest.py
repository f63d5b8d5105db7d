"""A real sharedfs-api process per module on loopback, with a token for every role."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from devtools.apiserver import ApiServer
from devtools.postgres import Postgres
from devtools.workspace import workspace
from tests.support import require

REPO = Path(__file__).resolve().parents[2]


class World:
    """Projects p1 and p2; instances i1, i2 (p1) and j1 (p2); a token for every role."""

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self.tokens = {
            "admin": server.token("admin"),
            "proj1": server.token("project", "p1"),
            "proj2": server.token("project", "p2"),
            "inst1": server.token("instance", "p1", "i1"),
            "inst2": server.token("instance", "p1", "i2"),
            "instj": server.token("instance", "p2", "j1"),
            "bogus": "not-a-token",
            "none": None,
        }

    def call(self, method: str, path: str, who: str = "admin", **kw):
        return self.server.call(method, path, self.tokens[who], **kw)

    def put_fs(self, tenant: str, name: str, who: str = "admin", **entry):
        entry.setdefault("size", "4Gb")
        return self.call("PUT", f"/v1.1/{tenant}/os-filesystem/{name}", who, json={"fs_entry": entry})

    def register(self, tenant: str, instance: str, *addresses: str, who: str = "admin"):
        return self.call("PUT", f"/v1.1/{tenant}/os-instances/{instance}", who,
                         json={"instance": {"addresses": list(addresses)}})  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    server = ApiServer(tmp_path_factory.mktemp("api")).start()
    w = World(server)
    assert w.register("p1", "i1", "10.9.0.1").status_code == 201
    assert w.register("p1", "i2", "10.9.0.2").status_code == 201
    assert w.register("p2", "j1", "10.9.1.1").status_code == 201
    yield w
    server.stop()


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL server for the session (initdb + pg_ctl on a private socket and port; ~5 s each
    time): every test makes a database of its own, under a name no other test uses."""
    require(shutil.which("runuser") is not None or os.geteuid() != 0, "runuser (util-linux)")
    try:
        from devtools.postgres import bindir

        bindir()
    except RuntimeError as e:
        require(False, str(e))
    server = Postgres(workspace() / f"pg-{os.getpid()}").start()
    yield server
    server.stop()
