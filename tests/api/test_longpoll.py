"""The agents' view: strong ETag, If-None-Match -> 304, ?wait=N held until the set changes or N passes."""

from __future__ import annotations

import threading
import time

from devtools.apiserver import ApiServer

VIEW = "/v1.1/p1/os-instances/i2/filesystems"
GL = {"export": "gl1:/vol", "fs_type": "glusterfs"}


def test_etag_and_304(world):
    first = world.call("GET", VIEW, "inst2")
    etag = first.headers["ETag"]
    assert etag.startswith('"') and first.headers["Cache-Control"] == "no-store"
    again = world.call("GET", VIEW, "inst2", headers={"If-None-Match": etag})
    assert (again.status_code, again.content, again.headers["ETag"]) == (304, b"", etag)
    assert world.call("GET", VIEW, "inst2", headers={"If-None-Match": '"other"'}).status_code == 200


def test_wait_returns_when_the_set_changes(world):
    etag = world.call("GET", VIEW, "inst2").headers["ETag"]
    answer = {}

    def poll():
        start = time.monotonic()
        r = world.call("GET", VIEW + "?wait=30", "inst2", headers={"If-None-Match": etag}, timeout=40)
        answer.update(code=r.status_code, seconds=time.monotonic() - start, body=r.json())

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.5)
    assert poller.is_alive()  # held: nothing changed yet
    changed_at = time.monotonic()
    assert world.put_fs("p1", "lp-new", scope="project", **GL).status_code == 201
    poller.join(10)
    assert answer["code"] == 200
    assert time.monotonic() - changed_at < 2
    assert "lp-new" in {e["name"] for e in answer["body"]["filesystems"]}


def test_unrelated_change_keeps_waiting_and_wait_times_out(world):
    etag = world.call("GET", VIEW, "inst2").headers["ETag"]
    answer = {}

    def poll():
        start = time.monotonic()
        r = world.call("GET", VIEW + "?wait=2", "inst2", headers={"If-None-Match": etag}, timeout=10)
        answer.update(code=r.status_code, seconds=time.monotonic() - start)

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.3)
    world.put_fs("p2", "lp-elsewhere", scope="project", **GL)  # not in i2's set
    poller.join(10)
    assert answer["code"] == 304
    assert 1.8 < answer["seconds"] < 4


def test_wait_is_capped_by_the_server(world, tmp_path):
    assert world.call("GET", VIEW + "?wait=-1", "inst2").status_code == 400
    assert world.call("GET", VIEW + "?wait=abc", "inst2").status_code == 400
    server = ApiServer(tmp_path, extra_args=["--max-wait", "1"]).start()
    try:
        server.call("PUT", "/v1.1/p1/os-instances/i1", server.token("admin"))
        token = server.token("instance", "p1", "i1")
        etag = server.call("GET", "/v1.1/p1/os-instances/i1/filesystems", token).headers["ETag"]
        start = time.monotonic()
        held = server.call(
            "GET", "/v1.1/p1/os-instances/i1/filesystems?wait=600", token, headers={"If-None-Match": etag}
        )
        assert held.status_code == 304
        assert 0.9 < time.monotonic() - start < 3
    finally:
        server.stop()
