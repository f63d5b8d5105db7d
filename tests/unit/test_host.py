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
    from sharedfs_agent.errors import LockHeld
    from sharedfs_agent.lock import PassLock

    path = str(tmp_path / "state" / "lock")
    with PassLock(path, wait=1):
        start = time.monotonic()
        with pytest.raises(LockHeld, match="another sharedfs-agent"), PassLock(path, wait=0.3):
            pass
        assert time.monotonic() - start >= 0.3
    with PassLock(path, wait=0):  # free again once the holder is done
        pass


def test_mount_point_made_with_mode_owner_and_removed_only_when_empty(tmp_path):
    from sharedfs_agent.host.mount import Host
    from sharedfs_agent.model import PathState

    host, path = Host(), str(tmp_path / "deep" / "a")
    old_umask = os.umask(0o077)
    try:
        assert host.make_dir(path, 0o750, os.getuid(), os.getgid())
    finally:
        os.umask(old_umask)
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o750)  # not narrowed by the umask
    assert not host.make_dir(path, 0o750, os.getuid(), os.getgid())  # a directory is there: not "made"
    assert host.path_state(path) is PathState.EMPTY_DIR
    (tmp_path / "deep" / "a" / "f").write_text("x")
    assert host.path_state(path) is PathState.NONEMPTY_DIR
    assert host.remove_dir(path)  # refused, with the reason: rmdir never removes what is inside
    os.unlink(tmp_path / "deep" / "a" / "f")
    assert host.remove_dir(path) is None and host.path_state(path) is PathState.MISSING
    (tmp_path / "file").write_text("x")
    os.symlink(tmp_path / "deep", tmp_path / "link")
    assert host.path_state(str(tmp_path / "file")) is PathState.NOT_A_DIR
    assert host.path_state(str(tmp_path / "link")) is PathState.SYMLINK


def test_unmount_reports_busy_apart_from_other_failures(monkeypatch):
    from sharedfs_agent.errors import BusyError, MountError
    from sharedfs_agent.host.mount import Host, MountSettings

    said = {}
    monkeypatch.setattr(commands, "run", lambda argv, timeout: commands.Result(argv, 32, "", said["text"], 0))
    settings = MountSettings(30, 15, use_scope=False)
    said["text"] = "umount: /mnt/a: target is busy."
    with pytest.raises(BusyError, match="in use"):
        Host().unmount(["umount", "/mnt/a"], settings)
    said["text"] = "umount: /mnt/a: not mounted."
    with pytest.raises(MountError, match="umount failed") as e:
        Host().unmount(["umount", "/mnt/a"], settings)
    assert not isinstance(e.value, BusyError)


def test_client_found_by_helper_or_by_the_kernel():
    from sharedfs_agent.host.mount import Host

    host = Host()
    assert host.client_installed("sh", ())
    assert not host.client_installed("mount.no-such-fs", ("no-such-fs",))
    assert host.client_installed("", ("proc",))  # no helper: the kernel knows the type
    assert not host.client_installed("", ("no-such-fs",), "no/such-module")


def test_every_error_has_one_outcome():
    """errors.outcome is the one mapping; every error class in errors.py is consumed by it."""
    from sharedfs_agent import errors
    from sharedfs_agent.errors import ExitStatus, outcome
    from sharedfs_agent.model import State

    expected = {
        errors.BusyError: (State.BUSY, True, ExitStatus.SOME_FAILED),
        errors.TimeoutExpired: (State.ERROR, True, ExitStatus.SOME_FAILED),
        errors.TemporaryMountError: (State.ERROR, True, ExitStatus.SOME_FAILED),
        errors.ClientMissing: (State.ERROR, False, ExitStatus.SOME_FAILED),
        errors.MountError: (State.ERROR, True, ExitStatus.SOME_FAILED),
        errors.InvalidEntry: (State.ERROR, False, ExitStatus.SOME_FAILED),
        errors.SourceUnavailable: (State.PENDING, True, ExitStatus.SOURCE_UNAVAILABLE),
        errors.LockHeld: (State.PENDING, True, ExitStatus.LOCKED),
        errors.ConfigError: (State.ERROR, False, ExitStatus.USAGE),
        errors.StateError: (State.ERROR, False, ExitStatus.USAGE),
    }
    classes = {getattr(errors, name) for name in errors.__all__}
    error_classes = {c for c in classes if isinstance(c, type) and issubclass(c, Exception)}
    assert error_classes - {errors.SharedfsError} == set(expected)
    for cls, (state, retry, status) in expected.items():
        result = outcome(cls("what happened"))
        assert (result.state, result.retry, result.exit_status, result.expected) == (state, retry, status, True)
        assert "what happened" in result.detail
    bug = outcome(KeyError("x"))
    assert not bug.expected and bug.retry and bug.detail.startswith("KeyError")
    assert outcome(PermissionError(13, "Permission denied")).expected
