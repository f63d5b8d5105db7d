"""Scale-out on a real PostgreSQL the test starts: a change through one API process wakes long-polls on another."""

from __future__ import annotations

import threading
import time

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from devtools.apiserver import ApiServer
from sharedfs_api import db

GL = {"export": "gl1:/vol", "fs_type": "glusterfs", "size": "1Gb"}



def test_change_on_one_process_wakes_long_poll_on_another(postgres, tmp_path):
    url = postgres.create_database("scaleout")
    a = ApiServer(tmp_path / "a", db_url=url).start()
    b = ApiServer(tmp_path / "b", db_url=url).start()
    try:
        admin = a.token("admin")
        inst = a.token("instance", "p1", "i1")
        assert a.call("PUT", "/v1.1/p1/os-instances/i1", admin, json={"instance": {"addresses": []}}).status_code == 201
        view = "/v1.1/p1/os-instances/i1/filesystems"
        etag = b.call("GET", view, inst).headers["ETag"]
        answer = {}

        def poll():
            r = b.call("GET", view + "?wait=30", inst, headers={"If-None-Match": etag}, timeout=40)
            answer.update(code=r.status_code, at=time.monotonic(), names=[e["name"] for e in r.json()["filesystems"]])

        poller = threading.Thread(target=poll)
        poller.start()
        time.sleep(0.5)
        assert poller.is_alive()
        committed = time.monotonic()
        assert (
            a.call(
                "PUT", "/v1.1/p1/os-filesystem/shared", admin, json={"fs_entry": {**GL, "scope": "project"}}
            ).status_code
            == 201
        )
        poller.join(15)
        assert answer["code"] == 200 and answer["names"] == ["shared"]
        # Without LISTEN/NOTIFY, b would hold the request for the whole 30 s.
        assert answer["at"] - committed < 2.0
    finally:
        a.stop()
        b.stop()


def test_migrations_match_the_models_and_keep_data(postgres, tmp_path):
    for url in (postgres.create_database("migrations"), f"sqlite:///{tmp_path / 'm.db'}"):
        server = ApiServer(tmp_path / url.split(":")[0], db_url=url).start()
        admin = server.token("admin")
        assert server.call("PUT", "/v1.1/p1/os-filesystem/keep", admin, json={"fs_entry": GL}).status_code == 201
        server.stop()
        server.cli("db", "upgrade")  # again: a no-op that keeps everything
        engine = db.make_engine(url)
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), db.Base.metadata) == []
        engine.dispose()
        server.start()
        assert server.call("GET", "/v1.1/p1/os-filesystem/keep", admin).json()["fs_entry"]["export"] == "gl1:/vol"
        server.stop()


def test_long_or_hostile_inputs_get_4xx_not_500_on_postgresql(postgres, tmp_path):
    """On PostgreSQL a size over 32 characters, an address over 64 or a NUL in a detail once gave 500."""
    server = ApiServer(tmp_path / "inputs", db_url=postgres.create_database("inputs")).start()
    try:
        admin = server.token("admin")
        long_size = server.call("PUT", "/v1.1/p1/os-filesystem/s1", admin,
                                json={"fs_entry": {**GL, "size": "1Gb" + " " * 40}})  # fmt: skip
        assert long_size.status_code == 400, long_size.text
        long_address = server.call("PUT", "/v1.1/p1/os-instances/i1", admin,
                                   json={"instance": {"addresses": ["1" * 70]}})  # fmt: skip
        assert long_address.status_code == 400, long_address.text
        assert server.call("GET", "/v1.1/p1/os-instances", admin).json()["instances"] == []  # nothing half-saved
        assert server.call("PUT", "/v1.1/p1/os-instances/i1", admin, json={"instance": {"addresses": ["10.1.0.1"]}}).ok
        assert server.call("PUT", "/v1.1/p1/os-filesystem/s1", admin,
                           json={"fs_entry": {**GL, "scope": "project"}}).status_code == 201  # fmt: skip
        token = server.token("instance", "p1", "i1")
        nul = server.call("PUT", "/v1.1/p1/os-instances/i1/filesystems/s1/state", token,
                          json={"state": "error", "detail": "bad\x00thing"})  # fmt: skip
        assert nul.status_code == 200, nul.text
        assert nul.json()["detail"] == "bad\\x00thing"
    finally:
        server.stop()
