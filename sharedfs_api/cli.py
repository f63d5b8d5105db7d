"""sharedfs-api command line: serve, token create, instance add/list, db upgrade."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Dict, List, Optional

from . import __version__, db
from .auth import ROLES, hash_token, new_token
from .schemas import IDENT

__all__ = ["main"]

ENV_DB = "SHAREDFS_API_DB"


def _db_url(args) -> str:
    return args.db or os.environ.get(ENV_DB) or db.DEFAULT_URL


def _options(pairs: List[str]) -> Dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"sharedfs-api: --driver-opt {pair!r}: expected KEY=VALUE")
        options[key] = value
    return options


def cmd_serve(args) -> int:
    import uvicorn

    from .app import Settings, create_app

    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"sharedfs-api: --listen {args.listen!r}: expected HOST:PORT")
    settings = Settings(db_url=_db_url(args), driver=args.driver, driver_options=_options(args.driver_opt),
                        max_wait=args.max_wait, agent_wheels=args.agent_wheels)  # fmt: skip
    uvicorn.run(create_app(settings), host=host.strip("[]"), port=int(port), log_level=args.log_level,
                access_log=args.access_log, timeout_keep_alive=settings.max_wait + 30, backlog=8192)  # fmt: skip
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
    token = new_token()
    with db.make_sessions(db.make_engine(url))() as session:
        session.add(db.Token(sha256=hash_token(token), role=role, project=project, instance_id=instance))
        session.commit()
    return token


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
    _check_ident("project", args.project)
    _check_ident("instance", args.id)
    from .schemas import InstanceIn

    try:
        addresses = InstanceIn(addresses=args.address).addresses
    except ValueError as e:
        raise SystemExit(f"sharedfs-api: {e}") from None
    url = _db_url(args)
    db.upgrade(url)
    with db.make_sessions(db.make_engine(url))() as session:
        instance = session.get(db.Instance, args.id)
        if instance is not None and instance.project != args.project:
            raise SystemExit(f"sharedfs-api: instance {args.id} is registered in project {instance.project}")
        if instance is None:
            session.add(db.Instance(id=args.id, project=args.project, addresses_json=json.dumps(addresses)))
        else:
            instance.addresses_json = json.dumps(addresses)
        session.commit()
    print(f"instance {args.id} in project {args.project}: {' '.join(addresses) or 'no addresses'}")
    print("note: a running server sees it within 5 s; drivers' access lists follow on the next change")
    return 0


def cmd_instance_list(args) -> int:
    url = _db_url(args)
    db.upgrade(url)
    with db.make_sessions(db.make_engine(url))() as session:
        for instance in session.query(db.Instance).order_by(db.Instance.project, db.Instance.id):
            print(f"{instance.project}\t{instance.id}\t{' '.join(instance.addresses)}")
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


def cmd_db_upgrade(args) -> int:
    db.upgrade(_db_url(args))
    print("database schema is up to date")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sharedfs-api", description="the os-filesystem control plane")
    parser.add_argument("--version", action="version", version=f"sharedfs-api {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def with_db(p):
        p.add_argument("--db", help=f"database URL (default ${ENV_DB} or {db.DEFAULT_URL}, in the working directory)")
        return p

    serve = with_db(sub.add_parser("serve", help="run the API server"))
    serve.add_argument("--listen", default="127.0.0.1:8776", help="HOST:PORT (default 127.0.0.1:8776)")
    serve.add_argument("--driver", default="static", help="driver for new filesystems: static (default) or glusterfs")
    serve.add_argument("--driver-opt", action="append", default=[], metavar="K=V",
                       help="driver option, repeatable (glusterfs: brick_root=DIR, brick_host=, export_host=, quota=)")  # fmt: skip
    serve.add_argument("--max-wait", type=int, default=120, help="longest long-poll hold in seconds (default 120)")
    serve.add_argument(
        "--agent-wheels",
        metavar="DIR",
        help="serve the sharedfs_agent-*.whl in DIR as a package index at /agent/simple/ (for cloud-init)",
    )
    serve.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(func=cmd_serve)

    token = sub.add_parser("token", help="manage API tokens").add_subparsers(dest="token_command", required=True)
    create = with_db(token.add_parser("create", help="create a token and print it (shown only once)"))
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--project")
    create.add_argument("--instance")
    create.set_defaults(func=cmd_token_create)

    instance = sub.add_parser("instance", help="manage instances").add_subparsers(
        dest="instance_command", required=True
    )
    add = with_db(instance.add_parser("add", help="register an instance and its addresses"))
    add.add_argument("--project", required=True)
    add.add_argument("--id", required=True)
    add.add_argument("--address", action="append", default=[])
    add.set_defaults(func=cmd_instance_add)
    listing = with_db(instance.add_parser("list", help="list instances"))
    listing.set_defaults(func=cmd_instance_list)

    def cloud_config_options(p):
        p.add_argument("--api-url", required=True, help="the URL instances reach this server at")
        p.add_argument(
            "--fs-type",
            action="append",
            choices=("glusterfs", "nfs", "cephfs", "lustre"),
            help="client packages to install, repeatable (default glusterfs)",
        )
        p.add_argument("--index-url", help="package index for the agent (default API-URL/agent/simple/)")
        p.add_argument("--ca-file", help="PEM CA bundle the agent trusts for the API's TLS certificate")
        p.add_argument("--output", "-o", help="write here (mode 0600) instead of standard output")
        return p

    userdata = cloud_config_options(
        with_db(
            sub.add_parser(
                "user-data", help="#cloud-config for one instance: installs, configures and starts sharedfs-agent"
            )
        )
    )
    userdata.add_argument("--instance", required=True, help="the instance id (a new instance token is made)")
    userdata.add_argument("--project", required=True)
    userdata.set_defaults(func=cmd_user_data)
    vendordata = cloud_config_options(sub.add_parser(
        "vendor-data", help="#cloud-config for every instance; each gets its token from instance metadata "
                            "sharedfs_token and finds its id and project itself"))  # fmt: skip
    vendordata.set_defaults(func=cmd_vendor_data)

    dbp = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    upgrade = with_db(dbp.add_parser("upgrade", help="migrate the schema to the newest version, keeping data"))
    upgrade.set_defaults(func=cmd_db_upgrade)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
