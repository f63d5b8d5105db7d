"""The manila driver against a real Manila: the shares and access rules Manila itself lists after each call."""

from __future__ import annotations

import statistics
import time

import pytest

from devtools.apiserver import ApiServer
from sharedfs_api.drivers import make_driver
from sharedfs_api.drivers.base import FsSpec
from sharedfs_api.errors import DriverError


def options(manila, **extra):
    return {"auth": "noauth", "endpoint": manila.endpoint, "project": manila.project, "timeout": "60", **extra}


@pytest.fixture(scope="module")
def api(manila, workdir):
    server = ApiServer(workdir / "manila-api", driver="manila", driver_opts=options(manila)).start()
    try:
        yield server, server.token("admin")
    finally:
        server.stop()


def tagged(manila, tag):
    return [s for s in manila.shares() if s["metadata"].get("sharedfs") == tag]


def test_create_connect_disconnect_delete_as_manila_lists_them(manila, api):
    server, admin = api
    created = server.call("PUT", "/v1.1/p1/os-filesystem/home", admin, json={"fs_entry": {"size": "1500Mb"}})
    assert created.status_code == 202, created.text
    entry = server.settled(admin, "p1", "home")
    assert entry["status"] == "available", entry
    (share,) = tagged(manila, "p1/home")
    # 1500 MiB is a 2 GiB share; the default type and protocol; the preferred non-admin location.
    assert (share["size"], share["share_type_name"], share["share_proto"], share["status"]) == (
        2,
        "default",
        "NFS",
        "available",
    )
    assert entry["fs_type"] == "nfs"
    assert entry["export"].startswith("10.0.0.10:/path/to/fake/share/"), entry["export"]
    assert manila.rules(share["id"]) == []

    put = server.call("PUT", "/v1.1/p1/os-instances/vm1", admin, json={"instance": {"addresses": ["192.0.2.10"]}})
    assert put.status_code == 201, put.text
    assert server.call("PUT", "/v1.1/p1/os-filesystem/home/instances/vm1", admin).status_code == 201
    rules = manila.rules(share["id"])
    assert [(r["access_type"], r["access_to"], r["access_level"], r["state"]) for r in rules] == [
        ("ip", "192.0.2.10", "rw", "active")
    ]
    assert server.settled(admin, "p1", "home")["status_detail"] == ""

    assert server.call("DELETE", "/v1.1/p1/os-filesystem/home/instances/vm1", admin).status_code == 202
    assert manila.rules(share["id"]) == []

    assert server.call("DELETE", "/v1.1/p1/os-filesystem/home", admin).status_code == 202
    assert server.settled(admin, "p1", "home") is None
    assert manila.share(share["id"]) is None
    assert tagged(manila, "p1/home") == []
    server.call("DELETE", "/v1.1/p1/os-instances/vm1", admin)


def test_manilas_refusal_of_a_create_is_the_filesystems_status(manila, workdir):
    server = ApiServer(workdir / "manila-api-badtype", driver="manila",
                       driver_opts=options(manila, share_type="no-such-type")).start()  # fmt: skip
    try:
        admin = server.token("admin")
        server.call("PUT", "/v1.1/p1/os-filesystem/bad", admin, json={"fs_entry": {"size": "1Gb"}})
        entry = server.settled(admin, "p1", "bad")
        assert entry["status"] == "error" and "Share type not found" in entry["status_detail"], entry
        assert tagged(manila, "p1/bad") == []
    finally:
        server.stop()


def test_a_rule_manila_puts_in_error_is_reported(manila):
    """The DummyDriver refuses `ip` rules on a CIFS share, so Manila puts the rule in `error`."""
    made = manila.call("POST", "/shares", json={"share": {"share_proto": "CIFS", "size": 1, "name": "cifs",
                                                          "metadata": {"sharedfs": "p9/cifs"}}})  # fmt: skip
    assert made.status_code in (200, 202), made.text
    share_id = made.json()["share"]["id"]
    deadline = time.monotonic() + 60
    while manila.share(share_id)["status"] != "available" and time.monotonic() < deadline:
        time.sleep(0.1)
    driver = make_driver("manila", options(manila))
    driver.do_setup({})
    with pytest.raises(DriverError, match=r"access rule for 192\.0\.2\.20 in error") as e:
        driver.set_access(FsSpec("cifs", "p9", 1 << 30), {"192.0.2.20"})
    print("reported:", e.value)
    assert [(r["access_to"], r["state"]) for r in manila.rules(share_id)] == [("192.0.2.20", "error")]
    driver.delete(FsSpec("cifs", "p9", 1 << 30))
    assert manila.share(share_id) is None


def test_timings(manila, api):
    """create -> available and connect -> rule active through the API, median of 5 (printed; run with -s)."""
    server, admin = api
    server.call("PUT", "/v1.1/p1/os-instances/t1", admin, json={"instance": {"addresses": ["192.0.2.30"]}})
    create, connect = [], []
    for n in range(5):
        name = f"t{n}"
        start = time.monotonic()
        server.call("PUT", f"/v1.1/p1/os-filesystem/{name}", admin, json={"fs_entry": {"size": "1Gb"}})
        assert server.settled(admin, "p1", name)["status"] == "available"
        create.append(time.monotonic() - start)
        start = time.monotonic()
        assert server.call("PUT", f"/v1.1/p1/os-filesystem/{name}/instances/t1", admin).status_code == 201
        connect.append(time.monotonic() - start)
        (share,) = tagged(manila, f"p1/{name}")
        assert [r["state"] for r in manila.rules(share["id"])] == ["active"]
        server.call("DELETE", f"/v1.1/p1/os-filesystem/{name}", admin)
        assert server.settled(admin, "p1", name) is None
    print(f"manila create->available median {statistics.median(create):.2f} s {[round(t, 2) for t in create]}")
    print(f"manila connect->rule active median {statistics.median(connect):.2f} s {[round(t, 2) for t in connect]}")
