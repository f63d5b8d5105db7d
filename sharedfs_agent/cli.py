"""sharedfs-agent command line: run | once | plan | status | check | release | packages | version; errors become exit codes."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

from . import __version__, actual, fstab, logs, sources
from . import config as config_mod
from .errors import ExitStatus, SharedfsError, SourceUnavailable, outcome
from .gather import Gatherer
from .host.mount import Host
from .lock import PassLock
from .mounters import registry
from .reconcile import PassResult, Reconciler
from .report import read_status, write_status

if TYPE_CHECKING:
    import argparse

__all__ = ["main", "ExitStatus"]

log = logging.getLogger("sharedfs_agent")


def _parser() -> argparse.ArgumentParser:
    import argparse  # not for the daemon: `run` with its usual options is parsed by _run_args

    parser = argparse.ArgumentParser(prog="sharedfs-agent", description="sharedfs-agent command line")
    parser.add_argument("--version", action="version", version=f"sharedfs-agent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    helps = {
        "run": "the daemon: wait for a change, reconcile, report (systemd runs this)",
        "once": "one reconcile pass, then exit (0 converged, 1 some failed, 2 usage, 3 source unavailable, "
        "4 another pass holds the lock)",
        "plan": "show what a pass would do; changes nothing",
        "status": "each filesystem: desired, actual, state, last error",
        "check": "doctor: config, source, clients installed, fstab sane",
        "release": "unmount everything the agent mounted and remove its fstab lines (before an uninstall)",
        "packages": "the distribution packages the clients of these filesystem types need (installers use it)",
        "version": "print the version",
    }
    for name, text in helps.items():
        p = sub.add_parser(name, help=text, description=text)
        if name == "packages":
            p.add_argument("--family", choices=("debian", "rhel"), default="debian",
                           help="distribution family (default debian: Debian, Ubuntu)")  # fmt: skip
            p.add_argument("fs_types", nargs="*", metavar="FS_TYPE", help="default: every type this agent mounts")
        elif name != "version":
            p.add_argument("--config", help=f"INI file (default ${config_mod.ENV_VAR} or {config_mod.DEFAULT_PATH})")
            p.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
        if name in ("plan", "status"):
            p.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _run_args(argv: Sequence[str]) -> Optional[SimpleNamespace]:
    """`run [--config PATH] [-v|--verbose]` as argparse reads it, without argparse (about 0.3 MB of
    the daemon's memory for the life of the instance); None for anything else (help, a mistake,
    an abbreviation), which argparse then parses and answers as always."""
    if not argv or argv[0] != "run":
        return None
    args = SimpleNamespace(command="run", config=None, verbose=False)
    rest = list(argv[1:])
    while rest:
        word = rest.pop(0)
        if word in ("-v", "--verbose"):
            args.verbose = True
        elif word == "--config" and rest and not rest[0].startswith("-"):
            args.config = rest.pop(0)
        elif word.startswith("--config=") and not word[len("--config=") :].startswith("-"):
            args.config = word[len("--config=") :]
        else:
            return None
    return args


def _config(args) -> config_mod.AgentConfig:
    args.config_path = args.config or os.environ.get(config_mod.ENV_VAR) or config_mod.DEFAULT_PATH
    return _load(args.config_path)


def _load(path: str) -> config_mod.AgentConfig:
    """The config, with the sections of every source installed (read again on each SIGHUP)."""
    return config_mod.load(path, sources.registry())


def _built(cfg) -> Tuple[Gatherer, Reconciler]:
    """Every source the config names, built by its plugin, and a reconciler for what they say."""
    plugins, mounters = sources.registry(), registry()
    built = {name: sources.build(plugins[name], cfg.source_settings.get(name, {})) for name in cfg.sources}
    return Gatherer(cfg, built, mounters), Reconciler(cfg, mounters)


def cmd_once(cfg, args) -> int:
    gatherer, reconciler = _built(cfg)
    with PassLock(cfg.lock_path, wait=cfg.mount_timeout * 2):
        gathered = gatherer.gather()  # every source must answer now; else main() exits 3, nothing changed
        result = reconciler.run_pass(gathered.desired, gathered.fresh)
        write_status(cfg.status_path, result.verdicts, gatherer.describe())
    for verdict in result.verdicts:
        if verdict.detail:
            log.warning("%s %s: %s: %s", verdict.name, verdict.mount_point or "-", verdict.state.value, verdict.detail)
    return ExitStatus.SOME_FAILED if result.failed else ExitStatus.CONVERGED


def cmd_plan(cfg, args) -> int:
    gatherer, reconciler = _built(cfg)
    gathered = gatherer.gather()  # SourceUnavailable: main() exits 3
    result: PassResult = reconciler.run_pass(gathered.desired, gathered.fresh, dry_run=True)
    if args.json:
        print(
            json.dumps(
                {
                    "actions": [
                        {"action": a.kind.value, "mount_point": a.mount_point, "name": a.name, "reason": a.reason}
                        for a in result.plan.actions
                    ],
                    "filesystems": [
                        {"name": v.name, "mount_point": v.mount_point, "state": v.state.value, "detail": v.detail}
                        for v in result.verdicts
                    ],
                },
                indent=1,
            )
        )
    else:
        for action in result.plan.actions:
            print(action)
        for v in result.verdicts:
            if v.state.value == "error":
                print(f"refused {v.name}: {v.detail}")
        if result.plan.converged:
            print("nothing to do")
    return ExitStatus.CONVERGED


def cmd_status(cfg, args) -> int:
    """Reads only the status file and mountinfo: answers at once even when a server hangs."""
    status = read_status(cfg.status_path)
    if status is None:
        print(f"no status yet ({cfg.status_path}): run `sharedfs-agent once`", file=sys.stderr)
        return ExitStatus.SOME_FAILED
    mounts = actual.top_mounts(actual.read_mountinfo())
    for fs in status["filesystems"]:
        record = mounts.get(fs["mount_point"]) if fs["mount_point"] else None
        fs["actual"] = f"{record.fstype} {record.source}" if record else "not mounted"
    if args.json:
        print(json.dumps(status, indent=1))
        return ExitStatus.CONVERGED
    age = time.time() - status["updated_at"]
    print(f"source: {status['source']}   last pass: {age:.0f}s ago")
    rows = [("NAME", "MOUNT POINT", "STATE", "ACTUAL", "DETAIL")]
    rows += [(f["name"], f["mount_point"] or "-", f["state"], f["actual"], f["detail"]) for f in status["filesystems"]]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])
    return ExitStatus.CONVERGED


def cmd_check(cfg, args) -> int:
    problems: List[str] = []
    print(f"config: ok (source {', '.join(cfg.sources)}, state_dir {cfg.state_dir}, fstab {cfg.fstab})")
    gatherer, reconciler = _built(cfg)
    mounters = reconciler.mounters
    try:
        desired = gatherer.gather().desired
        print(
            f"source: ok ({gatherer.describe()}): {len(desired.filesystems)} filesystems, "
            f"{len(desired.rejections)} refused"
        )
        for r in desired.rejections:
            problems.append(f"refused {r.name}: {r.reason}")
        in_use = {fs.fs_type for fs in desired.filesystems}
    except SourceUnavailable as e:
        problems.append(f"source: {e}")
        in_use = set(mounters)
    host = Host()
    for name in sorted(mounters):
        mounter = mounters[name]
        missing = None
        if not host.client_installed(mounter.helper, mounter.kernel_fstypes, mounter.kernel_module):
            missing = mounter.client_hint()
        label = "in use" if name in in_use else "not in use"
        print(f"client {name}: {'missing' if missing else 'ok'} ({label})")
        if missing and name in in_use:
            problems.append(missing)
    try:
        table = fstab.read(cfg.fstab)
        print(f"fstab: ok ({len(table.owned())} lines of ours, {len(table.foreign_targets())} others)")
    except OSError as e:
        problems.append(f"fstab {cfg.fstab}: {e}")
    for p in problems:
        print(f"PROBLEM: {p}")
    return ExitStatus.SOME_FAILED if problems else ExitStatus.CONVERGED


def cmd_release(cfg, args) -> int:
    reconciler = Reconciler(cfg, registry())  # no source is consulted
    with PassLock(cfg.lock_path, wait=cfg.mount_timeout * 2):
        result = reconciler.release_all()
    for verdict in result.verdicts:
        log.info("%s %s: %s %s", verdict.name, verdict.mount_point, verdict.state.value, verdict.detail)
    return ExitStatus.SOME_FAILED if result.failed else ExitStatus.CONVERGED


def cmd_run(cfg, args) -> int:
    from .daemon import Daemon

    return Daemon(args.config_path, _load).run()


COMMANDS = {
    "run": cmd_run,
    "release": cmd_release,
    "once": cmd_once,
    "plan": cmd_plan,
    "status": cmd_status,
    "check": cmd_check,
}


def cmd_packages(args) -> int:
    """One line of package names, for `apt-get install` / `dnf install`; types whose client does
    not come from the distribution (Lustre's site repository, virtiofs in the kernel) add none."""
    mounters = registry()
    unknown = [t for t in args.fs_types if t not in mounters]
    if unknown:
        print(f"sharedfs-agent: unknown filesystem type {', '.join(unknown)} "
              f"(this agent mounts: {', '.join(sorted(mounters))})", file=sys.stderr)  # fmt: skip
        return ExitStatus.USAGE
    names: List[str] = []
    for fs_type in args.fs_types or sorted(mounters):
        mounter = mounters[fs_type]
        package = mounter.packages.get(args.family) if mounter.installable else None
        if package and package not in names:
            names.append(package)
    print(" ".join(names))
    return ExitStatus.CONVERGED


def main(argv: Optional[List[str]] = None) -> int:
    args = _run_args(sys.argv[1:] if argv is None else argv) or _parser().parse_args(argv)
    if args.command == "version":
        print(f"sharedfs-agent {__version__}")
        return ExitStatus.CONVERGED
    if args.command == "packages":
        return cmd_packages(args)
    logs.setup(args.command, args.verbose)
    try:
        return int(COMMANDS[args.command](_config(args), args))
    except SharedfsError as e:  # what each error means for the exit status is decided in errors.outcome
        result = outcome(e)
        log.error("%s", result.detail)
        return result.exit_status
