"""What a relay process runs on, as ``relay.toml``'s ``[storage]`` chooses, opened and closed.

- ``sqlite`` (the default): the index in ``data_dir/relay.sqlite3``, blobs as files under
  ``data_dir/blobs``; one process owns both.
- ``postgresql``: the index in PostgreSQL (``PgStorage``), blobs in an S3-compatible store
  (``S3BlobStore``), mailbox wake-ups between processes over PostgreSQL LISTEN/NOTIFY
  (``BusWakeups``); any number of processes share them.

The cluster's modules (asyncpg, aiobotocore) are imported only when configured, so the
default install needs neither. A backend that cannot be reached at start is a ``ConfigError``
naming the setting to check, not a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from privastead.errors import ConfigError, StorageError
from privastead.relay import schema
from privastead.relay.blobs import BlobStore
from privastead.relay.config import RelayConfig
from privastead.relay.db import Database, secure_dir
from privastead.relay.notify import Notifier
from privastead.relay.sqlite_storage import SqliteStorage
from privastead.relay.storage import Storage

if TYPE_CHECKING:
    from privastead.relay.backends.pg import PgDatabase
    from privastead.relay.backends.s3 import S3BlobStore
    from privastead.relay.backends.wakeups import BusWakeups

_log = logging.getLogger(__name__)
# pg_try_advisory_lock key of the object-store sweep ("privswep"): one process at a time.
SWEEP_LOCK_KEY = 0x7072697673776570
ORPHAN_GRACE_SECONDS = 3600.0  # an object younger than this may belong to a commit in flight


@dataclass
class Backend:
    """The storage of one relay process. ``sqlite`` is set for the SQLite backend only (its
    fault-injection tests reach the database); ``pg`` and ``wakeups`` for PostgreSQL only."""

    storage: Storage
    blobs: BlobStore | S3BlobStore
    sqlite: Database | None = None
    pg: PgDatabase | None = None
    wakeups: BusWakeups | None = None

    @property
    def shared(self) -> bool:
        """Several relay processes may serve the same accounts."""
        return self.pg is not None

    async def open(self, config: RelayConfig) -> None:
        if self.sqlite is not None:
            assert isinstance(self.blobs, BlobStore)
            await asyncio.to_thread(secure_dir, config.data_dir)
            await asyncio.to_thread(self.sqlite.open, schema.init)
            await asyncio.to_thread(self.blobs.open)
            referenced = await self.storage.referenced_blobs()
            await asyncio.to_thread(self.blobs.sweep, referenced)
            return
        await self._open_shared(config)

    async def _open_shared(self, config: RelayConfig) -> None:
        from privastead.relay.backends.s3 import S3BlobStore

        assert self.pg is not None and self.wakeups is not None
        assert isinstance(self.blobs, S3BlobStore)
        s = config.storage
        assert s.postgresql is not None and s.s3 is not None
        try:
            await self.pg.open(migrate=False)
        except StorageError as exc:
            raise ConfigError(
                f"[storage.postgresql] dsn = {s.postgresql.dsn!r}: {exc}. Check that "
                "PostgreSQL runs and accepts this role from here (pg_hba.conf), and the "
                "password (password_file or PRIVASTEAD_RELAY_PG_PASSWORD)"
            ) from exc
        try:
            await self.pg.migrate_at_start()  # a refusal says what to run; not wrapped
            try:
                await self.blobs.open()
            except StorageError as exc:
                raise ConfigError(
                    f"[storage.s3] endpoint = {s.s3.endpoint!r}, bucket = {s.s3.bucket!r}: "
                    f"{exc}. Check that the object store runs, that the bucket exists and "
                    "that access_key_id with its secret (secret_key_file or "
                    "PRIVASTEAD_RELAY_S3_SECRET_KEY) may read and write it"
                ) from exc
        except BaseException:
            await self.pg.close()
            raise
        try:
            await self.wakeups.start()
        except BaseException:
            await self.blobs.close()
            await self.pg.close()
            raise

    async def close(self) -> None:
        if self.sqlite is not None:
            await asyncio.to_thread(self.sqlite.close)  # runs every queued write first
            return
        if self.wakeups is not None:
            await self.wakeups.stop()
        from privastead.relay.backends.s3 import S3BlobStore

        if isinstance(self.blobs, S3BlobStore):
            await self.blobs.close()
        if self.pg is not None:
            await self.pg.close()

    async def sweep_blobs(self) -> int:
        """Remove blobs no message references. Files: at start only (one process owns the
        directory). Objects: periodically, by one process of the cluster at a time (the
        others skip), and only objects older than ``ORPHAN_GRACE_SECONDS``."""
        if self.pg is None:
            return 0
        from privastead.relay.backends.pg import Connection
        from privastead.relay.backends.s3 import S3BlobStore

        assert isinstance(self.blobs, S3BlobStore)
        blobs = self.blobs

        async def locked(conn: Connection) -> int:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", SWEEP_LOCK_KEY):
                return 0  # another process is sweeping

            async def referenced(names: list[str]) -> set[str]:
                rows = await conn.fetch(
                    "SELECT blob FROM messages WHERE blob = ANY($1::text[])", names
                )
                return {r["blob"] for r in rows}

            try:
                return await blobs.sweep(referenced, grace_seconds=ORPHAN_GRACE_SECONDS)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", SWEEP_LOCK_KEY)

        return await self.pg.transactionless(locked)


def backend_for(
    config: RelayConfig, notifier: Notifier, env: Mapping[str, str] | None = None
) -> Backend:
    """The backend ``config`` names; nothing is opened yet."""
    s = config.storage
    if s.backend == "sqlite":
        db = Database(config.data_dir / "relay.sqlite3", config.durability)
        return Backend(SqliteStorage(db), BlobStore(config.data_dir / "blobs"), sqlite=db)
    assert s.postgresql is not None and s.s3 is not None  # checked by StorageSettings
    try:
        from privastead.relay.backends.pg import PgDatabase
        from privastead.relay.backends.pg_storage import PgStorage
        from privastead.relay.backends.s3 import S3BlobStore
        from privastead.relay.backends.wakeups import BusWakeups
    except ImportError as exc:
        raise ConfigError(
            f"[storage] backend = 'postgresql' needs the cluster extras ({exc.name} is "
            "missing): pip install 'privastead[cluster]'"
        ) from None
    s.s3.secret_key(env)  # a missing secret is a config error now, not at the first upload
    pg = PgDatabase(s.postgresql, env)
    return Backend(
        PgStorage(pg),
        S3BlobStore(s.s3, env),
        pg=pg,
        wakeups=BusWakeups(notifier, s.postgresql, env=env),
    )


__all__ = ["ORPHAN_GRACE_SECONDS", "Backend", "backend_for"]
