"""
``csvc-manage``: operator commands against the store.
"""

import argparse
import os
import sys

from csvc import config
from csvc.store import instances, tokens
from csvc.store.db import Store, make_engine, upgrade


def _parser():
    parser = argparse.ArgumentParser(prog="csvc-manage", description="Manage a csvc deployment.")
    parser.add_argument("--config", "-c", help="config file (TOML), as for twistd csvc")
    parser.add_argument("--data-dir", dest="data-dir", help="data directory [./var]")
    parser.add_argument("--database", help="database URL [SQLite in the data dir]")
    commands = parser.add_subparsers(dest="area", required=True)

    db = commands.add_parser("db", help="the database schema")
    db_commands = db.add_subparsers(dest="action", required=True)
    db_commands.add_parser("upgrade", help="apply every migration not yet applied")

    token = commands.add_parser("token", help="standalone authentication tokens")
    token_commands = token.add_subparsers(dest="action", required=True)
    create = token_commands.add_parser("create", help="create a token; it is printed on the last line")
    create.add_argument("--project", required=True, help="the project the token acts in")
    create.add_argument("--user", default=None, help="the user it names [the project]")
    create.add_argument("--admin", action="store_true", help="give the token the admin role")

    instance = commands.add_parser("instance", help="instances and their agents' enrollment")
    instance_commands = instance.add_subparsers(dest="action", required=True)
    instance_commands.add_parser("list", help="name, uuid, provider, status, last seen")
    register = instance_commands.add_parser(
        "register", help="enroll an operator's host; its enrollment token is printed on the last line"
    )
    register.add_argument("name", help="the instance's name")
    register.add_argument("--capacity", type=int, default=10, help="containers it may run [10]")
    revoke = instance_commands.add_parser(
        "revoke", help="stop an instance's enrollment token working (a connected agent is dropped)"
    )
    revoke.add_argument("instance", metavar="NAME_OR_UUID")

    tls = commands.add_parser("tls", help="certificates for the agent port")
    tls_commands = tls.add_subparsers(dest="action", required=True)
    tls_init = tls_commands.add_parser(
        "init", help="a CA (unless DIR has one), the control plane's certificate, the local agents' one"
    )
    tls_init.add_argument("--dir", required=True, help="the TLS directory")
    tls_init.add_argument(
        "--host", action="append", default=[], help="another name or address agents dial (repeatable)"
    )
    tls_agent = tls_commands.add_parser("agent", help="a client certificate for an agent")
    tls_agent.add_argument("--dir", required=True, help="the TLS directory (with its CA)")
    tls_agent.add_argument("name", help="the agent's name (agent-NAME.crt, agent-NAME.key)")
    return parser


def _tls(args):
    from csvc.agents import tls as agenttls

    try:
        if args.action == "init":
            written = agenttls.init(args.dir, args.host)
        else:
            written = agenttls.issue_agent(args.dir, args.name)
    except agenttls.TLSDirectoryError as exc:
        print(f"csvc-manage: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


def _instance(args, store):
    if args.action == "list":
        rows = store.run_sync(instances.thd_list, None)
        print(f"{'NAME':<20} {'UUID':<36} {'PROVIDER':<9} {'STATUS':<8} LAST SEEN")
        for row in rows:
            seen = row["last_seen_at"].isoformat(timespec="seconds") + "Z" if row["last_seen_at"] else "never"
            print(f"{row['name']:<20} {row['uuid']:<36} {row['provider']:<9} {row['status']:<8} {seen}")
        return 0
    if args.action == "register":
        if args.capacity < 1:
            print("csvc-manage: --capacity must be at least 1", file=sys.stderr)
            return 2
        try:
            row, token = store.run_sync(instances.thd_register, args.name, args.capacity, store.now())
        except ValueError as exc:
            print(f"csvc-manage: {exc}", file=sys.stderr)
            return 1
        print(f"instance {row['name']} ({row['uuid']}); its agent's enrollment token:", file=sys.stderr)
        print(token)
        return 0
    row = store.run_sync(instances.thd_revoke, args.instance)
    if row is None:
        print(f"csvc-manage: no instance {args.instance!r}", file=sys.stderr)
        return 1
    print(f"instance {row['name']} ({row['uuid']}) revoked: its enrollment token no longer works")
    return 0


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.area == "tls":
        return _tls(args)
    try:
        settings = config.resolve(
            {"data-dir": getattr(args, "data-dir"), "database": args.database}, args.config
        )
    except config.ConfigError as exc:
        print(f"csvc-manage: {exc}", file=sys.stderr)
        return 2
    os.makedirs(settings["data-dir"], exist_ok=True)
    engine = make_engine(settings["database"])
    upgrade(engine)
    if args.area == "db":
        print("database schema is up to date")
        return 0
    from twisted.internet import reactor

    store = Store(engine, clock=reactor)
    if args.area == "instance":
        return _instance(args, store)
    if args.area == "token":
        token = store.run_sync(
            tokens.thd_create, args.project, args.user or args.project, args.admin, store.now()
        )
        print(f"token for project {args.project}{' (admin)' if args.admin else ''}:", file=sys.stderr)
        print(token)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
