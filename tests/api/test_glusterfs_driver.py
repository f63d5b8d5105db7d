"""The glusterfs driver for real: volumes with quotas, and auth.allow proved by a client in a network namespace."""

from __future__ import annotations

import os

import pytest

from devtools.apiserver import ApiServer
from devtools.netns import NetNamespace, mount_and_write
from tests.support import wait_for

pytestmark = [pytest.mark.root, pytest.mark.gluster]


@pytest.fixture(scope="module")
def setup(glusterd, workdir):
    ns = NetNamespace(f"sfs{os.getpid() % 100000}", "10.213.77.0", workdir, {glusterd.host: "10.213.77.1"})
    server = ApiServer(workdir / "driver-api", driver="glusterfs",
                       driver_opts=glusterd.driver_options(workdir / "driver-bricks")).start()  # fmt: skip
    admin = server.token("admin")
    try:
        yield server, admin, ns, glusterd
    finally:
        server.stop()
        ns.close()


def auth_allow(glusterd, volume):
    out = glusterd.gluster("volume", "get", volume, "auth.allow").stdout
    return out.split("auth.allow", 1)[1].split()[0]


def test_volume_with_quota_and_access_following_connections(setup, workdir):
    server, admin, ns, glusterd = setup
    put = server.call("PUT", "/v1.1/p1/os-instances/vm1", admin, json={"instance": {"addresses": [ns.address]}})
    assert put.status_code == 201
    created = server.call("PUT", "/v1.1/p1/os-filesystem/drv1", admin, json={"fs_entry": {"size": "1Gb"}})
    assert (created.status_code, created.json()["fs_entry"]["status"]) == (202, "creating"), created.text
    entry = server.settled(admin, "p1", "drv1")
    assert (entry["status"], entry["export"], entry["fs_type"]) == ("available", f"{glusterd.host}:/drv1", "glusterfs")
    info = glusterd.gluster("volume", "info", "drv1").stdout
    assert "Status: Started" in info and "features.quota: on" in info
    quota = glusterd.gluster("volume", "quota", "drv1", "list", "/").stdout
    assert "1.0GB" in quota

    mount_point = str(workdir / "ns-mnt")
    assert auth_allow(glusterd, "drv1") == "0.0.0.0"  # nobody yet
    refused, output = mount_and_write(ns, entry["export"], mount_point, "hello")
    assert not refused, output

    assert server.call("PUT", "/v1.1/p1/os-filesystem/drv1/instances/vm1", admin).status_code == 201
    assert auth_allow(glusterd, "drv1") == ns.address
    allowed, output = mount_and_write(ns, entry["export"], mount_point, "hello")
    assert allowed, output
    assert (workdir / "driver-bricks" / "drv1" / "hello").read_text().startswith("from ")

    assert server.call("DELETE", "/v1.1/p1/os-filesystem/drv1/instances/vm1", admin).status_code == 202
    assert auth_allow(glusterd, "drv1") == "0.0.0.0"
    refused_again, output = mount_and_write(ns, entry["export"], mount_point, "again")
    assert not refused_again, output

    assert server.call("DELETE", "/v1.1/p1/os-filesystem/drv1", admin).status_code == 202
    assert server.settled(admin, "p1", "drv1") is None
    assert "drv1" not in glusterd.gluster("volume", "list").stdout.split()
    assert not (workdir / "driver-bricks" / "drv1").exists()


def test_project_scope_follows_membership(setup):
    server, admin, ns, glusterd = setup
    assert server.call("PUT", "/v1.1/p2/os-filesystem/drv2", admin,
                       json={"fs_entry": {"size": "512Mb", "scope": "project"}}).status_code == 202  # fmt: skip
    assert server.settled(admin, "p2", "drv2")["status"] == "available"
    assert auth_allow(glusterd, "drv2") == "0.0.0.0"
    server.call("PUT", "/v1.1/p2/os-instances/late", admin, json={"instance": {"addresses": ["10.213.78.2"]}})
    assert auth_allow(glusterd, "drv2") == "10.213.78.2"
    server.call("PUT", "/v1.1/p2/os-instances/late2", admin, json={"instance": {"addresses": ["10.213.78.3"]}})
    assert auth_allow(glusterd, "drv2") == "10.213.78.2,10.213.78.3"
    server.call("DELETE", "/v1.1/p2/os-instances/late", admin)
    assert auth_allow(glusterd, "drv2") == "10.213.78.3"
    assert server.call("DELETE", "/v1.1/p2/os-filesystem/drv2", admin).status_code == 202
    assert server.settled(admin, "p2", "drv2") is None


def test_driver_failure_leaves_an_error_row_and_no_volume(setup, workdir):
    server, admin, ns, glusterd = setup
    (workdir / "driver-bricks" / "taken").mkdir(parents=True)
    created = server.call("PUT", "/v1.1/p1/os-filesystem/taken", admin, json={"fs_entry": {"size": "1Gb"}})
    assert created.status_code == 202
    entry = server.settled(admin, "p1", "taken")
    assert entry["status"] == "error" and "already exists" in entry["status_detail"] and entry["export"] == ""
    assert "taken" not in glusterd.gluster("volume", "list").stdout.split()
    view = server.call("GET", "/v1.1/p1/os-filesystem/taken", admin).json()["fs_entry"]
    assert view["status"] == "error"
    assert server.call("DELETE", "/v1.1/p1/os-filesystem/taken", admin).status_code == 202


def test_an_access_list_too_long_is_refused_for_that_filesystem_only(setup, workdir):
    """170 instances x 16 addresses with no two in one block: too long for auth.allow. That one
    filesystem says so and keeps its list; another project's filesystem keeps working."""
    server, admin, ns, glusterd = setup
    for n in range(170):
        addresses = [f"10.{201 + (n * 16 + k) // 250}.{(n * 16 + k) % 250}.{199 + k % 2 * 20}" for k in range(16)]
        assert server.call("PUT", f"/v1.1/wide/os-instances/w{n}", admin,
                           json={"instance": {"addresses": addresses}}).status_code == 201  # fmt: skip
    created = server.call("PUT", "/v1.1/wide/os-filesystem/widefs", admin,
                          json={"fs_entry": {"size": "512Mb", "scope": "project"}})  # fmt: skip
    assert created.status_code == 202, created.text
    assert server.settled(admin, "wide", "widefs")["status"] == "available"  # the worker made it

    def detail():  # the access list goes to the driver just after the volume is made
        return server.call("GET", "/v1.1/wide/os-filesystem/widefs", admin).json()["fs_entry"]["status_detail"]

    assert wait_for(lambda: "access list too long" in detail(), timeout=30), detail()
    assert auth_allow(glusterd, "widefs") == "0.0.0.0"  # it keeps what it had: nobody
    # Another project's filesystem is not affected.
    assert server.call("PUT", "/v1.1/p1/os-filesystem/narrowfs", admin, json={"fs_entry": {"size": "512Mb"}}).ok
    narrow = server.settled(admin, "p1", "narrowfs")
    server.call("PUT", "/v1.1/p1/os-instances/vm1", admin, json={"instance": {"addresses": [ns.address]}})
    assert server.call("PUT", "/v1.1/p1/os-filesystem/narrowfs/instances/vm1", admin).status_code == 201
    assert auth_allow(glusterd, "narrowfs") == ns.address
    allowed, output = mount_and_write(ns, narrow["export"], str(workdir / "ns-narrow"), "ok")
    assert allowed, output
    for name, tenant in (("widefs", "wide"), ("narrowfs", "p1")):
        assert server.call("DELETE", f"/v1.1/{tenant}/os-filesystem/{name}", admin).status_code == 202
    for n in range(170):
        server.call("DELETE", f"/v1.1/wide/os-instances/w{n}", admin)
