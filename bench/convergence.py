"""Benchmark: attach in the API -> mounted on the instance, against a bare `mount -t glusterfs`; idle footprint.

Run as root: .venv/bin/python bench/convergence.py [ROUNDS]

A real glusterd and sharedfs-api (glusterfs driver) on loopback; the agent daemon long-polls in
a private mount namespace. Each round connects the instance to an instance-scope filesystem and
times, from the moment the API answered the connect: when the agent logged the new desired
state (detection) and when the mount appeared in the namespace's mountinfo (end to end). The same
volume is then mounted by hand with `mount -t glusterfs` in the same namespace, timed the same
way (nsenter's own start-up measured and subtracted). Medians of the rounds are printed with
the ratio. Then the agent idles for 60 s long-polling: its RSS and CPU seconds are printed.
Goals: detection <= 100 ms; end to end <= bare mount + 300 ms; RSS <= 25 MB.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402

from devtools.stack import LocalStack  # noqa: E402
from devtools.workspace import workspace  # noqa: E402


def mountinfo_has(pid: int, path: str) -> bool:
    with open(f"/proc/{pid}/mountinfo") as f:
        return f" {path} " in f.read()


def until(predicate, timeout: float = 60.0) -> float:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.001)
    return time.monotonic()


def detection_times(log: Path, after: int):
    """Wall-clock times of "desired state changed" lines past byte offset `after`."""
    with open(log, "rb") as f:
        f.seek(after)
        lines = f.read().decode().splitlines()
    times = []
    for line in lines:
        if "desired state changed" in line:
            stamp = dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            times.append(stamp.timestamp())
    return times


def main(rounds: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="convergence-", dir=workspace()))  # not /tmp: the agent refuses it
    stack = LocalStack(base, project="bench", quota=False)
    try:
        stack.start()
        for i in range(rounds):
            stack.create(f"fs{i}")
        time.sleep(2)  # the agent has registered and is long-polling
        pid = stack.ns.holder.pid

        detect, end_to_end, bare = [], [], []
        for i in range(rounds):
            offset = stack.log_path.stat().st_size
            answer = stack.call("PUT", f"/v1.1/bench/os-filesystem/fs{i}/instances/vm1")
            answered_wall, answered = time.time(), time.monotonic()
            assert answer.status_code == 201
            mounted = until(lambda i=i: mountinfo_has(pid, stack.mount_point(f"fs{i}")))
            end_to_end.append(mounted - answered)
            until(lambda o=offset: detection_times(stack.log_path, o), timeout=5)
            detect.append(detection_times(stack.log_path, offset)[0] - answered_wall)

            bare_dir = f"{base}/bare{i}"
            os.makedirs(bare_dir)
            overhead_start = time.monotonic()
            stack.ns.run(["true"], check=True)
            overhead = time.monotonic() - overhead_start
            start = time.monotonic()
            stack.ns.run(["mount", "-t", "glusterfs", f"{stack.glusterd.host}:/fs{i}", bare_dir], check=True)
            bare.append(time.monotonic() - start - overhead)
            stack.ns.run(["umount", bare_dir], check=True)
            assert stack.call("DELETE", f"/v1.1/bench/os-filesystem/fs{i}/instances/vm1").status_code == 202
            until(lambda i=i: not mountinfo_has(pid, stack.mount_point(f"fs{i}")))

        ms = lambda xs: statistics.median(xs) * 1000  # noqa: E731
        print(f"convergence: {rounds} rounds, medians (one run)")
        print(
            f"  detection (API answered -> agent has the new set): {ms(detect):7.1f} ms   goal <= 100 ms"
            "   (log timestamps, 1 ms resolution; negative: before the HTTP answer reached the client)"
        )
        print(f"  end to end (API answered -> in mountinfo):         {ms(end_to_end):7.1f} ms")
        print(f"  bare `mount -t glusterfs`, same volume:            {ms(bare):7.1f} ms")
        print(
            f"  end to end - bare: {ms(end_to_end) - ms(bare):+7.1f} ms (goal <= +300 ms)   ratio end-to-end/bare: "
            f"{statistics.median(end_to_end) / statistics.median(bare):.2f}"
        )

        process = psutil.Process(stack.agent.pid)
        cpu0 = sum(process.cpu_times()[:2])
        time.sleep(60)
        cpu = sum(process.cpu_times()[:2]) - cpu0
        memory = process.memory_full_info()
        print(
            f"  idle agent over 60 s of long-polling: RSS {memory.rss / 2**20:.1f} MB (goal <= 25 MB), "
            f"USS {memory.uss / 2**20:.1f} MB (not shared with other processes), CPU {cpu:.3f} s "
            f"({cpu / 60 * 100:.2f} % of a core)   [{sys.version.split()[0]}: {' '.join(process.cmdline()[:3])}]"
        )
    finally:
        stack.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
