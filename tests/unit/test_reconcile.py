"""reconcile.apply against FakeHost (the one fake of the host boundary): isolation and bookkeeping."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from sharedfs_agent import fstab, ledger
from sharedfs_agent.config import AgentConfig
from sharedfs_agent.errors import BusyError, SourceUnavailable, TemporaryMountError
from sharedfs_agent.gather import Gatherer
from sharedfs_agent.host.fake import FakeHost
from sharedfs_agent.model import PathState, State
from sharedfs_agent.mounters import registry
from sharedfs_agent.reconcile import PARALLEL, Reconciler
from sharedfs_agent.sources.file import FileSource


class FileFed:
    """A Reconciler fed by the file source through gather, as `once` and the daemon feed it."""

    def __init__(self, reconciler, gatherer):
        self.reconciler, self.gatherer = reconciler, gatherer
        self.config, self.settings = reconciler.config, reconciler.settings
        self.source = gatherer.sources["file"]

    def run_pass(self, allow_cache=False):
        gathered = self.gatherer.gather(allow_cache)
        return self.reconciler.run_pass(gathered.desired, gathered.fresh)


@pytest.fixture
def world(tmp_path):
    root = tmp_path / "mnt"
    root.mkdir()
    config = AgentConfig(
        state_dir=str(tmp_path / "state"),
        fstab=str(tmp_path / "fstab"),
        allowed_roots=(str(root),),
        mount_point_mode=0o750,
        mount_point_uid=os.getuid(),
        mount_point_gid=os.getgid(),
    )
    (tmp_path / "fstab").write_text("# foreign\n")
    doc = tmp_path / "fs.json"
    host = FakeHost()
    mounters = registry(entry_points=())
    reconciler = FileFed(Reconciler(config, mounters, host), Gatherer(config, {"file": FileSource(str(doc))}, mounters))

    def desire(*names):
        doc.write_text(
            json.dumps(
                {
                    "filesystems": [
                        {
                            "name": n.replace("/", "-"),
                            "fs_type": "glusterfs",
                            "export": f"h:/{n.split('/')[0]}",
                            "mount_point": f"{root}/{n}",
                        }
                        for n in names
                    ]
                }
            )
        )

    def states(result):
        return {v.name: v.state for v in result.verdicts}

    return reconciler, host, desire, states, root


def test_one_failure_does_not_stop_the_others(world):
    reconciler, host, desire, states, root = world
    desire("a", "b", "c")
    host.failures["mount", f"{root}/b"] = TemporaryMountError("server said no")
    result = reconciler.run_pass()
    assert states(result) == {"a": State.MOUNTED, "b": State.ERROR, "c": State.MOUNTED}
    # One level's mounts run in parallel: each was tried once, in no promised order.
    assert sorted(host.actions("mount")) == [f"{root}/a", f"{root}/b", f"{root}/c"]
    # fstab records the desired state, the failed one included, so a boot retries it.
    assert set(fstab.read(reconciler.config.fstab).owned()) == {f"{root}/a", f"{root}/b", f"{root}/c"}


def test_nothing_mounts_below_a_failed_parent(world):
    reconciler, host, desire, states, root = world
    desire("p", "p/child")
    host.failures["mount", f"{root}/p"] = TemporaryMountError("server said no")
    result = reconciler.run_pass()
    assert states(result)["p-child"] is State.ERROR
    assert host.actions("mount") == [f"{root}/p"]


def test_directory_made_with_mode_recorded_first_and_removed_after(world):
    reconciler, host, desire, states, root = world
    desire("a")
    ledger_knew = []
    host.before = lambda verb, path: verb == "mount" and ledger_knew.append(path in ledger.load(reconciler.config.ledger_path))
    reconciler.run_pass()
    assert host.actions("mount") == [f"{root}/a"] and ledger_knew == [True]  # the ledger knew before mount ran
    # The mode reaches the host (that Host.make_dir applies it past the umask: test_host.py).
    assert host.dirs[f"{root}/a"] == (0o750, os.getuid(), os.getgid())
    desire()
    result = reconciler.run_pass()
    assert states(result) == {"a": State.UNMOUNTED}
    assert f"{root}/a" not in host.dirs and host.actions("remove_dir") == [f"{root}/a"]
    assert ledger.load(reconciler.config.ledger_path) == {}
    assert Path(reconciler.config.fstab).read_text() == "# foreign\n"


def test_busy_keeps_line_and_ownership(world):
    reconciler, host, desire, states, root = world
    desire("a")
    reconciler.run_pass()
    host.failures["unmount", f"{root}/a"] = BusyError("target is busy")
    desire()
    result = reconciler.run_pass()
    assert states(result) == {"a": State.BUSY}
    assert set(fstab.read(reconciler.config.fstab).owned()) == {f"{root}/a"}
    assert set(ledger.load(reconciler.config.ledger_path)) == {f"{root}/a"}
    host.failures.clear()
    assert states(reconciler.run_pass()) == {"a": State.UNMOUNTED}


def test_source_down_uses_last_known_good_and_never_unmounts(world):
    reconciler, host, desire, states, root = world
    desire("a")
    reconciler.run_pass()
    os.unlink(reconciler.source.path)
    with pytest.raises(SourceUnavailable):
        reconciler.run_pass()
    result = reconciler.run_pass(allow_cache=True)
    assert result.from_cache and states(result) == {"a": State.MOUNTED}
    with open(reconciler.source.path, "w") as f:
        f.write("<html>proxy error</html>")
    result = reconciler.run_pass(allow_cache=True)
    assert result.from_cache and result.plan.converged
    assert host.actions("unmount") == []


def test_missing_client_is_an_error_and_no_helper_runs(world):
    reconciler, host, desire, states, root = world
    host.missing_clients.add("mount.glusterfs")
    desire("a")
    result = reconciler.run_pass()
    assert states(result) == {"a": State.ERROR}
    assert "install glusterfs-client" in result.verdicts[0].detail
    assert host.actions("mount") == []
    host.missing_clients.clear()  # the package was installed: the next pass mounts
    assert states(reconciler.run_pass()) == {"a": State.MOUNTED}


def test_fuse_mount_runs_in_its_own_scope_when_systemd_runs(world):
    reconciler, host, desire, states, root = world
    reconciler.settings.use_scope = True
    desire("a")
    reconciler.run_pass()
    assert host.scoped == {f"{root}/a"}
    assert host.argv[f"{root}/a"] == ["mount", "-t", "glusterfs", "-o", "rw,nosuid,nodev", "h:/a", f"{root}/a"]


def test_the_mounters_health_rule_decides_remount_or_leave(world):
    reconciler, host, desire, states, root = world
    desire("stale", "hung")
    reconciler.run_pass()
    host.health[f"{root}/stale"] = "ESTALE: Stale file handle"  # a fresh mount cures it
    host.health[f"{root}/hung"] = "no answer within 5s (server unreachable?)"  # touching it could hang
    observed = reconciler.reconciler.observe(reconciler.gatherer.gather().desired)
    assert set(observed.broken) == {f"{root}/stale"} and set(observed.hung) == {f"{root}/hung"}
    host.log.clear()
    host.health.clear()  # the remount cures it
    reconciler.run_pass()
    assert host.actions("unmount") == host.actions("mount") == []  # healthy now: nothing to do
    host.health[f"{root}/stale"] = "ESTALE: Stale file handle"
    host.before = lambda verb, path: host.health.pop(path, None) if verb == "mount" else None
    reconciler.run_pass()
    assert host.actions("unmount") == host.actions("mount") == [f"{root}/stale"]


def test_a_non_empty_directory_is_not_mounted_over(world):
    reconciler, host, desire, states, root = world
    host.paths[f"{root}/a"] = PathState.NONEMPTY_DIR
    desire("a")
    assert states(reconciler.run_pass()) == {"a": State.ERROR}
    assert host.log == []


def test_hung_mounts_of_one_level_cost_one_timeout_not_one_each(world):
    """5 hung servers + 5 healthy: the hung mounts are in flight together, so the pass waits one "timeout"."""
    reconciler, host, desire, states, root = world
    hung = [f"h{i}" for i in range(5)]
    desire(*hung, *[f"ok{i}" for i in range(5)])
    for name in hung:
        host.failures["mount", f"{root}/{name}"] = TemporaryMountError("timed out after 0.5s")
    # Each hung helper returns only once all five have started: run one after another, they break it.
    all_hung = threading.Barrier(len(hung), timeout=10)
    overlapped = []

    def before(verb, path):
        if verb == "mount" and path.split("/")[-1] in hung:
            try:
                all_hung.wait()
                overlapped.append(path)
            except threading.BrokenBarrierError:
                pass

    host.before = before
    result = reconciler.run_pass()
    assert len(overlapped) == len(hung), "the hung mounts ran one after another"
    assert states(result) == {**{n: State.ERROR for n in hung}, **{f"ok{i}": State.MOUNTED for i in range(5)}}
    assert set(fstab.read(reconciler.config.fstab).owned()) == {f"{root}/{n}" for n in states(result)}


def test_parallel_mounts_are_bounded_and_each_recorded_in_the_ledger_first(world):
    reconciler, host, desire, states, root = world
    names = [f"fs{i:02}" for i in range(3 * PARALLEL)]
    desire(*names)
    lock, running, most, started, ledger_knew = threading.Lock(), [0], [0], [0], []
    # The first PARALLEL helpers return only once all of them have started, so the pool must run
    # PARALLEL at once (a clock would not show it on a loaded machine); a 9th would start meanwhile.
    first_wave = threading.Barrier(PARALLEL, timeout=10)

    def before(verb, path):
        if verb != "mount":
            return
        ledger_knew.append(path in ledger.load(reconciler.config.ledger_path))
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            started[0] += 1
            waits = started[0] <= PARALLEL
        if waits:
            try:
                first_wave.wait()
            except threading.BrokenBarrierError:
                pass  # fewer than PARALLEL in flight: `most` says so below
        time.sleep(0.01)  # room for a helper past the bound to start, were there one
        with lock:
            running[0] -= 1

    host.before = before
    result = reconciler.run_pass()
    assert set(states(result).values()) == {State.MOUNTED}
    assert most[0] == PARALLEL  # overlapping, but never more than PARALLEL helpers at once
    assert ledger_knew == [True] * len(names)
    assert set(ledger.load(reconciler.config.ledger_path)) == {f"{root}/{n}" for n in names}


def test_parallel_levels_keep_parents_before_children_and_children_before_parents_on_unmount(world):
    reconciler, host, desire, states, root = world
    nested = ["p", "q", "p/c1", "p/c2", "q/c1", "q/c1/g"]
    desire(*nested)
    host.before = lambda verb, path: time.sleep(0.02 if path.count("/") % 2 else 0.0)  # levels finish unevenly

    def depth(path):
        return path.count("/")

    reconciler.run_pass()
    mounts = host.actions("mount")
    assert sorted(mounts) == sorted(f"{root}/{n}" for n in nested)
    assert [depth(p) for p in mounts] == sorted(depth(p) for p in mounts)  # each level after the one above
    desire()
    assert set(states(reconciler.run_pass()).values()) == {State.UNMOUNTED}
    unmounts = host.actions("unmount")
    assert [depth(p) for p in unmounts] == sorted((depth(p) for p in unmounts), reverse=True)
