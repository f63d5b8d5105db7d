"""sharedfs-api command line: serve, token create, instance add/list, reconcile, db upgrade."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

from sharedfs_agent.mounters import BUILTIN as MOUNTERS

from . import __version__, db
from .auth import ROLES, Principal, list_tokens, revoke_token, store_token
from .backends import BackendConfig, Backends, parse_backend, parse_options, read_config, shorthand
from .errors import ApiError, DriverError
from .schemas import IDENT

__all__ = ["main"]

ENV_DB = "SHAREDFS_API_DB"
ENV_CONFIG = "SHAREDFS_API_CONFIG"
ENV_OPENSTACK_CONFIG = "SHAREDFS_API_OPENSTACK_CONFIG"
ADMIN = Principal("admin")  # the CLI runs as whoever can read the database: an admin


def _db_url(args) -> str:
    return args.db or os.environ.get(ENV_DB) or db.DEFAULT_URL


def _backend_configs(args) -> List[BackendConfig]:
    """--driver/--driver-opt (the shorthand), then --config's sections, then each --backend."""
    try:
        configs = shorthand(args.driver, parse_options(args.driver_opt, "--driver-opt"))
        config_file = args.config or os.environ.get(ENV_CONFIG)
        if config_file:
            configs += read_config(config_file)
        configs += [parse_backend(text) for text in args.backend]
        Backends(configs)  # names, drivers and types are checked before anything starts
    except ValueError as e:
        raise SystemExit(f"sharedfs-api: {e}") from None
    return configs


def _services(args, configured: bool = False):
    """The same services the server runs, on this database; with `configured`, with the backends
    of the command line (so access lists follow what the CLI changes)."""
    from .services import make_services
    from .view import notify

    url = _db_url(args)
    db.upgrade(url)
    engine = db.make_engine(url)
    backends = Backends(_backend_configs(args) if configured else ())
    try:
        backends.setup({"db_url": url})
    except DriverError as e:
        raise SystemExit(f"sharedfs-api: {e}") from None

    def changed() -> None:
        # PostgreSQL: servers wake at once. SQLite: a server notices at its first request once its
        # view is older than its max age (5 s), and that reload wakes its held polls; with no request
        # meanwhile, at the held polls' deadline.
        if engine.dialect.name == "postgresql":
            notify(engine)

    return make_services(db.make_sessions(engine), backends, changed)


def cmd_serve(args) -> int:
    from .app import Settings, create_app
    from .server import Limits, serve

    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"sharedfs-api: --listen {args.listen!r}: expected HOST:PORT")
    openstack_config = args.openstack_config or os.environ.get(ENV_OPENSTACK_CONFIG)
    if args.auth == "keystone" and not openstack_config:
        raise SystemExit("sharedfs-api: --auth keystone needs --openstack-config FILE ([keystone_authtoken])")
    secret = ca_pem = None
    if args.vendordata_secret_file:
        with open(args.vendordata_secret_file, encoding="utf-8") as f:
            secret = f.read().strip()
    if args.ca_file:
        with open(args.ca_file, encoding="ascii") as f:
            ca_pem = f.read()
    settings = Settings(db_url=_db_url(args), backends=_backend_configs(args), max_wait=args.max_wait,
                        agent_wheels=args.agent_wheels, auth=args.auth, openstack_config=openstack_config,
                        vendordata_secret=secret, public_url=args.public_url, ca_pem=ca_pem,
                        reconcile_every=args.reconcile_every, delete_wait=args.delete_wait, max_busy=args.max_busy,
                        max_lag=args.max_lag)  # fmt: skip
    limits = Limits(max_connections=args.max_connections, request_timeout=args.request_timeout)
    serve(create_app(settings), host.strip("[]"), int(port), limits, log_level=args.log_level,
          access_log=args.access_log)  # fmt: skip
    return 0


def cmd_nova_listener(args) -> int:
    """Nova's notifications drive the instances service until SIGTERM or SIGINT."""
    import signal
    import threading

    from .nova_listener import make_listener

    config = args.openstack_config or os.environ.get(ENV_OPENSTACK_CONFIG)
    if not (args.transport_url or config):
        raise SystemExit("sharedfs-api: nova-listener needs --transport-url or --openstack-config "
                         "([oslo_messaging_notifications] transport_url)")  # fmt: skip
    services = _services(args, configured=True)  # access lists follow: give it the server's backends
    listener = make_listener(services.instances, args.transport_url, config, pool=args.pool)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    listener.start()
    logging.getLogger(__name__).warning("listening to Nova's notifications (pool %s)", args.pool)
    stop.wait()
    listener.stop()
    listener.wait()
    listener.transport.cleanup()
    return 0


def _check_ident(kind: str, value: Optional[str]) -> None:
    if value is not None and not IDENT.fullmatch(value):
        raise SystemExit(f"sharedfs-api: {kind} {value!r} must match {IDENT.pattern}")


def _store_token(args, role: str, project: Optional[str], instance: Optional[str]) -> str:
    """Make a token, keep only its hash, return it (shown once)."""
    _check_ident("project", project)
    _check_ident("instance", instance)
    url = _db_url(args)
    db.upgrade(url)
    return store_token(db.make_sessions(db.make_engine(url)), role, project, instance,
                       getattr(args, "expires_in", None))  # fmt: skip


def cmd_token_list(args) -> int:
    """Every token's id (the start of its hash), role, project, instance, times; never a secret."""
    url = _db_url(args)
    db.upgrade(url)
    for t in list_tokens(db.make_sessions(db.make_engine(url))):
        expires = t["expires_at"].isoformat() if t["expires_at"] else "never"
        print(f"{t['id']}\t{t['role']}\t{t['project'] or '-'}\t{t['instance'] or '-'}\t"
              f"{t['created_at'].isoformat()}\texpires {expires}")  # fmt: skip
    return 0


def cmd_token_revoke(args) -> int:
    """Refused at once by every server: SQLite servers do not remember tokens, PostgreSQL ones are told."""
    from .view import notify

    url = _db_url(args)
    db.upgrade(url)
    engine = db.make_engine(url)
    try:
        found = revoke_token(db.make_sessions(engine), args.id)
    except ValueError as e:
        raise SystemExit(f"sharedfs-api: {e}") from None
    if not found:
        raise SystemExit(f"sharedfs-api: no token with id {args.id!r} (see token list)")
    if engine.dialect.name == "postgresql":
        notify(engine)
    print(f"token {args.id} revoked")
    return 0


def cmd_token_create(args) -> int:
    if args.role == "project" and not args.project:
        raise SystemExit("sharedfs-api: --role project needs --project")
    if args.role == "instance" and not (args.project and args.instance):
        raise SystemExit("sharedfs-api: --role instance needs --project and --instance")
    if args.role == "admin" and (args.project or args.instance):
        raise SystemExit("sharedfs-api: an admin token takes no --project or --instance")
    print(_store_token(args, args.role, args.project, args.instance))
    return 0


def cmd_instance_add(args) -> int:
    """As PUT os-instances/ID by an admin: the access lists of what the instance reaches follow."""
    _check_ident("project", args.project)
    _check_ident("instance", args.id)
    from .schemas import InstanceIn

    try:
        body = InstanceIn(addresses=args.address)
    except ValueError as e:
        raise SystemExit(f"sharedfs-api: {e}") from None
    services = _services(args, configured=True)
    try:
        _, instance = services.instances.put_instance(ADMIN, args.project, args.id, body)
    except ApiError as e:
        raise SystemExit(f"sharedfs-api: {e.message}") from None
    print(f"instance {args.id} in project {args.project}: {' '.join(instance['addresses']) or 'no addresses'}")
    print("note: a running server sees it within 5 s (at once on PostgreSQL)")
    return 0


def cmd_instance_list(args) -> int:
    from .schemas import escape_control

    for instance in _services(args).instances.list_all():
        # Stored values are checked on the way in; escaped on the way out all the same (rows
        # written by an older version, or by hand, must not drive the admin's terminal).
        fields = (instance["project"], instance["id"], " ".join(instance["addresses"]))
        print("\t".join(escape_control(field) for field in fields))
    return 0


def _cloud_config(args, token: Optional[str], instance: Optional[str], project: Optional[str]) -> int:
    from .cloudinit import render

    ca_pem = None
    if args.ca_file:
        with open(args.ca_file, encoding="ascii") as f:
            ca_pem = f.read()
    index_url = args.index_url or args.api_url.rstrip("/") + "/agent/simple/"
    try:
        document = render(args.api_url, index_url, args.fs_type or ["glusterfs"], token=token,
                          instance_id=instance, project=project, ca_pem=ca_pem)  # fmt: skip
    except ValueError as e:
        raise SystemExit(f"sharedfs-api: {e}") from None
    if args.output:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it may hold a token
        with os.fdopen(fd, "w") as f:
            f.write(document)
    else:
        sys.stdout.write(document)
    return 0


def cmd_user_data(args) -> int:
    """A new instance token is made for the instance and written into its user-data."""
    token = _store_token(args, "instance", args.project, args.instance)
    return _cloud_config(args, token, args.instance, args.project)


def cmd_vendor_data(args) -> int:
    return _cloud_config(args, None, None, None)


def cmd_reconcile(args) -> int:
    """What a server's worker does, once, with no server running: finish pending creates and
    deletes, then reconcile the backends against the rows."""
    services = _services(args, configured=True)
    services.worker.drain()
    report = services.worker.reconcile()
    for name in report.orphans_removed:
        print(f"removed {name}: no row")
    for name in report.missing:
        print(f"{name}: volume missing, marked error")
    print(f"access lists sent: {report.access_synced}")
    return 0


def cmd_db_upgrade(args) -> int:
    db.upgrade(_db_url(args))
    print("database schema is up to date")
    return 0


def _with_backends(p):
    """The backend options of serve and instance add (docs/api.md, "Backends")."""
    p.add_argument("--backend", action="append", default=[], metavar="NAME=DRIVER[,K=V...]",
                   help="a backend that creates filesystems, repeatable; the first is the default "
                        "(e.g. gluster=glusterfs,brick_root=/srv/bricks)")  # fmt: skip
    p.add_argument("--config", metavar="FILE",
                   help=f"INI file with a [backend NAME] section per backend (default ${ENV_CONFIG})")  # fmt: skip
    p.add_argument("--driver", default="static",
                   help="shorthand for one backend named after its driver: static (default: none), glusterfs or nfs")  # fmt: skip
    p.add_argument("--driver-opt", action="append", default=[], metavar="K=V",
                   help="option of --driver, repeatable (glusterfs: brick_root=DIR, brick_host=, export_host=, quota=; nfs: export_root=DIR, export_dir=, export_host=, dbus_address=, squash=)")  # fmt: skip
    return p


def _openstack_config_option(p):
    p.add_argument("--openstack-config", metavar="FILE",
                   help="oslo.config file: [keystone_authtoken], [oslo_policy], [oslo_messaging_notifications], "
                        f"[oslo_messaging_rabbit] (default ${ENV_OPENSTACK_CONFIG})")  # fmt: skip
    return p


def _cloud_config_options(p):
    """The options of user-data and vendor-data."""
    p.add_argument("--api-url", required=True, help="the URL instances reach this server at")
    p.add_argument(
        "--fs-type",
        action="append",
        choices=tuple(MOUNTERS),
        help="client packages to install, repeatable (default glusterfs)",
    )
    p.add_argument("--index-url", help="package index for the agent (default API-URL/agent/simple/)")
    p.add_argument("--ca-file", help="PEM CA bundle the agent trusts for the API's TLS certificate")
    p.add_argument("--output", "-o", help="write here (mode 0600) instead of standard output")
    return p


def _with_db(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--db", help=f"database URL (default ${ENV_DB} or {db.DEFAULT_URL}, in the working directory)")
    return p


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sharedfs-api", description="the os-filesystem control plane")
    parser.add_argument("--version", action="version", version=f"sharedfs-api {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _serve_parser(sub)
    _nova_listener_parser(sub)
    _token_parsers(sub)
    _instance_parsers(sub)
    _cloud_config_parsers(sub)
    reconcile = _with_backends(_with_db(sub.add_parser(
        "reconcile", help="finish pending creates and deletes, then reconcile backends with the database "
                          "(what a server does at start and every 5 minutes)")))  # fmt: skip
    reconcile.set_defaults(func=cmd_reconcile)
    dbp = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    upgrade = _with_db(dbp.add_parser("upgrade", help="migrate the schema to the newest version, keeping data"))
    upgrade.set_defaults(func=cmd_db_upgrade)
    return parser


def _serve_parser(sub) -> None:
    serve = _with_backends(_with_db(sub.add_parser("serve", help="run the API server")))
    serve.add_argument("--listen", default="127.0.0.1:8776", help="HOST:PORT (default 127.0.0.1:8776)")
    serve.add_argument("--max-wait", type=int, default=120, help="longest long-poll hold in seconds (default 120)")
    serve.add_argument("--max-connections", type=int, default=4096,
                       help="connections held at once, long-polls included; more are refused with 503 "
                            "(default 4096; the file descriptor limit is raised to fit)")  # fmt: skip
    serve.add_argument("--max-busy", type=int, default=256, metavar="N",
                       help="requests at work at once (held long-polls do not count); more are answered 503 with "
                            "Retry-After 1-4 s at once (default 256; 0: no bound)")  # fmt: skip
    serve.add_argument("--max-lag", type=float, default=0.0, metavar="S",
                       help="while the event loop runs more than S seconds late, new requests are answered 503 "
                            "with Retry-After too (default 0: off; measured, it slowed a fleet's return)")  # fmt: skip
    serve.add_argument("--request-timeout", type=float, default=10.0,
                       help="seconds for a whole request to arrive, and for an idle connection to send one (default 10)")  # fmt: skip
    serve.add_argument(
        "--agent-wheels",
        metavar="DIR",
        help="serve the sharedfs_agent-*.whl in DIR as a package index at /agent/simple/ (for cloud-init)",
    )
    serve.add_argument("--auth", choices=("tokens", "keystone"), default="tokens",
                       help="who callers are: sharedfs's own tokens (default) or Keystone tokens and oslo.policy")  # fmt: skip
    _openstack_config_option(serve)
    serve.add_argument("--vendordata-secret-file", metavar="FILE",
                       help="turns on POST /v1.1/vendordata with --auth tokens: the secret Nova sends as X-Auth-Token")  # fmt: skip
    serve.add_argument("--public-url", help="the API URL vendordata hands instances (default: the URL Nova called)")
    serve.add_argument("--ca-file", help="PEM CA bundle vendordata hands instances, for the API's TLS certificate")
    serve.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.add_argument("--reconcile-every", type=float, default=300.0, metavar="S",
                       help="seconds between reconciles of the backends with the database (default 300)")  # fmt: skip
    serve.add_argument("--delete-wait", type=float, default=600.0, metavar="S",
                       help="the longest a delete waits for its instances to unmount before the storage is "
                            "destroyed (default 600)")  # fmt: skip
    serve.set_defaults(func=cmd_serve)


def _nova_listener_parser(sub) -> None:
    nova = _openstack_config_option(_with_backends(_with_db(sub.add_parser(
        "nova-listener", help="follow Nova's instance lifecycle (versioned notifications over oslo.messaging)"))))  # fmt: skip
    nova.add_argument("--transport-url", help="e.g. rabbit://USER:PASS@HOST:5672/ (default: from --openstack-config)")
    nova.add_argument("--pool", default="sharedfs", help="listener pool, also its durable queue's name (default sharedfs)")
    nova.set_defaults(func=cmd_nova_listener)


def _token_parsers(sub) -> None:
    token = sub.add_parser("token", help="manage API tokens").add_subparsers(dest="token_command", required=True)
    create = _with_db(token.add_parser("create", help="create a token and print it (shown only once)"))
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--project")
    create.add_argument("--instance")
    create.add_argument("--expires-in", type=int, metavar="SECONDS", help="refused after this long (default: never)")
    create.set_defaults(func=cmd_token_create)
    _with_db(token.add_parser("list", help="every token's id, role, project, instance and expiry (no secrets)")
             ).set_defaults(func=cmd_token_list)  # fmt: skip
    revoke = _with_db(token.add_parser("revoke", help="revoke a token by its id (from token list)"))
    revoke.add_argument("id", help="the token's id, or enough of its start to be unique")
    revoke.set_defaults(func=cmd_token_revoke)


def _instance_parsers(sub) -> None:
    instance = sub.add_parser("instance", help="manage instances").add_subparsers(
        dest="instance_command", required=True
    )
    add = _with_backends(_with_db(instance.add_parser(
        "add", help="register an instance and its addresses (give the server's backends: access lists follow)")))  # fmt: skip
    add.add_argument("--project", required=True)
    add.add_argument("--id", required=True)
    add.add_argument("--address", action="append", default=[])
    add.set_defaults(func=cmd_instance_add)
    _with_db(instance.add_parser("list", help="list instances")).set_defaults(func=cmd_instance_list)


def _cloud_config_parsers(sub) -> None:
    userdata = _cloud_config_options(_with_db(sub.add_parser(
        "user-data", help="#cloud-config for one instance: installs, configures and starts sharedfs-agent")))  # fmt: skip
    userdata.add_argument("--instance", required=True, help="the instance id (a new instance token is made)")
    userdata.add_argument("--project", required=True)
    userdata.set_defaults(func=cmd_user_data)
    vendordata = _cloud_config_options(sub.add_parser(
        "vendor-data", help="#cloud-config for every instance; each gets its token from instance metadata "
                            "sharedfs_token and finds its id and project itself"))  # fmt: skip
    vendordata.set_defaults(func=cmd_vendor_data)


def main(argv: Optional[List[str]] = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
