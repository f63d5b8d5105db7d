"""ceph-fuse for real: the agent mounts a live CephFS with a key from a secretfile, in a private mount namespace."""

from __future__ import annotations

import subprocess
import time

import pytest

from devtools.ceph import CLIENT
from devtools.netns import veth_into

from .conftest import FOREIGN_FSTAB, Agent, wait_for

pytestmark = [pytest.mark.root]
GLUSTER_SUBNET = "10.213.79.0"  # a /30 between the host (glusterd) and the Ceph cluster's network namespace
KEY_OPTIONS = [f"ceph.id={CLIENT}", f"ceph.keyfile=/etc/ceph/{CLIENT}.secret"]


@pytest.fixture
def ceph_agent(ceph_cluster, workdir, request):
    base = workdir / request.node.name
    ns = ceph_cluster.mount_namespace()
    yield Agent(base, ns)
    ns.close(str(base))


def entry(agent: Agent, name: str, path: str) -> dict:
    return agent.entry(name, path, fs_type="ceph-fuse", mount_options=KEY_OPTIONS)


def test_attach_remount_on_a_new_path_then_detach(ceph_agent, ceph_cluster):
    agent = ceph_agent
    for path in ("/vol1", "/vol2"):
        ceph_cluster.mkdir(path)
    agent.desire(entry(agent, "data", "/vol1"))
    result = agent.once()
    assert result.returncode == 0, result.stderr + ceph_cluster.client_log()
    record = agent.mounted("data")
    assert record is not None and record.fstype == "fuse.ceph-fuse"
    assert "nosuid" in record.mount_options and "nodev" in record.mount_options
    agent.ns.write(agent.mp("data") + "/hello.txt", "through ceph-fuse")
    assert ceph_cluster.read("/vol1/hello.txt") == "through ceph-fuse"  # it landed in the cluster, under /vol1
    (line,) = agent.our_lines()
    assert line.startswith(f"none {agent.mp('data')} fuse.ceph ceph.client_mountpoint=/vol1,")
    assert f"ceph.keyfile=/etc/ceph/{CLIENT}.secret" in line and "secret=" not in line.replace("keyfile=", "")
    assert agent.foreign_bytes() == FOREIGN_FSTAB + b"\n"
    assert agent.status()["data"]["state"] == "mounted"
    assert agent.once().returncode == 0  # converged

    agent.desire(entry(agent, "data", "/vol2"))  # a changed path is a remount
    result = agent.once()
    assert result.returncode == 0, result.stderr + ceph_cluster.client_log()
    assert agent.mounted("data") is not None
    agent.ns.write(agent.mp("data") + "/second.txt", "on vol2")
    assert ceph_cluster.read("/vol2/second.txt") == "on vol2"
    assert ceph_cluster.read("/vol1/second.txt") is None
    (line,) = agent.our_lines()
    assert "ceph.client_mountpoint=/vol2," in line

    agent.desire()
    result = agent.once()
    assert result.returncode == 0, result.stderr
    assert agent.mounted("data") is None
    assert agent.fstab.read_bytes() == FOREIGN_FSTAB + b"\n"


@pytest.fixture
def gluster_beside(ceph_agent, ceph_cluster, glusterd, workdir):
    """A GlusterFS volume the ceph agent's namespace can reach: a veth from the host into the cluster's
    network namespace, and the brick's host name resolving to the host's side of it."""
    host_if, _ = veth_into(ceph_cluster.netns, GLUSTER_SUBNET)
    hosts = workdir / "ceph-netns.hosts"
    hosts.write_text(f"127.0.0.1 localhost\n{GLUSTER_SUBNET.rsplit('.', 1)[0]}.1 {glusterd.host}\n")
    ceph_agent.ns.run(["mount", "--bind", str(hosts), "/etc/hosts"], check=True)
    try:
        yield glusterd.create_volume("besideceph")
    finally:
        glusterd.delete_volume("besideceph")
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)


@pytest.mark.gluster
def test_dead_cluster_is_reported_and_never_hangs_the_pass_the_other_filesystems_or_status(
    ceph_agent, ceph_cluster, glusterd, gluster_beside
):
    agent = ceph_agent
    ceph_cluster.mkdir("/vol1")
    agent.desire(entry(agent, "data", "/vol1"))
    assert agent.once().returncode == 0
    ceph_cluster.freeze()  # mon, mgr, OSD, MDS all SIGSTOPped: connections accepted, nothing answered
    try:
        # The same pass also has another filesystem to mount: a GlusterFS volume, which must not wait.
        agent.desire(entry(agent, "data", "/vol1"), agent.entry("other", gluster_beside))
        start = time.monotonic()
        proc = agent.ns.popen(agent.command("once"), stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        status_start = time.monotonic()
        agent.status()  # answers while the pass waits on the dead cluster
        status_seconds = time.monotonic() - status_start
        _, stderr = proc.communicate(timeout=60)
        elapsed = time.monotonic() - start
        assert proc.returncode == 1, stderr
        assert status_seconds < 2
        assert elapsed < 3 + 5, stderr  # probe_timeout is 3 s
        assert agent.mounted("data") is not None  # dead, reported, never unmounted
        other = agent.mounted("other")
        assert other is not None and other.fstype == "fuse.glusterfs", stderr
        agent.ns.write(agent.mp("other") + "/while-ceph-is-dead.txt", "gluster goes on")
        assert (glusterd.volumes["besideceph"] / "while-ceph-is-dead.txt").read_text() == "gluster goes on"
        status = agent.status()
        assert status["data"]["state"] == "error" and "no answer" in status["data"]["detail"], status
        assert status["other"]["state"] == "mounted", status
    finally:
        ceph_cluster.thaw()
    assert wait_for(lambda: agent.once().returncode == 0, timeout=60)
    agent.desire()
    assert agent.once().returncode == 0
    assert agent.mounted("data") is None and agent.mounted("other") is None
    print(
        f"\ndead Ceph cluster: pass with a GlusterFS mount beside it ended in {elapsed:.1f}s, "
        f"status answered in {status_seconds:.2f}s"
    )
