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

# One process imports the agent's fstab code once, then forks a writer per round: each writer is a
# fresh process that writes in a loop until it is killed (300 interpreters started one by one cost
# ~25 s of imports). The parent reports how each writer ended.
WRITERS = r"""
import os, sys
from sharedfs_agent import fstab
from sharedfs_agent.model import FstabEntry
path, n = sys.argv[1], int(sys.argv[2])
versions = [
    {f"/mnt/fs{i}": FstabEntry(f"gl:/v{i}", f"/mnt/fs{i}", "glusterfs", "rw," + fstab.MARKER) for i in range(k)}
    for k in (n, 1)
]
while sys.stdin.readline():
    pid = os.fork()
    if pid == 0:
        print("ready", os.getpid(), flush=True)
        i = 0
        while True:
            fstab.write_atomic(path, fstab.read(path).with_owned(versions[i % 2]))
            i += 1
    _, status = os.waitpid(pid, 0)
    print("ended", -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status), flush=True)
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
    writers = subprocess.Popen([sys.executable, "-c", WRITERS, str(path), str(lines)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        for _ in range(300):
            writers.stdin.write("go\n")
            writers.stdin.flush()
            word, pid = writers.stdout.readline().split()
            assert word == "ready"
            time.sleep(rng.uniform(0, 0.01))
            os.kill(int(pid), signal.SIGKILL)
            kills += writers.stdout.readline() == f"ended {-signal.SIGKILL}\n"
            assert path.read_text() in whole
            mid_write += any(p.name.startswith(".fstab.") for p in tmp_path.iterdir())
    finally:
        os.killpg(writers.pid, signal.SIGKILL)  # its own session: the parent and a writer a failure left running
        writers.wait()
        writers.stdin.close()
        writers.stdout.close()
    assert kills == 300
    assert mid_write > 0  # some kills did land between the temp file and the rename
    # A kill between mkstemp and rename leaves a temp file; the next write sweeps it away.
    fstab.write_atomic(str(path), fstab.parse(foreign))
    assert [p.name for p in tmp_path.iterdir() if p.name not in ("fstab", "fstab.sharedfs-agent.bak")] == []
    assert path.read_text() == foreign
    assert os.path.exists(str(path) + ".sharedfs-agent.bak")
