"""The relay's SQLite schema (the index; blob bodies live in files): opening a database.

The tables are created and upgraded by versioned migration steps (``backends.schema_sqlite``
holds them, ``backends.migrations`` runs them, the same numbering as PostgreSQL's).

``used_bytes`` per account is kept by triggers from each message's ``charged`` bytes (its
size plus ``store.MESSAGE_OVERHEAD``), so quota checks need no scan. ``receipts``
remember (mailbox, message id) -> seq after the message itself is gone, so that an upload
retried after delivery is still recognised as a duplicate and never stored twice.
``revoked_tokens`` keep the hash of revoked tokens' secrets, so that the relay tells
"revoked" (401 device_removed) from "unknown" (401 unauthorized, throttled).
"""

from __future__ import annotations

import sqlite3

from privastead.relay.backends import migrations

SCHEMA_VERSION = migrations.LATEST


def init(conn: sqlite3.Connection) -> None:
    """Create, upgrade or check the schema (idempotent).

    A single SQLite relay owns its database, so every pending step is applied at start
    (``plan_at_start``); a database written by a newer relay is refused with StorageError.
    """
    migrations.plan_at_start(migrations.sqlite_status(conn))
    migrations.migrate_sqlite(conn)


__all__ = ["SCHEMA_VERSION", "init"]
