"""The cephfs driver for real: a subvolume with a quota, one cephx key per connected instance in its own view, mounted by the agent through ceph-fuse, revoked on disconnect."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time

import pytest

from devtools.apiserver import ApiServer

from .conftest import Agent

pytestmark = [pytest.mark.root]
SIZE = 16 * 1024 * 1024


@pytest.fixture(scope="module")
def setup(ceph_cluster, workdir):
    server = ApiServer(workdir / "cephfs-api", driver="cephfs", driver_opts={
        "ceph_command": f"ip netns exec {ceph_cluster.netns} ceph", "conf": str(ceph_cluster.conf), "client": "fuse",
    }).start()  # fmt: skip
    admin = server.token("admin")
    try:
        yield server, admin
    finally:
        server.stop()


@pytest.fixture
def ceph_agent(ceph_cluster, workdir, request):
    base = workdir / request.node.name
    ns = ceph_cluster.mount_namespace()
    # Secrets in a directory of the test's own (the namespace's /etc/ceph holds the cluster's conf).
    yield Agent(base, ns, secret_dir=base / "secrets")
    ns.close(str(base))


def view(server: ApiServer, token: str, instance: str) -> list:
    answer = server.call("GET", f"/v1.1/p1/os-instances/{instance}/filesystems", token)
    assert answer.status_code == 200, answer.text
    return answer.json()["filesystems"]


def key_of(ceph_cluster, auth: str):
    try:
        return ceph_cluster.ceph("auth", "print-key", f"client.{auth}").strip()
    except subprocess.CalledProcessError:
        return None


def timed(ns, script: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """A shell command in the agent's namespace that may meet a dead mount: bounded, never hanging the test."""
    try:
        return ns.run(["timeout", "-s", "KILL", str(timeout), "sh", "-c", script], timeout=timeout + 10)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(e.cmd, 124, "", "timed out")


def test_subvolume_key_per_instance_quota_and_revocation(setup, ceph_cluster, ceph_agent, workdir):
    server, admin = setup
    agent = ceph_agent
    for vm in ("vm1", "vm2"):
        put = server.call("PUT", f"/v1.1/p1/os-instances/{vm}", admin, json={"instance": {"addresses": []}})
        assert put.status_code == 201, put.text
    tokens = {vm: server.token("instance", "p1", vm) for vm in ("vm1", "vm2")}
    mount_point = agent.mp("cfs1")
    created = server.call("PUT", "/v1.1/p1/os-filesystem/cfs1", admin,
                          json={"fs_entry": {"size": "16Mb", "mount_point": mount_point}})  # fmt: skip
    assert created.status_code == 202, created.text
    entry = server.settled(admin, "p1", "cfs1")
    assert (entry["status"], entry["fs_type"]) == ("available", "ceph-fuse"), entry
    info = json.loads(ceph_cluster.ceph("fs", "subvolume", "info", "cephfs", "cfs1", "--group_name", "sharedfs"))
    assert info["bytes_quota"] == SIZE and entry["export"] == info["path"]
    assert info["path"].startswith("/volumes/sharedfs/cfs1/")
    assert view(server, tokens["vm1"], "vm1") == []  # not connected: nothing, and no key made
    assert key_of(ceph_cluster, "sfs.cfs1.vm1") is None

    assert server.call("PUT", "/v1.1/p1/os-filesystem/cfs1/instances/vm1", admin).status_code == 201
    key = key_of(ceph_cluster, "sfs.cfs1.vm1")
    assert key
    caps = ceph_cluster.ceph("auth", "get", "client.sfs.cfs1.vm1")
    assert f"allow rw path={info['path']}" in caps  # that subvolume only
    (own,) = view(server, tokens["vm1"], "vm1")
    assert own["secret"] == key and "ceph.id=sfs.cfs1.vm1" in own["mount_options"]
    # Nobody else sees it: not vm2, not an admin reading vm1's view, not the filesystem's pages.
    assert view(server, tokens["vm2"], "vm2") == []
    assert all("secret" not in e for e in view(server, admin, "vm1"))
    for path in ("/v1.1/p1/os-filesystem/cfs1", "/v1.1/p1/os-filesystem", "/v1.1/p1/os-filesystem/cfs1/instances",
                 "/v1.1/p1/os-instances"):  # fmt: skip
        answer = server.call("GET", path, admin)
        assert answer.status_code == 200 and key not in answer.text, path

    agent.desire(own)  # the document vm1's agent got, through a file source (the API is outside the netns)
    start = time.monotonic()
    result = agent.once()
    assert result.returncode == 0, result.stderr + ceph_cluster.client_log()
    mountable = time.monotonic() - start
    record = agent.mounted("cfs1")
    assert record is not None and record.fstype == "fuse.ceph-fuse"
    secret_file = agent.base / "secrets" / "sharedfs-cfs1.secret"
    st = os.stat(secret_file)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, secret_file.read_text()) == (0o600, 0, key + "\n")
    (line,) = agent.our_lines()
    assert f"ceph.keyfile={secret_file}" in line and key not in agent.fstab.read_text()
    assert key not in result.stdout + result.stderr
    assert key not in (agent.base / "state" / "status.json").read_text()
    assert key not in (agent.base / "state" / "owned.json").read_text()
    assert agent.status()["cfs1"]["state"] == "mounted"

    agent.ns.write(mount_point + "/hello.txt", "from vm1")
    assert ceph_cluster.read(info["path"] + "/hello.txt") == "from vm1"
    small = timed(agent.ns, f"dd if=/dev/zero of={mount_point}/small bs=1M count=4 conv=fsync 2>&1")
    assert small.returncode == 0, small.stdout
    big = timed(agent.ns, f"dd if=/dev/zero of={mount_point}/big bs=1M count=64 conv=fsync 2>&1", timeout=60)
    assert big.returncode != 0 and "Disk quota exceeded" in big.stdout, big.stdout
    timed(agent.ns, f"rm -f {mount_point}/big")

    assert server.call("DELETE", "/v1.1/p1/os-filesystem/cfs1/instances/vm1", admin).status_code == 202
    assert key_of(ceph_cluster, "sfs.cfs1.vm1") is None  # the cephx client is gone
    assert view(server, tokens["vm1"], "vm1") == []
    # The mounted instance lost access: its client was evicted (blocklisted).
    after = timed(agent.ns, f"echo again > {mount_point}/after.txt && sync {mount_point}/after.txt && "
                            f"cat {mount_point}/hello.txt", timeout=20)  # fmt: skip
    assert after.returncode != 0, after
    assert ceph_cluster.read(info["path"] + "/after.txt") is None
    # A fresh mount with the old key is refused.
    fresh = str(workdir / "fresh-mnt")
    os.makedirs(fresh, exist_ok=True)
    again = timed(agent.ns, f"ceph-fuse --id sfs.cfs1.vm1 --keyfile {secret_file} "
                            f"--client_mountpoint {info['path']} {fresh} && stat {fresh}/hello.txt", timeout=30)  # fmt: skip
    assert again.returncode != 0, again
    timed(agent.ns, f"umount -l {fresh}")

    agent.desire()  # the view no longer has it: the agent unmounts and removes the key's file
    timed(agent.ns, f"umount -l {mount_point}")  # the evicted client's mount would only report errors
    result = agent.once()
    assert agent.mounted("cfs1") is None, result.stderr
    assert not secret_file.exists()

    assert server.call("DELETE", "/v1.1/p1/os-filesystem/cfs1", admin).status_code == 202
    assert server.settled(admin, "p1", "cfs1") is None
    listed = json.loads(ceph_cluster.ceph("fs", "subvolume", "ls", "cephfs", "--group_name", "sharedfs"))
    assert listed == []
    assert key not in (server.base / f"server-{server.port}.log").read_text()
    print(f"connect -> mountable (agent pass): {mountable:.2f}s")
