"""The `sharedfs` command end to end: a real API (glusterfs driver), a real glusterd, a real agent mounting
in a private mount namespace; --wait returns when the agent reports, and failures exit as docs/cli.md says."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from devtools.stack import LocalStack
from sharedfs_client.cli import ExitStatus

from .conftest import wait_for

pytestmark = [pytest.mark.root, pytest.mark.gluster]


@pytest.fixture(scope="module")
def stack(glusterd, workdir):
    s = LocalStack(workdir / "user-cli", glusterd, quota=False,
                   agent_settings="mount_timeout = 20\nprobe_timeout = 3\n").start()  # fmt: skip
    # A project token: what a cloud user holds.
    s.user_env = {**os.environ, "SHAREDFS_URL": s.api.url, "SHAREDFS_TOKEN": s.api.token("project", s.project),
                  "SHAREDFS_PROJECT": s.project}  # fmt: skip
    yield s
    s.stop()


def sharedfs(stack, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sharedfs_client", *argv], env=stack.user_env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def registered(stack) -> bool:
    """The agent registers its instance when it starts; before that a project has no instance to wait for."""
    listing = sharedfs(stack, "instance", "list", "-f", "value")
    return listing.returncode == 0 and listing.stdout.split()[:1] == [stack.instance]


def test_create_wait_returns_when_the_instance_reports_mounted(stack):
    assert wait_for(lambda: registered(stack), timeout=30), stack.log_path.read_text()
    # The mount point is inside the agent's allowed root (the test's directory), not /mnt/home:
    # the agent creates its mount point directory, and the host's /mnt is not ours to change.
    done = sharedfs(stack, "fs", "create", "home", "--size", "1Gb", "--scope", "project",
                    "--mount-point", stack.mount_point("home"), "--wait", "--timeout", "90")  # fmt: skip
    assert done.returncode == ExitStatus.OK, done.stderr + stack.log_path.read_text()
    # Returned only once reported: no waiting here.
    assert stack.reported("home") == "mounted"
    assert stack.mounted("home")
    assert "| status        | available" in done.stdout
    assert done.stderr.splitlines()[-1].startswith(f"home: {stack.instance} mounted")

    shown = sharedfs(stack, "fs", "instances", "home", "-f", "value")
    assert shown.returncode == 0 and shown.stdout.split()[:3] == [stack.instance, "yes", "mounted"]


def test_connect_disconnect_delete_wait(stack):
    made = sharedfs(stack, "fs", "create", "scratch", "--size", "1Gb", "--mount-point", stack.mount_point("scratch"))
    assert made.returncode == 0, made.stderr
    assert not stack.mounted("scratch")

    connected = sharedfs(stack, "fs", "connect", "scratch", stack.instance, "--wait", "--timeout", "60")
    assert connected.returncode == ExitStatus.OK, connected.stderr + stack.log_path.read_text()
    assert stack.reported("scratch") == "mounted" and stack.mounted("scratch")

    gone = sharedfs(stack, "fs", "disconnect", "scratch", stack.instance, "--wait", "--timeout", "60")
    assert gone.returncode == ExitStatus.OK, gone.stderr
    assert stack.reported("scratch") == "unmounted" and not stack.mounted("scratch")

    deleted = sharedfs(stack, "fs", "delete", "scratch", "--wait", "--timeout", "60")
    assert deleted.returncode == ExitStatus.OK, deleted.stderr
    missing = sharedfs(stack, "fs", "show", "scratch")
    assert missing.returncode == ExitStatus.API_ERROR
    assert missing.stderr == f"sharedfs: filesystem 'scratch' not found in project '{stack.project}' (HTTP 404)\n"

    # Deleting a mounted one: the API's worker destroys the volume only once the agent has
    # reported `unmounted`, and --wait returns only when the filesystem is gone, so by then the
    # mount has left the instance's mount table (no waiting here).
    assert stack.mounted("home")
    deleted = sharedfs(stack, "fs", "delete", "home", "--wait", "--timeout", "60")
    assert deleted.returncode == ExitStatus.OK, deleted.stderr + stack.log_path.read_text()
    assert not stack.mounted("home")
    assert deleted.stderr.splitlines()[-1].startswith("home: gone")
    assert sharedfs(stack, "fs", "show", "home").returncode == ExitStatus.API_ERROR


def test_refused_mount_points(stack):
    # The API refuses a system directory itself: one line, the API's reason, exit 1.
    refused = sharedfs(stack, "fs", "create", "sys", "--size", "1Gb", "--mount-point", "/etc/sys")
    assert refused.returncode == ExitStatus.API_ERROR
    assert refused.stderr == ("sharedfs: fs_entry.mount_point: mount_point '/etc/sys' is inside the system "
                              "directory /etc (HTTP 400)\n")  # fmt: skip
    assert "Traceback" not in refused.stderr and refused.stdout == ""

    # A well-formed path outside the agent's allowed roots: the API accepts it, the agent refuses
    # it and reports `error`; --wait names the instance with the agent's reason, exit 4.
    outside = "/srv/sharedfs-user-cli-elsewhere"
    failed = sharedfs(stack, "fs", "create", "elsewhere", "--size", "1Gb", "--scope", "project",
                      "--mount-point", outside, "--wait", "--timeout", "60")  # fmt: skip
    assert failed.returncode == ExitStatus.WAIT_FAILED, failed.stderr
    report = failed.stderr.splitlines()
    assert report[-2] == "sharedfs: elsewhere: not mounted:"
    assert report[-1].startswith(f"  {stack.instance}: error, last report ")
    assert f"mount_point {outside!r} is outside the allowed roots" in report[-1]
    assert not os.path.exists(outside)
    assert sharedfs(stack, "fs", "delete", "elsewhere").returncode == 0


def test_dead_agent_times_out_naming_the_instance_then_converges(stack):
    pid = stack.agent.pid
    assert stack.stop_agent() == 0  # SIGTERM to the agent this fixture started, by its pid
    assert not os.path.exists(f"/proc/{pid}")
    late = sharedfs(stack, "fs", "create", "late", "--size", "1Gb", "--scope", "project",
                    "--mount-point", stack.mount_point("late"), "--wait", "--timeout", "8")  # fmt: skip
    assert late.returncode == ExitStatus.WAIT_TIMEOUT, late.stderr
    report = late.stderr.splitlines()
    assert report[-3] == "sharedfs: late: timed out after 8s waiting for mounted; still waiting for:"
    assert report[-2] == f"  {stack.instance}: pending, no report from its agent yet"
    assert "agent is not running" in report[-1]
    assert not stack.mounted("late")

    stack.start_agent()
    # The same create again is the API's "identical exists" (200): --wait picks up where it was.
    again = sharedfs(stack, "fs", "create", "late", "--size", "1Gb", "--scope", "project",
                     "--mount-point", stack.mount_point("late"), "--wait", "--timeout", "90")  # fmt: skip
    assert again.returncode == ExitStatus.OK, again.stderr + stack.log_path.read_text()
    assert "already exists with these settings" in again.stderr
    assert stack.mounted("late")
    assert sharedfs(stack, "fs", "delete", "late", "--wait").returncode == 0
    assert not stack.mounted("late")  # the delete waited for the agent's unmount
