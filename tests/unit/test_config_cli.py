"""Config parsing (every mistake named), the mounter registry, and the CLI's exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from sharedfs_agent import cli, sources
from sharedfs_agent.config import load as load_with
from sharedfs_agent.errors import ConfigError
from sharedfs_agent.mounters import BUILTIN, Mounter, registry


def load(path):
    return load_with(path, sources.registry(entry_points=()))


def write(tmp_path, text):
    path = tmp_path / "agent.conf"
    path.write_text(text)
    return str(path)


def test_config_values_and_defaults(tmp_path):
    cfg = load(
        write(
            tmp_path,
            "[agent]\nstate_dir = /x/state ; comment\nallowed_roots = /mnt /data\n"
            "mount_timeout = 12.5\nallow_suid = yes\nmount_point_mode = 0750\n"
            "use_systemd_scope = auto\n[file]\npath = /x/fs.json\n[api]\nurl = https://a\n",
        )
    )
    assert (cfg.state_dir, cfg.allowed_roots, cfg.mount_timeout) == ("/x/state", ("/mnt", "/data"), 12.5)
    assert cfg.allow_suid and not cfg.allow_dev and cfg.mount_point_mode == 0o750
    assert cfg.use_systemd_scope is None and cfg.source_settings["file"]["path"] == "/x/fs.json"
    assert cfg.source_settings["api"]["url"] == "https://a"


@pytest.mark.parametrize(
    "text, words",
    [
        ("[agent]\nmount_timout = 3\n", "unknown key 'mount_timout'"),
        ("[agnet]\n", "unknown section [agnet]"),
        ("[agent]\nallow_suid = maybe\n", "allow_suid"),
        ("[agent]\nmount_timeout = -1\n", "mount_timeout"),
        ("[agent]\nmax_filesystems = lots\n", "max_filesystems"),
        ("[agent]\nallowed_roots = /mnt ../x\n", "allowed_roots"),
        ("[agent]\nallowed_roots = /\n", "allowed_roots"),
        ("[agent]\nsource = http\n", "source"),
        ("[agent]\nstate_dir = relative\n", "absolute"),
        ("[agent]\nmount_point_owner = nosuchuser\n", "mount_point_owner"),
        ("no section\n", "agent.conf"),
        ("[agent]\nsource = api, fiel\n", "unknown source 'fiel'"),
        ("[agent]\nsource = file file\n", "'file' is named twice"),
        ("[agent]\nsource = ,\n", "name at least one source"),
        ("[file]\npaht = /x\n", "unknown key 'paht' in [file]"),
        ("[file]\npath = x.json\n", "[file] path = 'x.json': must be an absolute path"),
        ("[api]\nurl = ftp://a\n", "[api] url = 'ftp://a': must be an http:// or https:// URL"),
        ("[api]\nwait = 0\n", "[api] wait"),
    ],
)
def test_config_mistakes_are_named(tmp_path, text, words):
    with pytest.raises(ConfigError, match=None) as e:
        load(write(tmp_path, text))
    assert words in str(e.value)


def test_broken_plugin_is_skipped_and_duplicates_refused(caplog):
    class Good(Mounter):
        fs_type = "thirdfs"

    class Claimer(Mounter):
        fs_type = "glusterfs"

    def broken():
        raise ImportError("no module named thirdfs_client")

    eps = [
        SimpleNamespace(name=name, load=lambda f=f: f)
        for name, f in [("good", Good), ("broken", broken), ("claimer", Claimer), ("junk", lambda: object)]
    ]
    mounters = registry(entry_points=eps)
    assert set(mounters) == set(BUILTIN) | {"thirdfs"}
    assert type(mounters["glusterfs"]).__name__ == "GlusterfsMounter"
    text = caplog.text
    assert "broken skipped" in text and "claimer skipped" in text and "junk skipped" in text


def agent(*args, env=None):
    return subprocess.run([sys.executable, "-m", "sharedfs_agent", *args], capture_output=True, text=True, env=env)


def test_exit_codes(tmp_path):
    conf = write(
        tmp_path,
        f"[agent]\nstate_dir = {tmp_path}/state\nfstab = {tmp_path}/fstab\n"
        f"allowed_roots = {tmp_path}/mnt\n[file]\npath = {tmp_path}/fs.json\n",
    )
    assert agent("once", "--config", str(tmp_path / "missing.conf")).returncode == cli.ExitStatus.USAGE
    assert agent("frobnicate").returncode == cli.ExitStatus.USAGE
    missing_source = agent("once", "--config", conf)
    assert missing_source.returncode == cli.ExitStatus.SOURCE_UNAVAILABLE
    assert "nothing changed" in missing_source.stderr
    assert not (tmp_path / "fstab").exists()
    (tmp_path / "fs.json").write_text(json.dumps({"filesystems": []}))
    assert agent("once", "--config", conf).returncode == cli.ExitStatus.CONVERGED
    (tmp_path / "fs.json").write_text(json.dumps({"filesystems": [{"name": "x", "fs_type": "ext4"}]}))
    assert agent("once", "--config", conf).returncode == cli.ExitStatus.SOME_FAILED
    plan = agent("plan", "--json", "--config", conf)
    assert json.loads(plan.stdout)["filesystems"][0]["state"] == "error"
    status = agent("status", "--json", "--config", conf)
    assert "unknown fs_type" in json.loads(status.stdout)["filesystems"][0]["detail"]
    assert agent("version").stdout.startswith("sharedfs-agent ")
    check = agent("check", "--config", conf)
    assert check.returncode == 1 and "PROBLEM: refused x: unknown fs_type 'ext4'" in check.stdout
    (tmp_path / "state" / "owned.json").write_text("{not json")
    damaged = agent("once", "--config", conf)
    assert damaged.returncode == cli.ExitStatus.USAGE and "ledger" in damaged.stderr


def test_held_pass_lock_is_its_own_exit_status(tmp_path):
    from sharedfs_agent import sources
    from sharedfs_agent.config import load as load_config
    from sharedfs_agent.lock import PassLock

    conf = write(
        tmp_path,
        f"[agent]\nstate_dir = {tmp_path}/state\nfstab = {tmp_path}/fstab\nmount_timeout = 0.1\n"
        f"allowed_roots = {tmp_path}/mnt\n[file]\npath = {tmp_path}/fs.json\n",
    )
    (tmp_path / "fs.json").write_text(json.dumps({"filesystems": []}))
    with PassLock(load_config(conf, sources.registry()).lock_path, wait=0):
        held = agent("once", "--config", conf)
        released = agent("release", "--config", conf)
    assert held.returncode == released.returncode == cli.ExitStatus.LOCKED == 4
    assert "holds" in held.stderr and "nothing done" in held.stderr
    assert not (tmp_path / "fstab").exists()
    assert agent("once", "--config", conf).returncode == cli.ExitStatus.CONVERGED


def test_fuse_helper_runs_in_its_own_scope_when_systemd_runs(monkeypatch):
    from sharedfs_agent.host import commands
    from sharedfs_agent.host.mount import Host, MountSettings
    from sharedfs_agent.model import Filesystem

    seen = []
    monkeypatch.setattr(commands, "run", lambda argv, timeout: seen.append(argv) or commands.Result(argv, 0, "", "", 0))
    mounter = registry(entry_points=())["glusterfs"]
    fs = Filesystem("h", "glusterfs", "gl1:/home", "/mnt/home", ("nosuid",))
    assert mounter.fuse  # the mounter decides it needs a scope; Host runs it there when systemd runs
    Host().mount(mounter.mount_argv(fs), MountSettings(30, 15, use_scope=True), own_scope="sharedfs mount of h")
    Host().mount(mounter.mount_argv(fs), MountSettings(30, 15, use_scope=False), own_scope="sharedfs mount of h")
    assert seen[0][:3] == [seen[0][0], "--scope", "--quiet"] and seen[0][0].endswith("systemd-run")
    assert (
        seen[0][seen[0].index("--") + 1 :]
        == seen[1]
        == ["mount", "-t", "glusterfs", "-o", "rw,nosuid", "gl1:/home", "/mnt/home"]
    )


def test_lint_and_layering():
    """ruff and import-linter are part of the suite: a layering break fails here."""
    ruff = subprocess.run([sys.executable, "-m", "ruff", "check", "."], capture_output=True, text=True)
    assert ruff.returncode == 0, ruff.stdout
    lint_imports = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    layers = subprocess.run([lint_imports, "--no-cache"], capture_output=True, text=True)
    assert layers.returncode == 0, layers.stdout
