"""Each account's budget slots counted by every relay process together, as leases in
PostgreSQL.

Behind a load balancer one household's sockets, long-polls, bodies and live sessions land on
any process. Counted per process only, an account would get its share once per process. Here
a slot is a row of ``budget_leases`` (account, resource, instance, lease id, expiry):

- **Taking** one is one round trip: ``budget_lease_take`` (a PL/pgSQL function of migration
  step 4) takes a transaction-scoped advisory lock on (account, resource), drops that pair's
  expired leases, counts the live ones and inserts the new one if the count is below the
  share. Two processes taking the last slot at once serialise on the lock; one gets it.
- **Giving back** deletes the row at once, in a background task (closing a socket never waits
  for the database); leases given back while a delete runs go in the next one, one
  statement for many.
- **Renewing**: every ``lease_seconds / 3`` the process extends all its leases in one
  statement, an upsert, so leases lost with the table (a PostgreSQL crash empties an UNLOGGED
  table) or taken while the database was away are written again. The same statement removes
  leases long expired (of accounts that came back no more).
- **A process that dies** (kill -9, power loss) stops renewing: its leases expire within
  ``lease_seconds`` and the next take of that account drops them.

Times are the database server's clock (``clock_timestamp()``): the processes share no clock.

**The database unreachable: fail open to this process's share.** A slot is still refused past
the account's share *on this process* (``Budget.check`` counts locally before asking), so
the bound degrades to what one process alone enforces, never to nothing. The slot is kept as
a lease of this process and written by the first renewal that reaches the database. After a
failed take, takes do not ask the database for a few seconds (or until a renewal reaches
it), so an unreachable host does not make every socket wait for the pool's connect timeout. Refusing
every socket and long-poll instead would turn a database restart into an outage of the
live fan-out and of requests served from the token cache, which need no database at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from dataclasses import dataclass

from privastead.clock import Clock
from privastead.errors import StorageError
from privastead.relay.backends.pg import Connection, PgDatabase

_log = logging.getLogger(__name__)
_WARN_EVERY = 30.0  # seconds between two warnings of an unreachable database
# After a failed take, takes fail open at once for this long instead of each waiting for the
# pool's connection attempts (up to its connect timeout, retried); a renewal that reaches the
# database ends the pause sooner.
_PAUSE_SECONDS = 5.0

_RENEW = """
WITH gone AS (
    DELETE FROM budget_leases WHERE expires_at < extract(epoch FROM clock_timestamp()) - $5
)
INSERT INTO budget_leases(lease, account, resource, instance, expires_at)
SELECT l, a, r, $4, extract(epoch FROM clock_timestamp()) + $5
FROM unnest($1::text[], $2::text[], $3::text[]) AS t(l, a, r)
ON CONFLICT (lease) DO UPDATE SET expires_at = EXCLUDED.expires_at
"""


@dataclass(frozen=True)
class _Held:
    resource: str
    account: str


def instance_id() -> str:
    """This process's name in the table: host and pid for operators, random for uniqueness."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class PgLeases:
    """``start()`` the renewal, ``take``/``give_back`` slots, ``stop()`` frees them all."""

    def __init__(self, db: PgDatabase, lease_seconds: float, clock: Clock) -> None:
        self._db = db
        self.lease_seconds = lease_seconds
        self._clock = clock
        self.instance = instance_id()
        self._held: dict[str, _Held] = {}
        self._dropping: list[str] = []  # given back, not deleted yet
        self._dropper: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._warned = -_WARN_EVERY
        self._paused_until = 0.0  # monotonic: takes do not ask the database before this

    @property
    def held(self) -> int:
        return len(self._held)

    async def take(self, resource: str, account: str, share: int) -> str | None:
        lease = secrets.token_hex(12)
        self._held[lease] = _Held(resource, account)  # renewed even if the answer is lost
        if self._clock.monotonic() < self._paused_until:
            return lease  # the database failed a moment ago: fail open without waiting

        async def op(conn: Connection) -> bool:
            ok = await conn.fetchval(
                "SELECT budget_lease_take($1, $2, $3, $4, $5, $6)",
                lease,
                account,
                resource,
                self.instance,
                share,
                self.lease_seconds,
            )
            return bool(ok)

        try:
            ok = await self._db.idempotent(op)
        except StorageError as exc:
            self._warn(exc)
            self._paused_until = self._clock.monotonic() + _PAUSE_SECONDS
            return lease  # fail open: this process's own count has already allowed it
        except BaseException:
            self.give_back(lease)  # cancelled: the row may exist
            raise
        if not ok:
            del self._held[lease]
            return None
        return lease

    def give_back(self, lease: str) -> None:
        if self._held.pop(lease, None) is None:
            return
        self._dropping.append(lease)
        if self._dropper is None or self._dropper.done():
            self._dropper = asyncio.get_running_loop().create_task(self._drop_pending())

    async def _drop_pending(self) -> None:
        """Delete given-back leases; those given back while a delete runs go in the next one,
        so a busy process sends one statement for many (uploads give one back each)."""
        while self._dropping:
            leases, self._dropping = self._dropping, []

            async def op(conn: Connection, leases: list[str] = leases) -> None:
                await conn.execute("DELETE FROM budget_leases WHERE lease = ANY($1)", leases)

            try:
                await self._db.idempotent(op)
            except StorageError as exc:  # not renewed any more: they expire by themselves
                self._warn(exc)

    async def settled(self) -> None:
        """Wait until every lease given back so far is deleted (or found undeletable)."""
        while self._dropper is not None and not self._dropper.done():
            await asyncio.shield(self._dropper)

    async def renew(self) -> None:
        """Extend (or write again) every lease this process holds; drop long-expired rows."""
        held = list(self._held.items())

        async def op(conn: Connection) -> None:
            await conn.execute(
                _RENEW,
                [lease for lease, _ in held],
                [h.account for _, h in held],
                [h.resource for _, h in held],
                self.instance,
                self.lease_seconds,
            )

        await self._db.idempotent(op)
        self._paused_until = 0.0  # the database answers: takes ask it again
        # A lease given back while the upsert ran may have been written again: delete it.
        stale = [lease for lease, _ in held if lease not in self._held]
        if stale:

            async def drop(conn: Connection) -> None:
                await conn.execute("DELETE FROM budget_leases WHERE lease = ANY($1)", stale)

            await self._db.idempotent(drop)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)  # real time: leases expire in real time
            try:
                await self.renew()
            except StorageError as exc:
                self._warn(exc)

    def _warn(self, exc: StorageError) -> None:
        now = self._clock.monotonic()
        if now - self._warned >= _WARN_EVERY:
            self._warned = now
            _log.warning(
                "budget leases: database unreachable, this process's own shares hold: %s", exc
            )

    async def start(self) -> None:
        self._renewer = asyncio.create_task(self._renew_forever())

    async def stop(self) -> None:
        """Stop renewing and free this process's leases (a clean stop gives its slots back
        at once; a crash leaves them to expire)."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        await self.settled()
        self._held.clear()

        async def op(conn: Connection) -> None:
            await conn.execute("DELETE FROM budget_leases WHERE instance = $1", self.instance)

        try:
            await self._db.idempotent(op)
        except StorageError as exc:
            self._warn(exc)


__all__ = ["PgLeases", "instance_id"]
