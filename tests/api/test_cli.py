"""The `sharedfs` command against a real sharedfs-api process (static driver): roles, formats, --wait, a terminal."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
import time

import yaml

from sharedfs_client.cli import ExitStatus

GL = ["--export", "gl1:/cli", "--type", "glusterfs"]


def sharedfs(world, who, *argv, tty=False, timeout=60):
    env = {**os.environ, "SHAREDFS_URL": world.server.url, "SHAREDFS_PROJECT": "p1"}
    if world.tokens[who]:
        env["SHAREDFS_TOKEN"] = world.tokens[who]
    command = [sys.executable, "-m", "sharedfs_client", *argv]
    if not tty:
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    # stderr on a pseudo-terminal: what a person at a terminal sees of --wait's progress.
    leader, follower = pty.openpty()
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=follower, text=True) as proc:
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the command closed its end
                break
            if not chunk:
                break
            seen += chunk
        out = proc.stdout.read()
        proc.wait(timeout)
    os.close(leader)
    return subprocess.CompletedProcess(command, proc.returncode, out, seen.decode())


def test_roles_give_the_apis_message_in_one_line(world):
    denied = sharedfs(world, "proj2", "fs", "list")
    assert (denied.returncode, denied.stderr) == (
        ExitStatus.API_ERROR, "sharedfs: this token belongs to project 'p2', not 'p1' (HTTP 403)\n")  # fmt: skip
    unknown = sharedfs(world, "bogus", "fs", "list")
    assert (unknown.returncode, unknown.stderr) == (ExitStatus.API_ERROR, "sharedfs: unknown X-Auth-Token (HTTP 401)\n")
    missing = sharedfs(world, "none", "fs", "list")
    assert missing.returncode == ExitStatus.USAGE and "no token" in missing.stderr
    static = sharedfs(world, "proj1", "fs", "create", "mine", "--size", "1Gb", *GL)
    assert static.returncode == ExitStatus.API_ERROR
    assert "only an admin token may register an existing export" in static.stderr


def test_formats_carry_the_apis_data(world):
    made = sharedfs(world, "admin", "fs", "create", "cliformats", "--size", "2Gb", "--scope", "project",
                    "--mount-point", "/data/cli", "--option", "acl", "--option", "noatime", *GL, "-f", "json")  # fmt: skip
    assert made.returncode == 0, made.stderr
    entry = json.loads(made.stdout)
    assert entry == world.call("GET", "/v1.1/p1/os-filesystem/cliformats").json()["fs_entry"]
    assert entry["mount_options"] == ["acl", "noatime"]
    as_yaml = sharedfs(world, "proj1", "fs", "show", "cliformats", "-f", "yaml")
    assert yaml.safe_load(as_yaml.stdout) == entry
    listed = sharedfs(world, "proj1", "-f", "value", "fs", "list")
    assert "cliformats 2Gb project available glusterfs /data/cli p1" in listed.stdout.splitlines()
    instances = json.loads(sharedfs(world, "proj1", "fs", "instances", "cliformats", "-f", "json").stdout)
    assert [(i["id"], i["connected"], i["mount_state"], i["age_seconds"]) for i in instances] == [
        ("i1", True, "pending", None), ("i2", True, "pending", None)]  # fmt: skip


def test_wait_follows_reports_and_shows_progress_on_a_terminal(world):
    assert sharedfs(world, "admin", "fs", "create", "cliwait", "--size", "1Gb", *GL).returncode == 0
    result = {}
    waiter = threading.Thread(target=lambda: result.update(done=sharedfs(
        world, "proj1", "fs", "connect", "cliwait", "i1", "--wait", "--timeout", "30", tty=True)))  # fmt: skip
    waiter.start()
    time.sleep(2.5)
    # No agent here: i1's instance token reports, as its agent would, while the command waits.
    report = world.call("PUT", "/v1.1/p1/os-instances/i1/filesystems/cliwait/state", "inst1",
                        json={"state": "mounted", "detail": ""})  # fmt: skip
    assert report.status_code == 200
    waiter.join(40)
    done = result["done"]
    assert done.returncode == ExitStatus.OK, done.stderr
    # One line rewritten in place: carriage return + erase line, then a final newline.
    assert done.stderr.startswith("\r\x1b[Kcliwait: i1 pending (0s)\r\x1b[Kcliwait: i1 pending (1s)")
    assert done.stderr.endswith("cliwait: i1 mounted (2s)\r\n") or done.stderr.endswith("cliwait: i1 mounted (3s)\r\n")


def test_wait_names_errors_escaped_and_timeouts(world):
    assert sharedfs(world, "admin", "fs", "create", "clierr", "--size", "1Gb", *GL).returncode == 0
    # An instance reports only for what it reaches: connected first, its agent then reports an error.
    assert world.call("PUT", "/v1.1/p1/os-filesystem/clierr/instances/i2", "proj1").status_code in (200, 201)
    report = world.call("PUT", "/v1.1/p1/os-instances/i2/filesystems/clierr/state", "inst2",
                        json={"state": "error", "detail": "no route to gl1\x1b[2J"})  # fmt: skip
    assert report.status_code == 200
    failed = sharedfs(world, "proj1", "fs", "connect", "clierr", "i2", "--wait", "--timeout", "30")
    assert failed.returncode == ExitStatus.WAIT_FAILED
    assert failed.stderr.splitlines()[-2:] == ["sharedfs: clierr: not mounted:",
                                               failed.stderr.splitlines()[-1]]  # fmt: skip
    assert failed.stderr.splitlines()[-1].startswith("  i2: error, last report ")
    assert failed.stderr.splitlines()[-1].endswith(": no route to gl1\\x1b[2J")
    assert "\x1b" not in failed.stderr

    # i2 still reports mounted after the disconnect (no agent lets go here): a timeout naming it.
    world.call("PUT", "/v1.1/p1/os-instances/i2/filesystems/clierr/state", "inst2", json={"state": "mounted"})
    stuck = sharedfs(world, "proj1", "fs", "disconnect", "clierr", "i2", "--wait", "--timeout", "2")
    assert stuck.returncode == ExitStatus.WAIT_TIMEOUT
    lines = stuck.stderr.splitlines()
    assert lines[-3] == "sharedfs: clierr: timed out after 2s waiting for unmounted; still waiting for:"
    assert lines[-2].startswith("  i2: mounted, last report ")

    gone = sharedfs(world, "proj1", "fs", "delete", "clierr", "--wait")
    assert (gone.returncode, gone.stderr) == (0, "clierr: gone (0s)\n")
