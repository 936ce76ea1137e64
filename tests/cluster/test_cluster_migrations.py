"""Schema migrations on real SQLite files and a real PostgreSQL server, and the CLI."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from privastead.errors import StorageError
from privastead.relay import schema
from privastead.relay.backends import migrations, pg
from privastead.relay.backends.settings import PostgresSettings
from privastead.relay.store import MESSAGE_OVERHEAD

SRC = Path(__file__).resolve().parents[2] / "src"
BROKEN = migrations.Migration(
    migrations.LATEST + 1,
    "broken on purpose",
    sqlite="CREATE TABLE half_done (x INTEGER); SELECT no_such_function();",
    postgresql="CREATE TABLE half_done (x integer); SELECT no_such_function();",
    online=True,
)


def columns_sqlite(conn: sqlite3.Connection) -> dict[str, set[str]]:
    tables = [  # not SQLite's own bookkeeping (sqlite_sequence of AUTOINCREMENT)
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
    ]
    return {t: {r[1] for r in conn.execute(f"PRAGMA table_info({t})")} for t in tables}


async def columns_pg(conn: pg.Connection) -> dict[str, set[str]]:
    rows = await conn.fetch(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name <> 'schema_migrations'"
    )
    out: dict[str, set[str]] = {}
    for r in rows:
        out.setdefault(r["table_name"], set()).add(r["column_name"])
    return out


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ) | (env or {})
    full["PYTHONPATH"] = str(SRC)
    return subprocess.run(
        [sys.executable, "-m", "privastead.cli.server", "migrate", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=120,
        check=False,
    )


# ---- SQLite ----------------------------------------------------------------------------


def test_sqlite_fresh_database_migrates_to_latest(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "relay.sqlite3", isolation_level=None)
    assert migrations.sqlite_status(conn).current == 0
    applied = migrations.migrate_sqlite(conn)
    assert [m.version for m in applied] == list(range(1, migrations.LATEST + 1))
    status = migrations.sqlite_status(conn)
    assert status.current == migrations.LATEST and not status.pending
    assert migrations.migrate_sqlite(conn) == []  # idempotent
    assert {"accounts", "messages", "receipts"} <= set(columns_sqlite(conn))


def test_sqlite_database_of_the_relay_is_at_the_latest_version(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "relay.sqlite3", isolation_level=None)
    schema.init(conn)  # what the relay does at start
    assert migrations.sqlite_status(conn).current == migrations.LATEST == schema.SCHEMA_VERSION
    assert migrations.migrate_sqlite(conn) == []


def test_sqlite_version_1_database_is_upgraded_keeping_its_data(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "relay.sqlite3", isolation_level=None)
    # What the first relay left: version 1, no tombstones, quotas charged by size alone.
    migrations.migrate_sqlite(conn, target=1)
    conn.execute("INSERT INTO accounts(name, created_at) VALUES ('home', 1.0)")
    conn.execute("INSERT INTO mailboxes(id, account, created_at) VALUES ('m', 'home', 0)")
    conn.execute(
        "INSERT INTO messages(mailbox, seq, account, size, body, created_at, expires_at)"
        " VALUES ('m', 1, 'home', 10, x'00', 0, 9e9)"
    )
    assert "revoked_tokens" not in columns_sqlite(conn)
    schema.init(conn)  # what the upgraded relay does at start
    assert migrations.sqlite_status(conn).current == migrations.LATEST
    assert "revoked_tokens" in columns_sqlite(conn)
    assert conn.execute("SELECT name, used_bytes FROM accounts").fetchall() == [
        ("home", 10 + MESSAGE_OVERHEAD)
    ]


def test_sqlite_failed_step_leaves_the_previous_version_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = sqlite3.connect(tmp_path / "relay.sqlite3", isolation_level=None)
    migrations.migrate_sqlite(conn)
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, BROKEN))
    monkeypatch.setattr(migrations, "LATEST", BROKEN.version)
    with pytest.raises(StorageError, match=f"sqlite migration {BROKEN.version} failed"):
        migrations.migrate_sqlite(conn)
    assert migrations.sqlite_status(conn).current == BROKEN.version - 1
    assert "half_done" not in columns_sqlite(conn)  # the step's first statement rolled back


def test_sqlite_database_of_a_newer_relay_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "relay.sqlite3", isolation_level=None)
    conn.execute(f"PRAGMA user_version = {migrations.LATEST + 5}")
    with pytest.raises(StorageError, match="newer than this relay knows"):
        migrations.migrate_sqlite(conn)
    with pytest.raises(StorageError, match="upgrade this relay"):
        migrations.plan_at_start(migrations.sqlite_status(conn))


def test_migrations_never_go_back(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "relay.sqlite3", isolation_level=None)
    migrations.migrate_sqlite(conn)
    with pytest.raises(StorageError, match="never go back"):
        migrations.migrate_sqlite(conn, target=0)
    with pytest.raises(StorageError, match="no migration"):
        migrations.migrate_sqlite(conn, target=migrations.LATEST + 1)


# ---- PostgreSQL ------------------------------------------------------------------------


async def test_postgresql_schema_mirrors_sqlite(
    pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    lite = sqlite3.connect(tmp_path / "relay.sqlite3", isolation_level=None)
    migrations.migrate_sqlite(lite)

    async def work(conn: pg.Connection) -> dict[str, set[str]]:
        await migrations.migrate_postgresql(conn)
        return await columns_pg(conn)

    pg_columns = await pg.with_connection(pg_settings, work)
    sqlite_columns = columns_sqlite(lite)
    # The throttle's failures shared by relay processes; one SQLite relay keeps them in memory.
    assert pg_columns.pop("auth_failures") == {"key", "failures", "last", "locked_until"}
    # Budget slots counted by relay processes together; one SQLite relay counts in memory.
    assert pg_columns.pop("budget_leases") == {
        "lease",
        "account",
        "resource",
        "instance",
        "expires_at",
    }
    assert set(pg_columns) == set(sqlite_columns)
    # PostgreSQL has an explicit insertion-order column where SQLite has its implicit rowid.
    assert pg_columns.pop("messages") == sqlite_columns.pop("messages") | {"id"}
    assert pg_columns == sqlite_columns


async def test_postgresql_version_1_is_upgraded_charging_the_overhead(
    pg_settings: PostgresSettings,
) -> None:
    conn = await pg.connect(pg_settings)
    try:
        await migrations.migrate_postgresql(conn, target=1)
        await conn.execute("INSERT INTO accounts(name, created_at) VALUES ('home', 0)")
        await conn.execute("INSERT INTO mailboxes(id, account, created_at) VALUES ('m', 'home', 0)")
        await conn.execute(
            "INSERT INTO messages(mailbox, seq, account, size, body, created_at, expires_at)"
            " VALUES ('m', 1, 'home', 10, '\\x00', 0, 9e9), ('m', 2, 'home', 20, '\\x00', 0, 9e9)"
        )
        # Step 2 changes what uploads are charged: relays of version 1 may be running on a
        # database that has data, so a starting relay leaves it to the operator.
        with pytest.raises(StorageError, match="privastead-server migrate"):
            await migrations.migrate_postgresql(conn, at_start=True)
        await migrations.migrate_postgresql(conn)
        assert await conn.fetchval("SELECT used_bytes FROM accounts") == 30 + 2 * MESSAGE_OVERHEAD
        await conn.execute("DELETE FROM messages WHERE seq = 1")
        assert await conn.fetchval("SELECT used_bytes FROM accounts") == 20 + MESSAGE_OVERHEAD
    finally:
        await conn.close()


async def test_postgresql_concurrent_starts_apply_each_step_once(
    pg_settings: PostgresSettings,
) -> None:
    conns = [await pg.connect(pg_settings) for _ in range(5)]
    try:
        results = await asyncio.gather(
            *(migrations.migrate_postgresql(c, at_start=True) for c in conns)
        )
        applied = sorted(len(r) for r in results)
        assert applied == [0, 0, 0, 0, migrations.LATEST]
        rows = await conns[0].fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == list(range(1, migrations.LATEST + 1))
    finally:
        for c in conns:
            await c.close()


async def test_postgresql_failed_step_is_rolled_back(
    pg_settings: PostgresSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = await pg.connect(pg_settings)
    try:
        await migrations.migrate_postgresql(conn)
        monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, BROKEN))
        monkeypatch.setattr(migrations, "LATEST", BROKEN.version)
        with pytest.raises(asyncpg.UndefinedFunctionError):
            await migrations.migrate_postgresql(conn)
        assert (await migrations.pg_status(conn)).current == BROKEN.version - 1
        assert await conn.fetchval("SELECT to_regclass('half_done')") is None
        # The lock was released: another session can migrate (and fails the same way).
        other = await pg.connect(pg_settings)
        try:
            locked = await other.fetchval(
                "SELECT pg_try_advisory_lock($1)", migrations.ADVISORY_LOCK_KEY
            )
            assert locked
        finally:
            await other.close()
    finally:
        await conn.close()


async def test_postgresql_start_up_policy(
    pg_settings: PostgresSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = await pg.connect(pg_settings)
    try:
        await migrations.migrate_postgresql(conn)
        # A step a newer relay applied online: older relays keep running.
        await conn.execute(
            "INSERT INTO schema_migrations(version, name, online) VALUES (99, 'future', true)"
        )
        status = await migrations.pg_status(conn)
        assert status.unknown == ((99, True),)
        assert migrations.plan_at_start(status) == ()
        # One that was not online: this relay must not touch the database.
        await conn.execute("UPDATE schema_migrations SET online = false WHERE version = 99")
        with pytest.raises(StorageError, match=r"schema version 99.*upgrade this relay"):
            await migrations.migrate_postgresql(conn, at_start=True)
        await conn.execute("DELETE FROM schema_migrations WHERE version = 99")
        # A pending step of ours that is not online: the operator runs `migrate`.
        offline = dataclasses.replace(BROKEN, name="offline step", online=False)
        monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, offline))
        monkeypatch.setattr(migrations, "LATEST", offline.version)
        with pytest.raises(StorageError, match="privastead-server migrate"):
            await migrations.migrate_postgresql(conn, at_start=True)
        assert (await migrations.pg_status(conn)).current == offline.version - 1
    finally:
        await conn.close()


# ---- CLI -------------------------------------------------------------------------------


def test_cli_migrates_sqlite_and_reports(tmp_path: Path) -> None:
    data = tmp_path / "data"
    out = cli("--data-dir", str(data), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["dialect"] == "sqlite"
    assert result["version"] == migrations.LATEST and result["pending"] == []
    assert result["applied"] == list(range(1, migrations.LATEST + 1))
    assert (data.stat().st_mode & 0o777) == 0o700
    again = cli("--data-dir", str(data))
    assert again.returncode == 0 and "up to date" in again.stdout


def test_cli_status_of_a_missing_database_says_where_it_looked(tmp_path: Path) -> None:
    out = cli("--data-dir", str(tmp_path / "nothing"), "--status")
    assert out.returncode == 2
    assert "no relay database here" in out.stderr and "Traceback" not in out.stderr


def test_cli_migrates_postgresql(pg_settings: PostgresSettings) -> None:
    assert pg_settings.password_file is not None
    args = ("--postgresql", pg_settings.dsn, "--password-file", str(pg_settings.password_file))
    status = cli(*args, "--status")
    assert status.returncode == 0, status.stderr
    assert "at version 0; pending: 1 (initial schema), 2 (revoked token" in status.stdout
    out = cli(*args)
    assert out.returncode == 0, out.stderr
    assert "applied migration 1: initial schema" in out.stdout
    assert "applied migration 2: revoked token tombstones" in out.stdout
    assert "up to date" in out.stdout


def test_cli_refuses_a_password_in_the_dsn_and_a_wrong_password(
    pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    with_password = pg_settings.dsn.replace("privastead@", "privastead:hunter2@")
    out = cli("--postgresql", with_password)
    assert out.returncode == 2
    assert "must not contain a password" in out.stderr and "hunter2" not in out.stderr
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    out = cli("--postgresql", pg_settings.dsn, "--password-file", str(wrong))
    assert out.returncode == 1
    assert "password authentication failed" in out.stderr and "Traceback" not in out.stderr
