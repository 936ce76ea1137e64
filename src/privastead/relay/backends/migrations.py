"""Versioned schema migrations of the relay's index, for SQLite and PostgreSQL alike.

A migration is a numbered step with one script per dialect. Versions are dense (1, 2, 3 ...);
a shipped migration is never edited, a change is a new one. Each step runs in its own
transaction with its version record, so a crash leaves the database at a version, never
between two.

- SQLite records its version in ``PRAGMA user_version`` (the relay has always done so: a data
  directory of a relay from before this module is at version 1 or 2, the same steps).
- PostgreSQL records each step in ``schema_migrations`` (version, name, online, applied_at).
  Several relay processes may start at once: a session advisory lock makes one of them apply
  the pending steps while the others wait and then find nothing to do.

``online`` marks a step that relays of the previous version tolerate (it only adds tables,
columns with defaults, or indexes). At start a relay applies pending online steps itself
(``plan_at_start``); any other step needs every relay stopped and ``privastead-server migrate``
run by the operator. A relay refuses to start on a database that a newer relay migrated with
a step it does not know, unless that step was online. There are no down-migrations: a backup
taken before ``migrate`` is the way back.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from privastead.errors import StorageError
from privastead.relay.backends import schema_pg, schema_sqlite

if TYPE_CHECKING:
    from privastead.relay.backends.pg import Connection

Dialect = Literal["sqlite", "postgresql"]
# pg_advisory_lock key of migrations: "privmigr" in ASCII, any constant unique to us.
ADVISORY_LOCK_KEY = 0x707269766D696772


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sqlite: str = field(repr=False)
    postgresql: str = field(repr=False)
    online: bool = False  # safe to apply while relays of the previous version keep running


# Step 2 changes what an upload is charged (the per-message overhead): a relay of version 1
# would keep charging bare sizes beside it, so it is not online.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", sqlite=schema_sqlite.V1, postgresql=schema_pg.V1, online=True),
    Migration(
        2,
        "revoked token tombstones, per-message quota overhead",
        sqlite=schema_sqlite.V2,
        postgresql=schema_pg.V2,
        online=False,
    ),
    Migration(
        3,
        "nameplates of short-code pairing",
        sqlite=schema_sqlite.V3,
        postgresql=schema_pg.V3,
        online=True,
    ),
    Migration(
        4,
        "budget leases shared by relay processes",
        sqlite=schema_sqlite.V4,
        postgresql=schema_pg.V4,
        online=True,
    ),
)
LATEST = MIGRATIONS[-1].version


@dataclass(frozen=True)
class Status:
    dialect: Dialect
    current: int  # highest applied version (0: empty database)
    pending: tuple[Migration, ...]  # known steps not applied yet, in order
    unknown: tuple[tuple[int, bool], ...] = ()  # (version, online) applied by a newer relay

    @property
    def latest(self) -> int:
        return LATEST

    def describe(self) -> str:
        if self.unknown:
            newest = max(v for v, _ in self.unknown)
            return f"{self.dialect}: at version {newest}, newer than this relay knows ({LATEST})"
        if not self.pending:
            return f"{self.dialect}: at version {self.current}, up to date"
        steps = ", ".join(f"{m.version} ({m.name})" for m in self.pending)
        return f"{self.dialect}: at version {self.current}; pending: {steps}"


def _check_table(migrations: tuple[Migration, ...]) -> None:
    if [m.version for m in migrations] != list(range(1, len(migrations) + 1)):
        raise AssertionError("migration versions must be 1, 2, 3 ... in order")


_check_table(MIGRATIONS)


def _pending(current: int, target: int | None) -> tuple[Migration, ...]:
    target = LATEST if target is None else target
    if not 0 <= target <= LATEST:
        raise StorageError(f"no migration {target}: this relay knows versions 1 to {LATEST}")
    if target < current:
        raise StorageError(
            f"the database is at version {current}: migrations never go back (restore a backup)"
        )
    return tuple(m for m in MIGRATIONS if current < m.version <= target)


def plan_at_start(status: Status) -> tuple[Migration, ...]:
    """What a starting relay may apply by itself; raises when an operator must act first."""
    offline_unknown = [v for v, online in status.unknown if not online]
    if offline_unknown:
        raise StorageError(
            f"the {status.dialect} database has schema version {max(offline_unknown)}, which "
            f"this relay (version {LATEST}) cannot use: upgrade this relay"
        )
    # An empty database has no relay of an older version using it: everything may be applied.
    blocking = [m for m in status.pending if not m.online]
    if blocking and status.dialect == "postgresql" and status.current > 0:
        raise StorageError(
            f"schema migration {blocking[0].version} ({blocking[0].name}) needs every relay "
            "stopped: stop them, run `privastead-server migrate`, start the upgraded relays"
        )
    return status.pending


# ---- SQLite ----------------------------------------------------------------------------


def sqlite_status(conn: sqlite3.Connection) -> Status:
    current = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if current > LATEST:
        return Status("sqlite", current, (), ((current, False),))
    return Status("sqlite", current, _pending(current, None))


def migrate_sqlite(conn: sqlite3.Connection, target: int | None = None) -> list[Migration]:
    """Apply pending steps up to ``target`` (default: all); returns those applied."""
    status = sqlite_status(conn)
    if status.unknown:
        raise StorageError(status.describe() + ": upgrade this relay")
    applied = []
    for step in _pending(status.current, target):
        # executescript commits any open transaction first, then runs the whole script; the
        # version is written inside the same transaction as the step.
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{step.sqlite}\nPRAGMA user_version = {step.version};\nCOMMIT;"
            )
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StorageError(f"sqlite migration {step.version} failed: {exc}") from exc
        applied.append(step)
    return applied


# ---- PostgreSQL ------------------------------------------------------------------------

_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    online      boolean NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)"""


async def _applied(conn: Connection) -> list[tuple[int, bool]]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return []
    rows = await conn.fetch("SELECT version, online FROM schema_migrations ORDER BY version")
    return [(int(r["version"]), bool(r["online"])) for r in rows]


def _status_of(applied: list[tuple[int, bool]]) -> Status:
    known = {m.version for m in MIGRATIONS}
    unknown = tuple((v, online) for v, online in applied if v not in known)
    current = max((v for v, _ in applied), default=0)
    if unknown:
        return Status("postgresql", current, (), unknown)
    return Status("postgresql", current, _pending(current, None))


async def pg_status(conn: Connection) -> Status:
    return _status_of(await _applied(conn))


async def migrate_postgresql(
    conn: Connection, target: int | None = None, *, at_start: bool = False
) -> list[Migration]:
    """Apply pending steps (all, or up to ``target``) under the migration lock.

    ``at_start``: a relay starting up; applies only what ``plan_at_start`` allows.
    """
    await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
    try:
        status = _status_of(await _applied(conn))
        if at_start:
            steps = plan_at_start(status)
        elif status.unknown:
            raise StorageError(status.describe() + ": upgrade this relay")
        else:
            steps = _pending(status.current, target)
        for step in steps:
            async with conn.transaction():
                await conn.execute(_TABLE)
                await conn.execute(step.postgresql)
                await conn.execute(
                    "INSERT INTO schema_migrations(version, name, online) VALUES ($1, $2, $3)",
                    step.version,
                    step.name,
                    step.online,
                )
        return list(steps)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)


__all__ = [
    "LATEST",
    "MIGRATIONS",
    "Migration",
    "Status",
    "migrate_postgresql",
    "migrate_sqlite",
    "pg_status",
    "plan_at_start",
    "sqlite_status",
]
