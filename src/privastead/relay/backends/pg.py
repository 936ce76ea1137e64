"""The PostgreSQL side of the relay: a connection pool, transactions with safe retries.

Driver: asyncpg. It is asyncio-native (no thread hop per query, unlike running DB-API calls
in a worker thread), speaks PostgreSQL's binary protocol with automatically prepared and
cached statements (the relay's hot path is a handful of short statements, so per-statement
CPU is what counts; asyncpg's published benchmarks put it several times ahead of the other
Python drivers, psycopg 3 included, which we did not re-measure), and exposes LISTEN/NOTIFY
as callbacks, which the notification bus uses. It is maintained by the authors of uvloop,
which the relay runs on.

Group commit needs no code here: each request runs its own short transaction on a pooled
connection, and PostgreSQL flushes the WAL of transactions committing at the same moment
with one fsync, which is what the SQLite backend's single writer thread does by hand.

Failures:
- ``RelayRejectedError`` raised by an operation rolls its transaction back and propagates.
- Serialisation failures and deadlocks (SQLSTATE 40001, 40P01) are rolled back by the
  server: the operation is retried from the start on a new transaction.
- A connection found dead *before* the transaction began (after a PostgreSQL restart every
  pooled connection is) is replaced and the operation retried: nothing was sent. Reads are
  retried on a lost connection at any point: they change nothing.
- Anything else, a connection lost mid-transaction included, becomes ``StorageError``
  (503 for the client). A lost COMMIT has an unknown outcome, so it is never retried here;
  uploads are idempotent by message id, so the client's own retry is safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar

import asyncpg

from privastead.errors import StorageError
from privastead.relay.backends import migrations
from privastead.relay.backends.settings import PostgresSettings

T = TypeVar("T")
if TYPE_CHECKING:  # generic only in the type stubs
    from asyncpg.pool import PoolConnectionProxy

    # What operations receive: a pooled connection's proxy, or a connection of their own.
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
else:
    Connection = asyncpg.Connection
    Pool = asyncpg.Pool
_log = logging.getLogger(__name__)
_RETRY_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected
_ATTEMPTS = 4
# Raised when the server is gone or going: nothing more will succeed on this connection.
_LOST = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    # The connection's protocol is in a state it cannot leave ("another operation is in
    # progress"): seen on a pooled connection while the server shuts down.
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    ConnectionError,
    OSError,
    TimeoutError,
    asyncio.TimeoutError,  # asyncpg's timeouts on Python 3.10 (the builtin from 3.11 on)
)


def storage_error(what: str, cause: BaseException) -> StorageError:
    error = StorageError(f"database {what}: {type(cause).__name__}: {cause}")
    error.__cause__ = cause
    return error


async def connect(settings: PostgresSettings, env: Mapping[str, str] | None = None) -> Connection:
    """One connection outside the pool (migrations, the notification listener)."""
    try:
        conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(
            settings.dsn,
            password=settings.password(env),
            timeout=settings.connect_timeout_seconds,
            server_settings=_server_settings(settings),
        )
    except (*_LOST, asyncpg.PostgresError) as exc:
        raise storage_error("connection failed", exc) from exc
    return conn


def _server_settings(settings: PostgresSettings) -> dict[str, str]:
    return {
        "application_name": "privastead-relay",
        "statement_timeout": str(int(settings.statement_timeout_seconds * 1000)),
    }


class PgDatabase:
    """``await open()``, then ``transaction(fn)`` for writes and ``read(fn)`` for reads."""

    def __init__(self, settings: PostgresSettings, env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self._env = env
        self._pool: Pool | None = None

    async def open(self, *, migrate: bool = True) -> None:
        """Connect; with ``migrate``, apply the schema steps a starting relay may apply."""
        s = self.settings
        try:
            self._pool = await asyncpg.create_pool(
                s.dsn,
                password=s.password(self._env),
                min_size=s.min_connections,
                max_size=s.max_connections,
                timeout=s.connect_timeout_seconds,
                server_settings=_server_settings(s),
            )
        except (*_LOST, asyncpg.PostgresError) as exc:
            raise storage_error("connection failed", exc) from exc
        if migrate:
            await self.migrate_at_start()

    async def migrate_at_start(self) -> None:
        """Apply the pending steps a starting relay may apply (refuses the others)."""
        applied = await self.transactionless(
            lambda conn: migrations.migrate_postgresql(conn, at_start=True)
        )
        for step in applied:
            _log.info("applied schema migration %d (%s)", step.version, step.name)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            raise StorageError("database is closed")
        return self._pool

    async def transaction(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run ``fn`` in one transaction; retried only where that is certainly safe."""
        return await self._run(fn, "transaction")

    async def read(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run read-only ``fn`` (each statement sees everything committed before it). It is
        retried on a fresh connection if the connection was lost: it must not write."""
        return await self._run(fn, "read")

    async def idempotent(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run ``fn`` without an explicit transaction (each statement commits by itself, so a
        one-statement ``fn`` is one round trip), retried on a lost connection like a read:
        ``fn`` must be safe to repeat."""
        return await self._run(fn, "read")

    async def transactionless(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run ``fn`` managing its own transactions (migrations); never retried once begun."""
        return await self._run(fn, "raw")

    async def _run(
        self, fn: Callable[[Connection], Awaitable[T]], mode: Literal["transaction", "read", "raw"]
    ) -> T:
        delay = 0.01
        for attempt in range(1, _ATTEMPTS + 1):
            began = False  # once writes may have begun, a lost connection is not retried
            try:
                async with self.pool.acquire() as conn:
                    if mode != "transaction":
                        began = mode == "raw"
                        return await fn(conn)
                    tx = conn.transaction()
                    await tx.start()
                    began = True
                    try:
                        result = await fn(conn)
                    except BaseException:
                        with contextlib.suppress(Exception):  # a dead connection can't roll back
                            await tx.rollback()
                        raise
                    await tx.commit()
                    return result
            except (asyncpg.PostgresError, *_LOST) as exc:
                last = attempt == _ATTEMPTS
                conflict = getattr(exc, "sqlstate", None) in _RETRY_SQLSTATES
                if not last and (conflict or (isinstance(exc, _LOST) and not began)):
                    await asyncio.sleep(delay)
                    delay *= 4
                    continue
                what = "unavailable" if isinstance(exc, _LOST) else "error"
                raise storage_error(what, exc) from exc
        raise AssertionError("unreachable")  # the loop returns or raises


async def with_connection(
    settings: PostgresSettings, fn: Callable[[Connection], Awaitable[T]], env: Any = None
) -> T:
    """Run ``fn`` on a fresh connection and close it (the CLI's one-shot commands)."""
    conn = await connect(settings, env)
    try:
        return await fn(conn)
    finally:
        await conn.close()


__all__ = ["Connection", "PgDatabase", "connect", "storage_error", "with_connection"]
