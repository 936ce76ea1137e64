"""`privastead-server accounts` on the PostgreSQL backend (``[storage] backend = "postgresql"``).

The same actions and output as on SQLite, each one transaction; a removed account's objects
are deleted from the S3 store after the commit (a failure leaves them to the relays' sweep).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from privastead.errors import RelayRejectedError
from privastead.relay.api import ACCOUNT_NAME, IssuedToken
from privastead.relay.backends import pg
from privastead.relay.backends.pg_tokens import issue
from privastead.relay.config import RelayConfig


async def run(args: argparse.Namespace, config: RelayConfig) -> IssuedToken | list[Any] | None:
    """``add``: the owner token; ``list``: the rows; ``remove``: None."""
    settings = config.storage.postgresql
    assert settings is not None
    db = pg.PgDatabase(settings)
    await db.open()  # applies online steps, refuses a database that needs `migrate`
    try:
        if args.action == "add":
            return await db.transaction(lambda conn: _add(conn, args.name, args.quota_bytes))
        if args.action == "list":
            return await db.read(_list)
        blobs = await db.transaction(lambda conn: _remove(conn, args.name))
    finally:
        await db.close()
    await _delete_objects(config, blobs)
    return None


async def _add(conn: pg.Connection, name: str, quota: int | None) -> IssuedToken:
    if not ACCOUNT_NAME.match(name):
        raise RelayRejectedError(
            "account names are 1-63 chars of a-z 0-9 _ . -", 400, "bad_account_name"
        )
    added = await conn.execute(
        "INSERT INTO accounts(name, created_at, quota_bytes) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING",
        name,
        time.time(),
        quota,
    )
    if added.endswith(" 0"):
        raise RelayRejectedError(f"account {name!r} exists", 409, "account_exists")
    return await issue(conn, account=name, kind="owner", now=time.time(), label="cli")


async def _list(conn: pg.Connection) -> list[Any]:
    rows = await conn.fetch(
        "SELECT a.name, a.created_at, a.quota_bytes, a.used_bytes,"
        " (SELECT COUNT(*) FROM mailboxes m WHERE m.account = a.name) AS mailboxes,"
        " (SELECT COUNT(*) FROM devices d WHERE d.account = a.name) AS devices"
        " FROM accounts a ORDER BY a.name"
    )
    return [dict(r) for r in rows]


async def _remove(conn: pg.Connection, name: str) -> list[str]:
    if await conn.fetchval("SELECT 1 FROM accounts WHERE name = $1", name) is None:
        raise RelayRejectedError(f"no account {name!r}", 404, "account_not_found")
    rows = await conn.fetch(
        "SELECT blob FROM messages WHERE account = $1 AND blob IS NOT NULL", name
    )
    await conn.execute("DELETE FROM accounts WHERE name = $1", name)
    return [r["blob"] for r in rows]


async def _delete_objects(config: RelayConfig, names: list[str]) -> None:
    if not names or config.storage.s3 is None:
        return
    from privastead.relay.backends.s3 import S3BlobStore

    store = S3BlobStore(config.storage.s3)
    await store.open()
    try:
        await store.delete(names)
    finally:
        await store.close()


__all__ = ["run"]
