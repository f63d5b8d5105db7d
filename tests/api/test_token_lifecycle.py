"""Token lifecycle: list shows no secret, revoke is refused at once by every API process, expiry."""

from __future__ import annotations

import time

from devtools.apiserver import ApiServer
from tests.support import wait_for

VIEW = "/v1.1/p1/os-instances/i1/filesystems"



def token_id(server: ApiServer, role: str) -> str:
    rows = [line.split("\t") for line in server.cli("token", "list").splitlines()]
    return next(row[0] for row in rows if row[1] == role)


def test_a_revoked_token_is_refused_at_once_by_every_process(postgres, tmp_path):
    url = postgres.create_database("revoke")
    a = ApiServer(tmp_path / "a", db_url=url).start()
    b = ApiServer(tmp_path / "b", db_url=url).start()
    try:
        admin, inst = a.token("admin"), a.token("instance", "p1", "i1")
        assert a.call("PUT", "/v1.1/p1/os-instances/i1", admin, json={"instance": {"addresses": []}}).status_code == 201
        for server in (a, b):
            assert server.call("GET", VIEW, inst).status_code == 200  # both processes now remember it
        listing = a.cli("token", "list")
        assert inst not in listing and admin not in listing  # ids, never secrets
        a.cli("token", "revoke", token_id(a, "instance"))
        revoked = time.monotonic()
        assert wait_for(lambda: {s.call("GET", VIEW, inst).status_code for s in (a, b)} == {401}, timeout=1.0)
        print(f"\nrevocation -> refused by both processes: {(time.monotonic() - revoked) * 1000:.0f} ms", end="")
        assert b.call("GET", VIEW, admin).status_code == 200  # the others stay valid
    finally:
        a.stop()
        b.stop()


def test_an_expired_token_is_refused(tmp_path):
    server = ApiServer(tmp_path / "api").start()
    try:
        short = server.cli("token", "create", "--role", "admin", "--expires-in", "1")
        assert server.call("GET", "/v1.1/p1/os-filesystem", short).status_code == 200
        assert "expires never" not in server.cli("token", "list")
        time.sleep(1.2)
        response = server.call("GET", "/v1.1/p1/os-filesystem", short)
        assert (response.status_code, response.json()["error"]["message"]) == (401, "the X-Auth-Token has expired")
    finally:
        server.stop()
