"""host/: a helper past its timeout dies with its whole process group; probes never hang the caller."""

from __future__ import annotations

import os
import time

import pytest

from sharedfs_agent.errors import TimeoutExpired
from sharedfs_agent.host import commands, probe


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "grandchild"
    script = f"sleep 300 & echo $! > {pidfile}; wait"
    start = time.monotonic()
    with pytest.raises(TimeoutExpired, match="killed its process group"):
        commands.run(["sh", "-c", script], timeout=0.5)
    assert time.monotonic() - start < 3
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 2
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(grandchild)


def test_daemon_holding_output_does_not_delay_return(tmp_path):
    # Like mount.glusterfs leaving the FUSE client behind: the helper exits, a child lingers.
    pidfile = tmp_path / "daemon"
    start = time.monotonic()
    result = commands.run(["sh", "-c", f"setsid sleep 30 & echo $! > {pidfile}; echo done"], timeout=10)
    assert result.ok and result.stdout.strip() == "done"
    assert time.monotonic() - start < 2
    os.kill(int(pidfile.read_text()), 9)


def test_result_summary_is_the_last_line():
    result = commands.run(["sh", "-c", "echo one >&2; echo two >&2; exit 3"], timeout=5)
    assert (result.returncode, result.summary()) == (3, "two")


def test_probe_reports_errors_and_health(tmp_path):
    result = probe.probe([str(tmp_path), str(tmp_path / "missing"), str(tmp_path / "f")], timeout=5)
    assert result[str(tmp_path)] is None
    assert result[str(tmp_path / "missing")].startswith("ENOENT")


def test_pass_lock_serialises_passes(tmp_path):
    from sharedfs_agent.errors import ConfigError
    from sharedfs_agent.lock import PassLock

    path = str(tmp_path / "state" / "lock")
    with PassLock(path, wait=1):
        start = time.monotonic()
        with pytest.raises(ConfigError, match="another sharedfs-agent"), PassLock(path, wait=0.3):
            pass
        assert time.monotonic() - start >= 0.3
    with PassLock(path, wait=0):  # free again once the holder is done
        pass
