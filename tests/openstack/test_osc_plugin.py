"""`openstack filesystem …` (the OSC plugin) and `sharedfs` with an openrc's OS_*, against a real Keystone:
the endpoint from the catalog, the project's filesystems only, the API's refusals as one line."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.apiserver import ApiServer
from devtools.keystone import PASSWORD

BIN = Path(sys.executable).parent
GL = {"export": "gl1:/vol", "fs_type": "glusterfs", "size": "1Gb"}


@pytest.fixture(scope="module")
def cloud(keystone, tmp_path_factory):
    """sharedfs-api --auth keystone, in the catalog as service type `filesystem` with the project in its URL."""
    base = tmp_path_factory.mktemp("api-osc")
    server = ApiServer(base, extra_args=["--auth", "keystone", "--openstack-config",
                                         str(keystone.write_config(base / "openstack.conf"))]).start()  # fmt: skip
    keystone.service("filesystem", "sharedfs", server.url + "/v1.1/%(project_id)s")
    admin = keystone.token("admin", "admin", password="admin-secret")
    alpha, beta = keystone.project("alpha"), keystone.project("beta")
    for project, name in ((alpha, "osc-alpha"), (beta, "osc-beta")):
        made = server.call("PUT", f"/v1.1/{project}/os-filesystem/{name}", admin, json={"fs_entry": GL})
        assert made.status_code == 201, made.text
    made = server.call("PUT", f"/v1.1/{alpha}/os-instances/vm-a", admin, json={"instance": {"addresses": []}})
    assert made.status_code == 201, made.text
    yield server
    server.stop()


def openrc(keystone, user: str, project: str, password: str = PASSWORD) -> dict:
    """An openrc's variables and nothing else of ours: no SHAREDFS_* and no OS_* from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "SHAREDFS_"))}
    env.update(OS_AUTH_URL=keystone.url, OS_IDENTITY_API_VERSION="3", OS_USERNAME=user, OS_PASSWORD=password,
               OS_PROJECT_NAME=project, OS_USER_DOMAIN_ID="default", OS_PROJECT_DOMAIN_ID="default",
               OS_REGION_NAME="RegionOne", OS_INTERFACE="public")  # fmt: skip
    return env


def openstack(env: dict, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "openstack"), *argv], env=env, capture_output=True, text=True, timeout=120)


def test_openstack_filesystem_list_finds_the_endpoint_and_shows_the_projects_own(cloud, keystone):
    member = openrc(keystone, "alpha-member", "alpha")
    listed = openstack(member, "filesystem", "list", "-f", "json")
    assert listed.returncode == 0, listed.stderr
    names = [row["Name"] for row in json.loads(listed.stdout)]
    assert "osc-alpha" in names and "osc-beta" not in names  # beta's filesystem is never shown to alpha
    assert {row["Project"] for row in json.loads(listed.stdout)} <= {keystone.project("alpha"), None}

    beta = openstack(openrc(keystone, "beta-member", "beta"), "filesystem", "list", "-f", "value", "-c", "Name")
    assert beta.returncode == 0, beta.stderr
    assert beta.stdout.split() == ["osc-beta"]


def test_openstack_filesystem_verbs(cloud, keystone):
    member = openrc(keystone, "alpha-member", "alpha")
    reader = openrc(keystone, "alpha-reader", "alpha")
    admin = openrc(keystone, "admin", "admin", password="admin-secret")
    # The refusals and the admin's create touch nothing the member's verbs read: they run beside
    # them (each `openstack` start costs some 5 s of imports and a Keystone sign-in).
    with concurrent.futures.ThreadPoolExecutor(1) as beside:
        missing = beside.submit(openstack, member, "filesystem", "show", "osc-nothing")
        static = beside.submit(openstack, member, "filesystem", "create", "osc-new", "--size", "1Gb", "--export", "gl1:/v2")
        read = beside.submit(openstack, reader, "filesystem", "show", "osc-alpha")
        refused = beside.submit(openstack, reader, "filesystem", "delete", "osc-alpha")
        made = beside.submit(openstack, admin, "filesystem", "create", "osc-admin", "--size", "2Gb", "--export", "gl1:/v3",
                             "--type", "glusterfs", "-f", "json")  # fmt: skip

        shown = openstack(member, "filesystem", "show", "osc-alpha", "-f", "json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["size"] == "1Gb"
        assert openstack(member, "filesystem", "connect", "osc-alpha", "vm-a").returncode == 0
        rows = json.loads(openstack(member, "filesystem", "instances", "osc-alpha", "-f", "json").stdout)
        assert [(r["ID"], r["Connected"]) for r in rows] == [("vm-a", True)]
        instances = openstack(member, "filesystem", "instance", "list", "-f", "value", "-c", "ID")
        assert instances.stdout.split() == ["vm-a"]
        assert openstack(member, "filesystem", "disconnect", "osc-alpha", "vm-a").returncode == 0
        rows = json.loads(openstack(member, "filesystem", "instances", "osc-alpha", "-f", "json").stdout)
        assert all(r["Connected"] is False for r in rows)

    # The API's refusals: one line with its message and status, exit 1, no traceback.
    missing = missing.result()
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines()[-1] == (
        f"filesystem 'osc-nothing' not found in project '{keystone.project('alpha')}' (HTTP 404)")
    assert "Traceback" not in missing.stderr
    static = static.result()
    assert static.returncode == 1 and "(HTTP 403)" in static.stderr and "Traceback" not in static.stderr

    # A reader reads and cannot write.
    assert read.result().returncode == 0
    refused = refused.result()
    assert refused.returncode == 1 and "(HTTP 403)" in refused.stderr

    # The admin creates a static one in its own project; the member deletes its project's with --wait.
    made = made.result()
    assert made.returncode == 0, made.stderr
    assert (json.loads(made.stdout)["name"], json.loads(made.stdout)["project"]) == ("osc-admin", keystone.project("admin"))
    gone = openstack(member, "filesystem", "delete", "osc-alpha", "--wait", "--timeout", "30")
    assert gone.returncode == 0, gone.stderr
    assert openstack(member, "filesystem", "show", "osc-alpha").returncode == 1


def test_wrong_password_is_one_line(cloud, keystone):
    bad = openstack(openrc(keystone, "alpha-member", "alpha", password="wrong"), "filesystem", "list")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr


def test_sharedfs_command_takes_an_openrc(cloud, keystone):
    """No SHAREDFS_*: the token from Keystone, the endpoint and the project from the token's catalog."""
    env = openrc(keystone, "beta-member", "beta")
    listed = subprocess.run([sys.executable, "-m", "sharedfs_client", "fs", "list", "-f", "value"], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["osc-beta"]
    bad = subprocess.run([sys.executable, "-m", "sharedfs_client", "fs", "list"],
                         env=openrc(keystone, "beta-member", "beta", password="wrong"),
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 3 and bad.stderr.count("\n") == 1 and bad.stderr.startswith("sharedfs: "), bad.stderr
