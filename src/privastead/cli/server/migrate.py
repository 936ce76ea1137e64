"""`privastead-server migrate`: bring the relay's database schema to this version, or show it.

SQLite (the default: the data directory's relay.sqlite3) or PostgreSQL (``--postgresql``).
A relay applies the steps that are safe while other relays run by itself at start; this
command is for the others, run with every relay stopped, after a backup.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

from privastead.cli.server.common import add_location, load_config
from privastead.errors import ConfigError

if TYPE_CHECKING:
    from privastead.relay.backends.migrations import Migration, Status


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_location(parser)
    parser.add_argument(
        "--postgresql",
        metavar="DSN",
        help="migrate this PostgreSQL database instead of the data directory's SQLite file "
        "(postgresql://USER@HOST:PORT/DB, no password in it)",
    )
    parser.add_argument(
        "--password-file",
        type=Path,
        metavar="FILE",
        help="file holding the PostgreSQL password (or set PRIVASTEAD_RELAY_PG_PASSWORD)",
    )
    parser.add_argument(
        "--status", action="store_true", help="only show the version and pending steps"
    )
    parser.add_argument("--to", type=int, metavar="N", help="stop at version N (default: newest)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.epilog = (
        "Take a backup first: migrations never go back. Stop every relay before applying a "
        "step that is not marked online."
    )


def run(args: argparse.Namespace) -> int:
    from privastead.relay.backends import migrations

    if args.postgresql:
        status, applied = asyncio.run(_postgresql(args))
    else:
        if args.password_file:
            raise ConfigError("--password-file goes with --postgresql")
        status, applied = _sqlite(args)
    if args.json:
        print(
            json.dumps(
                {
                    "dialect": status.dialect,
                    "version": status.current,
                    "latest": migrations.LATEST,
                    "applied": [m.version for m in applied],
                    "pending": [m.version for m in status.pending],
                }
            )
        )
        return 0
    for step in applied:
        print(f"applied migration {step.version}: {step.name}")
    print(status.describe())
    return 0


def _sqlite(args: argparse.Namespace) -> tuple[Status, list[Migration]]:
    from privastead.relay import db
    from privastead.relay.backends import migrations

    config = load_config(args)
    path = config.data_dir / "relay.sqlite3"
    if args.status and not path.exists():
        raise ConfigError(f"{path}: no relay database here (check --data-dir)")
    config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    conn = db.connect(path, config.durability)
    try:
        applied = [] if args.status else migrations.migrate_sqlite(conn, args.to)
        return migrations.sqlite_status(conn), applied
    finally:
        conn.close()


async def _postgresql(args: argparse.Namespace) -> tuple[Status, list[Migration]]:
    try:
        from privastead.relay.backends import migrations, pg
        from privastead.relay.backends.settings import PostgresSettings
    except ImportError as exc:
        raise ConfigError(
            f"PostgreSQL support is not installed ({exc.name}): pip install 'privastead[cluster]'"
        ) from None
    try:
        settings = PostgresSettings(dsn=args.postgresql, password_file=args.password_file)
    except ValueError as exc:
        raise ConfigError(f"--postgresql: {exc}") from None

    async def work(conn: pg.Connection) -> tuple[Status, list[Migration]]:
        applied = [] if args.status else await migrations.migrate_postgresql(conn, args.to)
        return await migrations.pg_status(conn), list(applied)

    return await pg.with_connection(settings, work)
