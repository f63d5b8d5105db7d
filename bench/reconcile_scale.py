"""Benchmark: a no-op reconcile pass and plan() alone at 100 and 1,000 filesystems, and a no-op `once`.

Run: .venv/bin/python bench/reconcile_scale.py
CPU time (time.process_time) is reported, not wall time, and the 1,000/100 ratio of one run:
these machines are shared and noisy, a ratio measured in one run is what can be compared.
The pass reads real files (a mountinfo of the same size, fstab, ledger, the desired document);
an idle daemon's pass re-reads them all and reuses what it parsed when the bytes are unchanged,
the cold figure is a first pass that parses and validates everything. Health probes are left
out of the pass figures and measured on their own (one fork per mount, all in parallel).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sharedfs_agent import actual, fstab, ledger  # noqa: E402
from sharedfs_agent.config import AgentConfig  # noqa: E402
from sharedfs_agent.desired import parse_document  # noqa: E402
from sharedfs_agent.gather import Gatherer  # noqa: E402
from sharedfs_agent.host.mount import Host  # noqa: E402
from sharedfs_agent.host.probe import probe  # noqa: E402
from sharedfs_agent.model import OwnedMount  # noqa: E402
from sharedfs_agent.mounters import registry  # noqa: E402
from sharedfs_agent.plan import plan  # noqa: E402
from sharedfs_agent.reconcile import Reconciler  # noqa: E402
from sharedfs_agent.sources.file import FileSource  # noqa: E402

ROOT = "/mnt/bench"


class World:
    """A reconciler and the file source's gatherer, as `once` and the daemon build them."""

    def __init__(self, reconciler: Reconciler, gatherer: Gatherer) -> None:
        self.reconciler, self.gatherer = reconciler, gatherer

    def run_pass(self):
        gathered = self.gatherer.gather()
        return self.reconciler.run_pass(gathered.desired, gathered.fresh)


def build_world(base: Path, n: int) -> World:
    """A converged host with n GlusterFS mounts: every file the pass reads, at that size."""
    base.mkdir(parents=True)
    config = AgentConfig(state_dir=str(base / "state"), fstab=str(base / "fstab"), allowed_roots=(ROOT,))
    mounters = registry(entry_points=())
    document = {
        "filesystems": [
            {"name": f"fs{i}", "fs_type": "glusterfs", "export": f"gl{i % 7}:/vol{i}",
             "mount_point": f"{ROOT}/fs{i}", "mount_options": ["backup-volfile-servers=glb:glc"]}
            for i in range(n)
        ]
    }  # fmt: skip
    (base / "fs.json").write_text(json.dumps(document))
    desired = parse_document(document, mounters, config)
    lines = [
        "22 1 8:1 / / rw,relatime - ext4 /dev/vda1 rw\n",
        "23 22 0:5 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n",
    ]
    lines += [
        f"{100 + i} 22 0:{60 + i} / {fs.mount_point} rw,nosuid,nodev,relatime - fuse.glusterfs {fs.export} "
        "rw,user_id=0,group_id=0,default_permissions,allow_other,max_read=131072\n"
        for i, fs in enumerate(desired.filesystems)
    ]
    (base / "mountinfo").write_text("".join(lines))
    owned_lines = {
        fs.mount_point: mounters["glusterfs"].fstab_entry(fs, config.mount_timeout) for fs in desired.filesystems
    }
    text = "# /etc/fstab\nUUID=1234 / ext4 defaults 0 1\n"
    fstab.write_atomic(config.fstab, fstab.parse(text).with_owned(owned_lines))
    os.makedirs(config.state_dir)
    ledger.save(config.ledger_path, {fs.mount_point: OwnedMount(fs) for fs in desired.filesystems})
    host = Host(mountinfo=str(base / "mountinfo"), prober=lambda paths, timeout: {p: None for p in paths})
    reconciler = Reconciler(config, mounters, host)
    return World(reconciler, Gatherer(config, {"file": FileSource(str(base / "fs.json"))}, mounters))


def cpu_ms(fn, repeat: int) -> float:
    fn()  # warm up
    start = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - start) / repeat * 1000


def measure(base: Path, n: int):
    world = build_world(base / f"n{n}", n)
    result = world.run_pass()
    assert result.plan.converged, result.plan.actions[:3]
    reconciler = world.reconciler
    desired = world.gatherer.gather().desired
    observed = reconciler.observe(desired)
    mounters = reconciler.mounters
    plan_ms = cpu_ms(lambda: plan(desired, observed, mounters, may_unmount=True), repeat=max(5, 2000 // n))
    pass_ms = cpu_ms(world.run_pass, repeat=max(3, 500 // n))

    def cold_pass():
        """As the first pass of a new process: nothing parsed or validated yet."""
        actual.parse_mountinfo.cache_clear()
        fstab.parse.cache_clear()
        ledger._decode.cache_clear()
        World(Reconciler(reconciler.config, mounters, reconciler.host),
              Gatherer(reconciler.config, world.gatherer.sources, mounters)).run_pass()  # fmt: skip

    return plan_ms, pass_ms, cpu_ms(cold_pass, repeat=max(3, 300 // n))


def probe_cost(base: Path, n: int = 100) -> float:
    dirs = []
    for i in range(n):
        d = base / "probe" / str(i)
        d.mkdir(parents=True)
        dirs.append(str(d))
    start = time.monotonic()
    assert all(v is None for v in probe(dirs, 5).values())
    return (time.monotonic() - start) / n * 1000


def once_wall_seconds(base: Path) -> float:
    """`sharedfs-agent once` as a process, nothing to do (no filesystem attached), best of 5."""
    work = base / "once"
    work.mkdir()
    (work / "fs.json").write_text('{"filesystems": []}')
    (work / "agent.conf").write_text(
        f"[agent]\nstate_dir = {work}/state\nfstab = {work}/fstab\n[file]\npath = {work}/fs.json\n"
    )
    argv = [sys.executable, "-m", "sharedfs_agent", "once", "--config", str(work / "agent.conf")]
    best = float("inf")
    for _ in range(5):
        start = time.monotonic()
        subprocess.run(argv, check=True, capture_output=True)
        best = min(best, time.monotonic() - start)
    return best


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="sharedfs-bench-"))
    try:
        small = measure(base, 100)
        large = measure(base, 1000)
        print("reconcile_scale: CPU ms per call (process_time), one run")
        print(
            f"  plan() alone     100: {small[0]:7.2f} ms   1000: {large[0]:7.2f} ms   ratio 1000/100: {large[0] / small[0]:5.1f}"
        )
        print(
            f"  no-op full pass  100: {small[1]:7.2f} ms   1000: {large[1]:7.2f} ms   ratio 1000/100: {large[1] / small[1]:5.1f}"
        )
        print(
            f"  cold pass        100: {small[2]:7.2f} ms   1000: {large[2]:7.2f} ms   ratio 1000/100: {large[2] / small[2]:5.1f}"
            "   (first pass of a process: everything parsed and validated)"
        )
        print(f"  goal: no-op pass at 1000 <= 20 ms CPU -> {'met' if large[1] <= 20 else 'NOT met'}")
        print(f"  health probe (fork + stat + readdir), wall per mount, 100 in parallel: {probe_cost(base):.2f} ms")
        wall = once_wall_seconds(base)
        print(
            f"  `sharedfs-agent once` no-op, wall (best of 5): {wall * 1000:.0f} ms   goal <= 500 ms -> {'met' if wall <= 0.5 else 'NOT met'}"
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
