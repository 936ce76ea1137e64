"""The PostgreSQL building blocks against a real server: the schema's invariants under
concurrency (two pools play two relay processes), the pool's retries, crashes and restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from privastead.devcluster.postgres import PostgresServer
from privastead.errors import RelayRejectedError, StorageError
from privastead.relay.backends import migrations
from privastead.relay.backends.pg import Connection, PgDatabase
from privastead.relay.backends.settings import PostgresSettings
from privastead.relay.store import MESSAGE_OVERHEAD
from support.postgres import settings_for

MAILBOX = "a" * 32


@pytest.fixture
async def two_relays(pg_settings: PostgresSettings) -> AsyncIterator[tuple[PgDatabase, PgDatabase]]:
    """Two pools on one database, as two relay processes have; the schema migrated."""
    first, second = PgDatabase(pg_settings), PgDatabase(pg_settings)
    await first.open()
    await second.open()
    try:
        await first.transaction(_account_and_mailbox)
        yield first, second
    finally:
        await first.close()
        await second.close()


async def _account_and_mailbox(conn: Connection) -> None:
    await conn.execute(
        "INSERT INTO accounts(name, created_at, quota_bytes) VALUES ('home', 0, 1000)"
    )
    await conn.execute(
        "INSERT INTO mailboxes(id, account, created_at) VALUES ($1, 'home', 0)", MAILBOX
    )


async def _append(conn: Connection, size: int) -> int:
    """The hot path's core: take the next seq, insert the message (quota kept by trigger)."""
    seq = await conn.fetchval(
        "UPDATE mailboxes SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq", MAILBOX
    )
    await conn.execute(
        "INSERT INTO messages(mailbox, seq, account, size, charged, body, created_at, expires_at)"
        " VALUES ($1, $2, 'home', $3, $4, $5, 0, 1e12)",
        MAILBOX,
        seq,
        size,
        size + MESSAGE_OVERHEAD,
        b"x" * size,
    )
    return int(seq)


async def test_seqs_stay_dense_and_unique_across_processes(
    two_relays: tuple[PgDatabase, PgDatabase],
) -> None:
    first, second = two_relays
    seqs = await asyncio.gather(
        *(db.transaction(lambda c: _append(c, 1)) for db in (first, second) * 40)
    )
    assert sorted(seqs) == list(range(1, 81))
    used = await first.read(lambda c: c.fetchval("SELECT used_bytes FROM accounts"))
    assert used == 80 * (1 + MESSAGE_OVERHEAD)


async def test_used_bytes_follow_bulk_deletes_and_cascades(
    two_relays: tuple[PgDatabase, PgDatabase],
) -> None:
    first, second = two_relays
    for _ in range(10):
        await first.transaction(lambda c: _append(c, 7))
    used = await second.read(lambda c: c.fetchval("SELECT used_bytes FROM accounts"))
    assert used == 10 * (7 + MESSAGE_OVERHEAD)
    # One statement deleting many rows (an ack, an expiry sweep): one update per account.
    await second.transaction(lambda c: c.execute("DELETE FROM messages WHERE seq <= 6"))
    used = await first.read(lambda c: c.fetchval("SELECT used_bytes FROM accounts"))
    assert used == 4 * (7 + MESSAGE_OVERHEAD)
    await first.transaction(lambda c: c.execute("DELETE FROM mailboxes WHERE id = $1", MAILBOX))
    row = await first.read(
        lambda c: c.fetchrow(
            "SELECT used_bytes, (SELECT count(*) FROM messages) AS n FROM accounts"
        )
    )
    assert (row["used_bytes"], row["n"]) == (0, 0)


async def test_a_rejected_operation_leaves_nothing(
    two_relays: tuple[PgDatabase, PgDatabase],
) -> None:
    first, _ = two_relays

    async def half_then_refuse(conn: Connection) -> None:
        await _append(conn, 5)
        raise RelayRejectedError("over quota", 413, "quota_exceeded")

    with pytest.raises(RelayRejectedError):
        await first.transaction(half_then_refuse)
    row = await first.read(
        lambda c: c.fetchrow(
            "SELECT m.last_seq, a.used_bytes FROM mailboxes m JOIN accounts a ON a.name = m.account"
        )
    )
    assert (row["last_seq"], row["used_bytes"]) == (0, 0)


async def test_deadlocks_between_processes_are_retried(
    two_relays: tuple[PgDatabase, PgDatabase],
) -> None:
    """Two transactions lock two rows in opposite orders: PostgreSQL aborts one (40P01) and
    the pool runs it again; both complete."""
    first, second = two_relays
    await first.transaction(
        lambda c: c.execute("INSERT INTO accounts(name, created_at) VALUES ('other', 0)")
    )
    holding = {"a": asyncio.Event(), "b": asyncio.Event()}
    attempts = {"a": 0, "b": 0}

    def crossing(name: str, a: str, b: str):  # type: ignore[no-untyped-def]
        async def op(conn: Connection) -> None:
            attempts[name] += 1
            await conn.execute("UPDATE accounts SET used_bytes = used_bytes WHERE name = $1", a)
            if attempts[name] == 1:  # wait until the other holds its first row too
                holding[name].set()
                await holding["b" if name == "a" else "a"].wait()
            await conn.execute("UPDATE accounts SET used_bytes = used_bytes WHERE name = $1", b)

        return op

    await asyncio.gather(
        first.transaction(crossing("a", "home", "other")),
        second.transaction(crossing("b", "other", "home")),
    )
    assert sorted(attempts.values()) == [1, 2]


async def test_pool_survives_a_postgresql_crash_and_restart(postgres_factory: type) -> None:
    server: PostgresServer = postgres_factory()
    db = PgDatabase(settings_for(server))
    await db.open()
    try:
        assert await db.read(lambda c: c.fetchval("SELECT 1")) == 1
        server.kill9()
        with pytest.raises(StorageError, match="unavailable"):
            await db.read(lambda c: c.fetchval("SELECT 1"))
        server.start()
        # Every pooled connection died with the server; the pool replaces them unasked.
        for _ in range(5):
            assert await db.transaction(lambda c: c.fetchval("SELECT 2")) == 2
        assert (await db.read(migrations.pg_status)).current == migrations.LATEST
    finally:
        await db.close()


async def test_committed_rows_survive_a_crash(postgres_factory: type) -> None:
    server: PostgresServer = postgres_factory()
    db = PgDatabase(settings_for(server))
    await db.open()
    try:
        await db.transaction(_account_and_mailbox)
        seqs = [await db.transaction(lambda c: _append(c, 3)) for _ in range(20)]
        server.kill9()  # postmaster and backends at once, no shutdown checkpoint
        server.start()
        count = await db.read(lambda c: c.fetchval("SELECT count(*) FROM messages"))
        assert count == len(seqs) == 20
    finally:
        await db.close()


async def test_wrong_password_and_unreachable_server_are_storage_errors(
    pg_settings: PostgresSettings, tmp_path: object
) -> None:
    bad = PgDatabase(pg_settings, env={"PRIVASTEAD_RELAY_PG_PASSWORD": "wrong"})
    with pytest.raises(StorageError, match="password authentication failed"):
        await bad.open()
    gone = PgDatabase(
        PostgresSettings(dsn="postgresql://privastead@127.0.0.1:9/x", connect_timeout_seconds=1)
    )
    with pytest.raises(StorageError, match="connection failed"):
        await gone.open()


async def test_statement_timeout_bounds_a_stuck_query(pg_settings: PostgresSettings) -> None:
    import dataclasses

    db = PgDatabase(dataclasses.replace(pg_settings, statement_timeout_seconds=0.2))
    await db.open(migrate=False)
    try:
        with pytest.raises(StorageError) as caught:
            await db.read(lambda c: c.execute("SELECT pg_sleep(5)"))
        assert isinstance(caught.value.__cause__, asyncpg.QueryCanceledError)
    finally:
        await db.close()


async def test_a_connection_stuck_in_its_protocol_is_a_lost_connection(
    pg_settings: PostgresSettings,
) -> None:
    """asyncpg's ``InternalClientError`` ("cannot switch to state 12; another operation is in
    progress"), met on a pooled connection while the server was shutting down, is a lost
    connection: a read is retried on another connection, a transaction that began is not, and
    either ends as ``StorageError`` (503 for the client), never as a 500. Injected here: the
    real one depends on the moment of the shutdown."""
    db = PgDatabase(pg_settings)
    await db.open()
    calls = 0

    async def stuck(conn: Connection) -> None:
        nonlocal calls
        calls += 1
        raise asyncpg.exceptions.InternalClientError("cannot switch to state 12")

    try:
        with pytest.raises(StorageError, match="unavailable"):
            await db.read(stuck)
        assert calls == 4  # every attempt
        with pytest.raises(StorageError, match="unavailable"):
            await db.transaction(stuck)
        assert calls == 5  # begun: the outcome is unknown, so not retried
        assert await db.read(lambda c: c.fetchval("SELECT 1")) == 1  # the pool is whole
    finally:
        await db.close()
