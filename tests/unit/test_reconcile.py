"""reconcile.apply with a recording fake mounter (the one fake of the mount boundary): isolation and bookkeeping."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from sharedfs_agent import fstab, ledger
from sharedfs_agent.config import AgentConfig
from sharedfs_agent.errors import BusyError, SourceUnavailable, TemporaryMountError
from sharedfs_agent.gather import Gatherer
from sharedfs_agent.model import State
from sharedfs_agent.mounters.glusterfs import GlusterfsMounter
from sharedfs_agent.reconcile import Reconciler
from sharedfs_agent.sources.file import FileSource


class FakeMounter(GlusterfsMounter):
    """Mounts by adding a line to a fake mountinfo; keeps an action log to assert outcomes."""

    def __init__(self, mountinfo, ledger_path):
        self.mountinfo, self.ledger_path = mountinfo, ledger_path
        self.failing, self.busy, self.log = set(), set(), []

    def client_missing(self):
        return None

    def mount(self, fs, settings):
        self.log.append(("mount", fs.mount_point, fs.mount_point in ledger.load(self.ledger_path)))
        if fs.mount_point in self.failing:
            raise TemporaryMountError("server said no")
        with open(self.mountinfo, "a") as f:
            f.write(f"{900 + len(self.log)} 1 0:9 / {fs.mount_point} rw - fuse.glusterfs {fs.export} rw\n")

    def unmount(self, mount_point, settings):
        self.log.append(("unmount", mount_point))
        if mount_point in self.busy:
            raise BusyError("target is busy")
        with open(self.mountinfo) as f:
            kept = [line for line in f if f" {mount_point} " not in line]
        with open(self.mountinfo, "w") as f:
            f.writelines(kept)


class FileFed:
    """A Reconciler fed by the file source through gather, as `once` and the daemon feed it."""

    def __init__(self, reconciler, gatherer):
        self.reconciler, self.gatherer, self.config = reconciler, gatherer, reconciler.config
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
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("1 0 8:1 / / rw - ext4 /dev/vda rw\n")
    doc = tmp_path / "fs.json"
    mounter = FakeMounter(str(mountinfo), config.ledger_path)
    mounters = {"glusterfs": mounter}
    reconciler = FileFed(
        Reconciler(config, mounters, mountinfo=str(mountinfo), prober=lambda paths, timeout: {p: None for p in paths}),
        Gatherer(config, {"file": FileSource(str(doc))}, mounters),
    )

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

    return reconciler, mounter, desire, states, root


def test_one_failure_does_not_stop_the_others(world):
    reconciler, mounter, desire, states, root = world
    desire("a", "b", "c")
    mounter.failing.add(f"{root}/b")
    result = reconciler.run_pass()
    assert states(result) == {"a": State.MOUNTED, "b": State.ERROR, "c": State.MOUNTED}
    assert [m[1] for m in mounter.log] == [f"{root}/a", f"{root}/b", f"{root}/c"]
    # fstab records the desired state, the failed one included, so a boot retries it.
    assert set(fstab.read(reconciler.config.fstab).owned()) == {f"{root}/a", f"{root}/b", f"{root}/c"}


def test_nothing_mounts_below_a_failed_parent(world):
    reconciler, mounter, desire, states, root = world
    desire("p", "p/child")
    mounter.failing.add(f"{root}/p")
    result = reconciler.run_pass()
    assert states(result)["p-child"] is State.ERROR
    assert [m[1] for m in mounter.log] == [f"{root}/p"]


def test_directory_made_with_mode_recorded_first_and_removed_after(world):
    reconciler, mounter, desire, states, root = world
    desire("a")
    reconciler.run_pass()
    assert mounter.log == [("mount", f"{root}/a", True)]  # the ledger knew before mount ran
    assert stat.S_IMODE(os.stat(root / "a").st_mode) == 0o750
    desire()
    result = reconciler.run_pass()
    assert states(result) == {"a": State.UNMOUNTED}
    assert not (root / "a").exists()
    assert ledger.load(reconciler.config.ledger_path) == {}
    assert Path(reconciler.config.fstab).read_text() == "# foreign\n"


def test_busy_keeps_line_and_ownership(world):
    reconciler, mounter, desire, states, root = world
    desire("a")
    reconciler.run_pass()
    mounter.busy.add(f"{root}/a")
    desire()
    result = reconciler.run_pass()
    assert states(result) == {"a": State.BUSY}
    assert set(fstab.read(reconciler.config.fstab).owned()) == {f"{root}/a"}
    assert set(ledger.load(reconciler.config.ledger_path)) == {f"{root}/a"}
    mounter.busy.clear()
    assert states(reconciler.run_pass()) == {"a": State.UNMOUNTED}


def test_source_down_uses_last_known_good_and_never_unmounts(world):
    reconciler, mounter, desire, states, root = world
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
    assert ("unmount", f"{root}/a") not in mounter.log
