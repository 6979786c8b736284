"""
``csvc-manage``: operator commands against the store.
"""

import argparse
import os
import sys

from csvc import config
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
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
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
    if args.area == "token":
        from twisted.internet import reactor

        store = Store(engine, clock=reactor)
        token = store.run_sync(
            store._thd_create_token, args.project, args.user or args.project, args.admin
        )
        print(f"token for project {args.project}{' (admin)' if args.admin else ''}:", file=sys.stderr)
        print(token)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
