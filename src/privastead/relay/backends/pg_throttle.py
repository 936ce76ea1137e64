"""Failed authentication counted by every relay process together, in PostgreSQL.

Behind a load balancer a client's failures land on any process. Each process's own throttle
(``relay.throttle``) would give a client ``max_failures`` free failures *per process* and a
lock that the next process does not know; this table makes the count and the lock one for
the cluster. The arithmetic is ``throttle.count_failure``, the same as one process's.

Only failing requests come here (a valid token never touches it), and a key already locked
by this process is refused before any query, so a flood of bad tokens costs the database
little. Times are wall-clock seconds (``clock.time()``: the processes share no monotonic
clock). Keys are stored as SHA-256 digests: the table holds no client address in the clear.
If the database cannot be reached, the process's own throttle still holds (logged).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable

from privastead.clock import Clock
from privastead.errors import StorageError
from privastead.relay.backends.pg import Connection, PgDatabase
from privastead.relay.config import AuthConfig
from privastead.relay.throttle import FailureRecord, count_failure

_log = logging.getLogger(__name__)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


class PgThrottle:
    def __init__(self, db: PgDatabase, config: AuthConfig, clock: Clock) -> None:
        self._db = db
        self._config = config
        self._clock = clock

    async def retry_after(self, keys: Iterable[str]) -> float:
        """Seconds until the most locked of ``keys`` may fail again (0: none locked)."""
        digests = [_digest(k) for k in keys]
        now = self._clock.time()

        async def op(conn: Connection) -> float:
            until = await conn.fetchval(
                "SELECT MAX(locked_until) FROM auth_failures WHERE key = ANY($1::bytea[])",
                digests,
            )
            return max(0.0, float(until or 0.0) - now)

        try:
            return await self._db.read(op)
        except StorageError as exc:
            _log.warning("shared throttle unavailable (this process's own holds): %s", exc)
            return 0.0

    async def fail(self, keys: Iterable[str]) -> float:
        """Count one failure against each of ``keys``; returns ``retry_after`` of them."""
        digests = sorted(_digest(k) for k in keys)  # one lock order for every process
        now = self._clock.time()
        config = self._config

        async def op(conn: Connection) -> float:
            wait = 0.0
            for key in digests:
                # The row first, so that two processes counting a new key at once both
                # wait on its lock and neither count is lost.
                await conn.execute(
                    "INSERT INTO auth_failures(key, failures, last, locked_until)"
                    " VALUES ($1, 0, 0, 0) ON CONFLICT DO NOTHING",
                    key,
                )
                row = await conn.fetchrow(
                    "SELECT failures, last, locked_until FROM auth_failures WHERE key = $1"
                    " FOR UPDATE",
                    key,
                )
                assert row is not None  # inserted above
                record = FailureRecord(row[0], row[1], row[2])
                count_failure(record, now, config)
                await conn.execute(
                    "UPDATE auth_failures SET failures = $2, last = $3, locked_until = $4"
                    " WHERE key = $1",
                    key,
                    record.failures,
                    record.last,
                    record.locked_until,
                )
                wait = max(wait, record.locked_until - now)
            return wait

        try:
            return await self._db.transaction(op)
        except StorageError as exc:
            _log.warning("shared throttle unavailable (this process's own holds): %s", exc)
            return 0.0

    async def prune(self) -> int:
        """Forget keys quiet for a whole window after their lock (the periodic sweep)."""
        horizon = self._clock.time() - self._config.window_seconds

        async def op(conn: Connection) -> int:
            done = await conn.execute(
                "DELETE FROM auth_failures WHERE GREATEST(last, locked_until) < $1", horizon
            )
            return int(done.split()[-1])

        return await self._db.transaction(op)


__all__ = ["PgThrottle"]
