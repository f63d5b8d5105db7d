"""kill -9 at any instant of an fstab update leaves the old or the new file, whole (invariant 3)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from sharedfs_agent import fstab
from sharedfs_agent.model import FstabEntry

WRITER = r"""
import sys
from sharedfs_agent import fstab
from sharedfs_agent.model import FstabEntry
path, n = sys.argv[1], int(sys.argv[2])
versions = [
    {f"/mnt/fs{i}": FstabEntry(f"gl:/v{i}", f"/mnt/fs{i}", "glusterfs", "rw," + fstab.MARKER) for i in range(k)}
    for k in (n, 1)
]
i = 0
print("ready", flush=True)
while True:
    fstab.write_atomic(path, fstab.read(path).with_owned(versions[i % 2]))
    i += 1
"""


def test_kill_minus_nine_never_leaves_a_torn_fstab(tmp_path):
    path = tmp_path / "fstab"
    foreign = "# foreign\nUUID=1 / ext4 defaults 0 1\n"
    path.write_text(foreign)
    lines = 400  # a big "new" version, so a kill can land mid-write
    big = {
        f"/mnt/fs{i}": FstabEntry(f"gl:/v{i}", f"/mnt/fs{i}", "glusterfs", "rw," + fstab.MARKER) for i in range(lines)
    }
    whole = {
        fstab.parse(foreign).with_owned(big).render(),
        fstab.parse(foreign).with_owned({k: big[k] for k in list(big)[:1]}).render(),
        foreign,
    }
    rng = random.Random(1)
    kills = mid_write = 0
    for _ in range(300):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(lines)], stdout=subprocess.PIPE)
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0, 0.01))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        kills += proc.returncode == -signal.SIGKILL
        assert path.read_text() in whole
        mid_write += any(p.name.startswith(".fstab.") for p in tmp_path.iterdir())
    assert kills == 300
    assert mid_write > 0  # some kills did land between the temp file and the rename
    # A kill between mkstemp and rename leaves a temp file; the next write sweeps it away.
    fstab.write_atomic(str(path), fstab.parse(foreign))
    assert [p.name for p in tmp_path.iterdir() if p.name not in ("fstab", "fstab.sharedfs-agent.bak")] == []
    assert path.read_text() == foreign
    assert os.path.exists(str(path) + ".sharedfs-agent.bak")
