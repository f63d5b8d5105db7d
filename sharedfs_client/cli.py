"""The `sharedfs` command: filesystems and instances of one project, tables or -f json|yaml|value; errors -> exit codes."""

from __future__ import annotations

import argparse
import enum
import logging
import os
import shutil
import sys
from typing import IO, Optional, Sequence

from .api import Client, UrllibTransport
from .errors import ApiError, ClientError
from .output import FORMATS, render_list, render_one, sanitize
from .wait import Goal, Progress, Waiting, WaitTimeout, age_seconds, follow

__all__ = ["main", "ExitStatus", "wait_and_report", "FS_FIELDS", "FS_COLUMNS", "FS_HEADINGS", "instances_with_age",
           "INSTANCE_COLUMNS", "INSTANCE_DATA_COLUMNS", "INSTANCE_HEADINGS"]


class ExitStatus(enum.IntEnum):
    OK = 0
    API_ERROR = 1  # the API refused the request; its message is shown
    USAGE = 2  # bad options, or no endpoint / token / project
    UNREACHABLE = 3  # no answer, or an answer that is not the API's (a proxy's page)
    WAIT_FAILED = 4  # --wait: the filesystem or an instance reported `error` (each named with its detail)
    WAIT_TIMEOUT = 5  # --wait: --timeout passed (each instance still waited for named with its last report)
    INTERRUPTED = 130  # Ctrl-C


FS_FIELDS = ("name", "size", "scope", "project", "fs_type", "mount_point", "mount_options", "export", "status",
             "status_detail")  # fmt: skip
FS_COLUMNS = ("name", "size", "scope", "status", "fs_type", "mount_point", "project")
FS_HEADINGS = ("Name", "Size", "Scope", "Status", "Type", "Mount Point", "Project")
DEFAULT_TIMEOUT = 300.0


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("sharedfs")
    except Exception:  # not installed (run from a source tree)
        return "unknown"


def _common() -> argparse.ArgumentParser:
    """Options accepted before or after the command words (defaults applied in _settings)."""
    common = argparse.ArgumentParser(add_help=False)
    S = argparse.SUPPRESS  # noqa: N806 - so an option given before the command is not reset after it
    group = common.add_argument_group("endpoint and credentials")
    group.add_argument("--url", default=S, help="the API's endpoint, e.g. https://sharedfs.example:8776 (SHAREDFS_URL)")
    group.add_argument("--token", default=S, help="a project or admin token (SHAREDFS_TOKEN; the variable keeps it out of ps)")
    group.add_argument("--project", default=S, help="the project (tenant) to act in (SHAREDFS_PROJECT)")
    group.add_argument("--ca-bundle", default=S, help="CA certificates to verify the API's TLS (SHAREDFS_CA_BUNDLE)")
    group.add_argument("--http-timeout", type=float, default=S, help="seconds for each HTTP request (30)")
    out = common.add_argument_group("output")
    out.add_argument("-f", "--format", choices=FORMATS, default=S, help="table (default), json, yaml or value")
    return common


def _parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(prog="sharedfs", parents=[common],
                                     description="Shared filesystems of a project: the os-filesystem API's command.",
                                     epilog="Exit codes: 0 done, 1 the API refused, 2 usage, 3 API unreachable, "
                                            "4 --wait saw an error, 5 --wait timed out. See docs/cli.md.")  # fmt: skip
    parser.add_argument("--version", action="version", version=f"sharedfs {_version()}")
    top = parser.add_subparsers(dest="noun", metavar="fs|instance")
    top.required = True

    fs = top.add_parser("fs", help="filesystems").add_subparsers(dest="verb", metavar="VERB")
    fs.required = True

    def verb(name: str, help_text: str, wait: bool = False) -> argparse.ArgumentParser:
        p = fs.add_parser(name, help=help_text, parents=[common], description=help_text)
        if wait:
            p.add_argument("--wait", action="store_true",
                           help="follow the change until the instances' agents report it (progress on stderr)")
            p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                           help=f"seconds --wait waits at most ({DEFAULT_TIMEOUT:.0f})")
        return p

    p = verb("create", "create a filesystem (its driver makes the storage)", wait=True)
    p.add_argument("name")
    p.add_argument("--size", required=True, help="like 512Mb, 4Gb, 1Tb (binary units)")
    p.add_argument("--scope", choices=("instance", "project", "global"),
                   help="instance (connect each; the default), project (every instance of it), global (admin)")
    p.add_argument("--mount-point", help="absolute path on the instances (default /mnt/NAME)")
    p.add_argument("--type", dest="fs_type", help="fs_type (default: the server's driver's)")
    p.add_argument("--option", dest="options", action="append", default=[], help="a mount option (repeat)")
    p.add_argument("--export", help="register an existing export (admin; the static driver)")

    verb("list", "list the project's filesystems and the global ones")
    verb("show", "show one filesystem").add_argument("name")
    verb("delete", "delete a filesystem and its storage", wait=True).add_argument("name")
    for name, text in (("connect", "connect an instance (it mounts the filesystem)"),
                       ("disconnect", "disconnect an instance (it unmounts the filesystem)")):  # fmt: skip
        p = verb(name, text, wait=True)
        p.add_argument("name")
        p.add_argument("instance")
    verb("instances", "each instance of a filesystem: connected, mount state, detail, age").add_argument("name")

    inst = top.add_parser("instance", help="instances").add_subparsers(dest="verb", metavar="VERB")
    inst.required = True
    inst.add_parser("list", help="list the project's registered instances", parents=[common])
    return parser


class Usage(Exception):
    """A missing setting: exit 2 with this message."""


def _settings(args: argparse.Namespace, env) -> argparse.Namespace:
    for option, variable, default in (("url", "SHAREDFS_URL", None), ("token", "SHAREDFS_TOKEN", None),
                                      ("project", "SHAREDFS_PROJECT", None), ("ca_bundle", "SHAREDFS_CA_BUNDLE", None),
                                      ("http_timeout", None, 30.0), ("format", None, "table")):  # fmt: skip
        if getattr(args, option, None) is None:
            setattr(args, option, (env.get(variable) if variable else None) or default)
    # An openrc's OS_* variables stand in for the token (and the URL and project: the catalog and the
    # token's scope give them) when SHAREDFS_TOKEN is not set.
    args.keystone = not args.token and bool(env.get("OS_AUTH_URL"))
    if args.url and not args.url.startswith(("http://", "https://")):
        raise Usage(f"--url {sanitize(args.url)!r} is not an http:// or https:// URL")
    if args.keystone:
        return args
    if not args.url:
        raise Usage("no API endpoint: give --url or set SHAREDFS_URL (or source an openrc: OS_AUTH_URL …)")
    if not args.token:
        raise Usage("no token: set SHAREDFS_TOKEN (or give --token, or source an openrc: OS_AUTH_URL …)")
    if not args.project:
        raise Usage("no project: give --project or set SHAREDFS_PROJECT")
    return args


class Display:
    """--wait's progress on stderr: one line rewritten in place on a terminal, a line per change otherwise."""

    def __init__(self, stream: IO[str], name: str, goal: str) -> None:
        self.stream, self.name, self.goal = stream, name, goal
        self.tty = stream.isatty()
        self.last = ""
        self.dirty = False

    def __call__(self, progress: Progress, elapsed: float) -> None:
        if progress.states:
            summary = ", ".join(f"{sanitize(who)} {sanitize(state)}" for who, state in progress.states)
        elif progress.waiting:
            summary = ", ".join(f"{sanitize(w.who)} {sanitize(w.state)}" for w in progress.waiting)
        else:
            summary = "gone" if progress.settled and not progress.failed and self.goal == "gone" else "done"
        if self.tty:
            line = f"{self.name}: {summary} ({elapsed:.0f}s)"
            width = shutil.get_terminal_size((80, 24)).columns - 1
            self.stream.write("\r\x1b[K" + line[:width])  # a wrapped line could not be rewritten
            self.dirty = True
        elif summary != self.last:
            self.stream.write(f"{self.name}: {summary} ({elapsed:.0f}s)\n")
        self.last = summary
        self.stream.flush()

    def close(self) -> None:
        if self.dirty:
            self.stream.write("\n")
            self.stream.flush()
            self.dirty = False


def _describe(w: Waiting) -> str:
    if w.who in ("filesystem", "api"):
        text = f"{w.who}: {sanitize(w.state)}"
    elif w.age is None:
        text = f"{sanitize(w.who)}: {sanitize(w.state)}, no report from its agent yet"
    else:
        text = f"{sanitize(w.who)}: {sanitize(w.state)}, last report {_age(w.age)} ago"
    return text + (f": {sanitize(w.detail)}" if w.detail else "")


def _age(seconds: Optional[float]) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def wait_and_report(client: Client, name: str, goal: Goal, timeout: float, err: IO[str]) -> ExitStatus:
    """--wait: progress on err, then OK, WAIT_FAILED or WAIT_TIMEOUT with each instance concerned named on err."""
    display = Display(err, sanitize(name), goal.want)
    try:
        progress = follow(client, name, goal, timeout, display)
    except WaitTimeout as e:
        display.close()  # the rewritten line ends before the report starts
        lines = [f"sharedfs: {sanitize(name)}: timed out after {timeout:g}s waiting for {goal.want}; still waiting for:"]
        lines += [f"  {_describe(w)}" for w in e.progress.waiting]
        if any(w.who not in ("filesystem", "api") for w in e.progress.waiting):
            lines.append("  (an instance whose agent is not running never reports; see `sharedfs fs instances`)")
        err.write("\n".join(lines) + "\n")
        return ExitStatus.WAIT_TIMEOUT
    finally:
        display.close()
    if progress.failed:
        err.write(f"sharedfs: {sanitize(name)}: not {goal.want}:\n" + "".join(f"  {_describe(w)}\n" for w in progress.failed))
        return ExitStatus.WAIT_FAILED
    return ExitStatus.OK


INSTANCE_COLUMNS = ("id", "connected", "mount_state", "detail", "age")
INSTANCE_DATA_COLUMNS = ("id", "connected", "mount_state", "detail", "updated_at", "age_seconds")  # for scripts
INSTANCE_HEADINGS = ("ID", "Connected", "Mount State", "Detail", "Age")


def instances_with_age(client: Client, name: str) -> list:
    """A filesystem's instances, each with the age of its last report by the server's clock (age, age_seconds)."""
    rows = client.filesystem_instances(name)
    now = client.server_now()
    for row in rows:
        age = age_seconds(row.get("updated_at"), now)
        row["age_seconds"] = None if age is None else int(age)
        row["age"] = _age(age)
    return rows


def _client(args: argparse.Namespace) -> Client:
    if not args.keystone:
        return Client(args.url, args.project, UrllibTransport(args.token, args.ca_bundle), timeout=args.http_timeout)
    try:  # the optional extra: the light install has no keystoneauth
        from .osc import session
    except ImportError:
        raise Usage("OS_* credentials need keystoneauth: pip install 'sharedfs[osc]' (or set SHAREDFS_TOKEN)")
    # keystoneauth's warnings (version discovery) would reach stderr through logging's last resort;
    # what matters comes back as an error, shown as one line.
    logging.getLogger("keystoneauth").addHandler(logging.NullHandler())
    try:
        ks_session = session.session_from_environment(args.env)
    except ValueError as e:
        raise Usage(sanitize(e))
    root, project = session.split_endpoint(args.url or session.catalog_endpoint(ks_session, args.env))
    project = args.project or project or session.project_of(ks_session)
    return Client(root, project, session.KeystoneTransport(ks_session), timeout=args.http_timeout)


def _run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> ExitStatus:
    client = _client(args)
    fmt = args.format

    def emit(text: str) -> None:
        if text:
            out.write(text + "\n")

    if args.noun == "instance":
        rows = client.list_instances()
        emit(render_list(rows, ("id", "addresses"), ("ID", "Addresses"), fmt))
        return ExitStatus.OK

    verb = args.verb
    if verb == "list":
        emit(render_list(client.list_filesystems(), FS_COLUMNS, FS_HEADINGS, fmt))
        return ExitStatus.OK
    if verb == "show":
        emit(render_one(client.get_filesystem(args.name), FS_FIELDS, fmt))
        return ExitStatus.OK
    if verb == "instances":
        columns = INSTANCE_DATA_COLUMNS if fmt in ("json", "yaml") else INSTANCE_COLUMNS
        emit(render_list(instances_with_age(client, args.name), columns, INSTANCE_HEADINGS, fmt))
        return ExitStatus.OK
    if verb == "create":
        created, entry = client.create_filesystem(args.name, args.size, scope=args.scope, mount_point=args.mount_point,
                                                  fs_type=args.fs_type, mount_options=args.options,
                                                  export=args.export)  # fmt: skip
        if not created:
            err.write(f"sharedfs: {sanitize(args.name)} already exists with these settings\n")
        if not args.wait:
            emit(render_one(entry, FS_FIELDS, fmt))  # most likely "creating": the server's worker makes it
            return ExitStatus.OK
        status = wait_and_report(client, args.name, Goal("mounted"), args.timeout, err)
        try:
            entry = client.get_filesystem(args.name)  # as the wait left it: available (or error), not creating
        except ClientError:
            pass
        emit(render_one(entry, FS_FIELDS, fmt))
        return status
    if verb == "delete":
        client.delete_filesystem(args.name)
        return wait_and_report(client, args.name, Goal("gone"), args.timeout, err) if args.wait else ExitStatus.OK
    if verb == "connect":
        client.connect(args.name, args.instance)
        goal = Goal("mounted", args.instance)
        return wait_and_report(client, args.name, goal, args.timeout, err) if args.wait else ExitStatus.OK
    if verb == "disconnect":
        client.disconnect(args.name, args.instance)
        goal = Goal("unmounted", args.instance)
        return wait_and_report(client, args.name, goal, args.timeout, err) if args.wait else ExitStatus.OK
    raise AssertionError(f"unhandled command {verb}")  # argparse allows no other


def main(argv: Optional[Sequence[str]] = None, env=None, out: Optional[IO[str]] = None,
         err: Optional[IO[str]] = None) -> int:  # fmt: skip
    env = os.environ if env is None else env
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        _settings(args, env)
        args.env = env
        return int(_run(args, out, err))
    except Usage as e:
        err.write(f"sharedfs: {e}\n")
        return ExitStatus.USAGE
    except ApiError as e:
        err.write(f"sharedfs: {sanitize(e.message)} (HTTP {e.status})\n")
        return ExitStatus.API_ERROR
    except ClientError as e:
        err.write(f"sharedfs: cannot use the API: {sanitize(e)}\n")
        return ExitStatus.UNREACHABLE
    except KeyboardInterrupt:
        err.write("\nsharedfs: interrupted (the API keeps doing what it was asked)\n")
        return ExitStatus.INTERRUPTED
    except BrokenPipeError:  # `sharedfs fs list | head`: the reader has what it wanted
        if out is sys.stdout:
            # Python would flush stdout again at exit and print the same error as a traceback.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitStatus.OK

