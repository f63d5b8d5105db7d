"""`sharedfs-agent once` against a real glusterd, mounting with the real FUSE client in a private namespace."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from devtools.namespace import MountNamespace
from tests.conftest import need_root

from .conftest import FOREIGN_FSTAB, Agent, wait_for

pytestmark = [pytest.mark.root, pytest.mark.gluster]


@pytest.fixture(scope="module")
def volumes(glusterd):
    """Two volumes shared by this module's tests; each test cleans what it mounted."""
    return {name: glusterd.create_volume(name) for name in ("alpha", "beta")}


def test_attach_then_detach(agent, volumes, glusterd):
    agent.desire(agent.entry("alpha", volumes["alpha"]))
    result = agent.once()
    assert result.returncode == 0, result.stderr
    record = agent.mounted("alpha")
    assert record is not None and record.fstype == "fuse.glusterfs"
    assert "nosuid" in record.mount_options and "nodev" in record.mount_options

    # Readable and writable through the mount: the file lands in the brick on the server.
    agent.ns.write(agent.mp("alpha") + "/hello.txt", "through fuse")
    assert (glusterd.volumes["alpha"] / "hello.txt").read_text() == "through fuse"
    assert agent.ns.read(agent.mp("alpha") + "/hello.txt") == "through fuse"

    (line,) = agent.our_lines()
    assert line.startswith(f"{volumes['alpha']} {agent.mp('alpha')} glusterfs rw,nosuid,nodev,_netdev,nofail,")
    assert agent.foreign_bytes() == FOREIGN_FSTAB + b"\n"
    assert agent.status()["alpha"]["state"] == "mounted"
    assert agent.once().returncode == 0  # converged: a second pass changes nothing
    assert (glusterd.volumes["alpha"] / "hello.txt").exists()

    agent.desire()
    result = agent.once()
    assert result.returncode == 0, result.stderr
    assert agent.mounted("alpha") is None
    assert agent.our_lines() == []
    assert agent.fstab.read_bytes() == FOREIGN_FSTAB + b"\n"
    assert not os.path.exists(agent.mp("alpha"))  # we created it, it was empty: removed


def test_changed_export_remounts_on_the_new_volume(agent, volumes, glusterd):
    (glusterd.volumes["beta"] / "marker").write_text("beta")
    agent.desire(agent.entry("data", volumes["alpha"]))
    assert agent.once().returncode == 0
    assert agent.mounted("data").source == volumes["alpha"]

    agent.desire(agent.entry("data", volumes["beta"]))
    result = agent.once()
    assert result.returncode == 0, result.stderr
    assert agent.mounted("data").source == volumes["beta"]
    assert agent.ns.read(agent.mp("data") + "/marker") == "beta"
    (line,) = agent.our_lines()
    assert line.startswith(volumes["beta"] + " ")
    assert "export changed" in result.stderr


def test_busy_filesystem_is_not_forced(agent, volumes):
    agent.desire(agent.entry("alpha", volumes["alpha"]))
    assert agent.once().returncode == 0
    holder = agent.ns.popen(["sh", "-c", f"cd {agent.mp('alpha')} && exec sleep 300"])
    try:
        assert wait_for(lambda: os.path.exists(f"/proc/{holder.pid}"))
        time.sleep(0.3)  # let the shell cd into the mount
        agent.desire()
        result = agent.once()
        assert result.returncode == 1
        assert agent.mounted("alpha") is not None
        assert agent.status()["alpha"]["state"] == "busy"
        assert len(agent.our_lines()) == 1  # still mounted, so its line stays
    finally:
        holder.kill()
        holder.wait()
    for pid in agent.ns.members():  # the sleep inside the namespace
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            is_holder = cmdline.read().startswith(b"sleep\x00300")
        if is_holder:
            os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: agent.once().returncode == 0, timeout=15)
    assert agent.mounted("alpha") is None
    assert agent.our_lines() == []


def test_hostile_document_mounts_only_the_good_entry(agent, volumes):
    good = agent.entry("good", volumes["alpha"])
    hostile = [
        agent.entry("root", volumes["alpha"], mount_point="/"),
        agent.entry("etc", volumes["alpha"], mount_point="/etc"),
        agent.entry("dotdot", volumes["alpha"], mount_point=agent.mp("x") + "/../../../../etc"),
        agent.entry("newline", volumes["alpha"], mount_point=agent.mp("n") + "\n/dev/sda1 /etc ext4"),
        agent.entry("space", volumes["alpha"], mount_point=agent.mp("a b")),
        agent.entry("export", volumes["alpha"] + " /etc glusterfs"),
        agent.entry("suid", volumes["alpha"], mount_options=["suid"]),
        agent.entry("comma", volumes["alpha"], mount_options=["acl,suid"]),
        agent.entry("unknown", volumes["alpha"], fs_type="ext4"),
        agent.entry("good", volumes["beta"]),  # duplicate name
    ]
    flood = [agent.entry(f"dup{i}", volumes["alpha"], mount_point=agent.mp("good")) for i in range(10_000)]
    agent.desire(good, *hostile, *flood)
    start = time.monotonic()
    result = agent.once()
    elapsed = time.monotonic() - start
    assert result.returncode == 1  # some refused; the good one done
    assert elapsed < 15
    mounted = [mp for mp in agent.ns.mounts() if mp.startswith(str(agent.root))]
    assert mounted == [agent.mp("good")]
    assert len(agent.our_lines()) == 1
    assert agent.foreign_bytes() == FOREIGN_FSTAB + b"\n"
    status = agent.status()
    assert status["good"]["state"] == "mounted"
    for name, words in [
        ("root", "root filesystem"),
        ("etc", "/etc"),
        ("dotdot", "'..'"),
        ("newline", "control characters"),
        ("space", "white space"),
        ("export", "not host:/volume"),
        ("suid", "allow_suid"),
        ("comma", "characters"),
        ("unknown", "unknown fs_type"),
        ("dup9999", "max_filesystems"),
        ("dup0", "already used"),
    ]:
        assert status[name]["state"] == "error", name
        assert words in status[name]["detail"], (name, status[name]["detail"])
    assert not os.path.exists("/etc/sharedfs-agent/../fstab.sharedfs-agent.bak")
    agent.desire()
    assert agent.once().returncode == 0


def test_non_empty_directory_is_not_hidden(agent, volumes):
    os.makedirs(agent.mp("home") + "/user/.ssh")
    agent.desire(agent.entry("home", volumes["alpha"]))
    result = agent.once()
    assert result.returncode == 1
    assert agent.mounted("home") is None
    assert agent.our_lines() == []
    assert "allow_nonempty" in agent.status()["home"]["detail"]
    agent.desire(agent.entry("home", volumes["alpha"], allow_nonempty=True))
    assert agent.once().returncode == 0
    assert agent.mounted("home") is not None
    agent.desire()
    assert agent.once().returncode == 0
    assert os.path.isdir(agent.mp("home") + "/user/.ssh")  # not ours: left in place


def test_hung_server_does_not_block_the_others(agent, volumes, glusterd):
    gamma = glusterd.create_volume("gamma")
    agent.desire(agent.entry("alpha", volumes["alpha"]), agent.entry("beta", volumes["beta"]))
    assert agent.once().returncode == 0
    brick = glusterd.brick_pid("beta")
    os.kill(brick, signal.SIGSTOP)
    try:
        agent.desire(
            agent.entry("alpha", volumes["alpha"]), agent.entry("beta", volumes["beta"]), agent.entry("gamma", gamma)
        )
        start = time.monotonic()
        proc = agent.ns.popen(agent.command("once"), stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        status_start = time.monotonic()
        agent.status()  # answers while the pass waits on the hung server
        status_seconds = time.monotonic() - status_start
        _, stderr = proc.communicate(timeout=60)
        elapsed = time.monotonic() - start
        assert proc.returncode == 1, stderr
        assert status_seconds < 2
        # probe_timeout is 3 s: the pass ends within it plus the mount of gamma.
        assert elapsed < 3 + 8, stderr
        assert agent.mounted("gamma") is not None
        assert agent.mounted("beta") is not None  # hung, reported, never unmounted
        status = agent.status()
        assert status["gamma"]["state"] == "mounted"
        assert status["alpha"]["state"] == "mounted"
        assert status["beta"]["state"] == "error" and "no answer" in status["beta"]["detail"]
    finally:
        os.kill(brick, signal.SIGCONT)
    assert wait_for(lambda: agent.once().returncode == 0, timeout=30)
    agent.desire()
    assert agent.once().returncode == 0
    glusterd.delete_volume("gamma")


def test_release_unmounts_everything_ours_for_an_uninstall(agent, volumes):
    agent.desire(agent.entry("alpha", volumes["alpha"]), agent.entry("beta", volumes["beta"]))
    assert agent.once().returncode == 0
    assert len(agent.our_lines()) == 2
    released = agent.ns.run(agent.command("release"))
    assert released.returncode == 0, released.stderr
    assert agent.mounted("alpha") is None and agent.mounted("beta") is None
    assert agent.fstab.read_bytes() == FOREIGN_FSTAB + b"\n"


def test_five_hung_volumes_cost_one_mount_timeout_and_five_healthy_ones_mount(workdir, glusterd):
    """Parallel apply, measured: 5 volumes whose bricks are SIGSTOPped (their mount helpers hang
    until mount_timeout kills them) and 5 healthy ones in one pass."""
    need_root()
    timeout = 10
    base = workdir / "parallel-apply"
    ns = MountNamespace()
    agent = Agent(base, ns, mount_timeout=timeout)
    hung, healthy = [f"hung{i}" for i in range(5)], [f"well{i}" for i in range(5)]
    exports = {name: glusterd.create_volume(name) for name in hung + healthy}
    bricks = [glusterd.brick_pid(name) for name in hung]
    for pid in bricks:
        os.kill(pid, signal.SIGSTOP)
    try:
        agent.desire(*(agent.entry(name, exports[name]) for name in hung + healthy))
        start = time.monotonic()
        result = agent.once(timeout=5 * timeout + 60)
        elapsed = time.monotonic() - start
        print(f"\n5 hung + 5 healthy GlusterFS volumes, mount_timeout {timeout}s: the pass took {elapsed:.1f}s "
              f"(one after another it would take more than {5 * timeout}s)")  # fmt: skip
        assert result.returncode == 1, result.stderr
        assert elapsed < timeout + 8, result.stderr  # one timeout, plus the probes and the healthy mounts
        status = agent.status()
        for name in healthy:
            assert agent.mounted(name) is not None and status[name]["state"] == "mounted", status[name]
        for name in hung:
            assert status[name]["state"] == "error", status[name]
    finally:
        for pid in bricks:
            os.kill(pid, signal.SIGCONT)
        try:
            assert wait_for(lambda: agent.once().returncode == 0, timeout=60)
            agent.desire()
            assert agent.once().returncode == 0
        finally:
            ns.close(str(base))
            for name in exports:
                glusterd.delete_volume(name)
