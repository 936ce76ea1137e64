"""Per-account and per-token budgets for everything households share on the relay.

Each shared resource (sockets, long-polls, request bodies being received, live sessions and
publishers) is counted per account, per token and in all. A request that would go past its
account's or its token's share is refused before the work is done: 429 with ``Retry-After``
and a code naming the resource (``too_many_sockets``...), so one household, or one leaked
pairing token, can use up its own share and nothing else. The global limit stays as the last
resort (503): it is what protects the machine when many accounts are busy at once.

Where several relay processes serve the same accounts (the PostgreSQL backend), the account's
share is also counted across all of them through ``Leases`` (``backends/pg_leases.py``): a
slot is a lease row, taken atomically against the account's share. The per-token shares and
the global limits stay per process: they protect one process's descriptors and memory, and
the account's share already bounds what its tokens hold together.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from privastead.errors import RelayRejectedError
from privastead.relay.accounts import Principal
from privastead.relay.config import Budgets
from privastead.relay.httputil import RetryAfter


class Leases(Protocol):
    """An account's slots counted by every relay process together."""

    async def take(self, resource: str, account: str, share: int) -> str | None:
        """A lease id, or None when the account holds ``share`` leases of ``resource``."""

    def give_back(self, lease: str) -> None:
        """Free a lease (at once if the database answers, else when it expires)."""


@dataclass
class Budget:
    """Counts of one resource. ``per_token`` 0: no per-token share."""

    name: str  # plural noun for the error code and message: "sockets", "uploads"...
    per_account: int
    total: int
    per_token: int = 0
    leases: Leases | None = None  # set: the account's share holds across processes

    def __post_init__(self) -> None:
        self._accounts: dict[str, int] = {}
        self._tokens: dict[str, int] = {}
        self.used = 0
        # Called when an account, a token or the total reaches its share or leaves it (the
        # native front refuses nothing itself: it leaves those to the relay, see ``front``).
        self.on_change: Callable[[], None] | None = None

    def saturated(self) -> tuple[list[str], list[str], bool]:
        """Accounts and tokens at their share now, and whether the total is at its limit."""
        accounts = [a for a, n in self._accounts.items() if n >= self.per_account]
        tokens = [t for t, n in self._tokens.items() if self.per_token and n >= self.per_token]
        return accounts, tokens, self.used >= self.total

    def check(self, p: Principal) -> None:
        """Raise the refusal this process's own counts call for, without taking anything
        (the cluster's count is asked by ``acquire``)."""
        if self.used >= self.total:
            raise RelayRejectedError(
                f"the relay is at its limit of {self.name}; retry later",
                503,
                f"too_many_{self.name}",
            ) from RetryAfter(5)
        if self._accounts.get(p.account, 0) >= self.per_account:
            raise self._refusal("this account", self.per_account)
        if self.per_token and self._tokens.get(p.token_id, 0) >= self.per_token:
            raise self._refusal("this token", self.per_token)

    def _refusal(self, who: str, share: int) -> RelayRejectedError:
        error = RelayRejectedError(
            f"{who} has {share} {self.name} open, its share; close one",
            429,
            f"too_many_{self.name}",
        )
        error.__cause__ = RetryAfter(1)
        return error

    async def acquire(self, p: Principal) -> Slot:
        """Take one slot (429/503 past a share or the limit); ``Slot.release`` gives it back."""
        self.check(p)
        self._count(p, 1)
        lease = None
        if self.leases is not None:
            try:
                lease = await self.leases.take(self.name, p.account, self.per_account)
            except BaseException:
                self._count(p, -1)
                raise
            if lease is None:
                self._count(p, -1)
                raise self._refusal("this account", self.per_account)
        return Slot(self, p, lease)

    def _count(self, p: Principal, step: int) -> None:
        self.used += step
        crossed = _crosses(self.used, step, self.total)
        crossed |= _crosses(_add(self._accounts, p.account, step), step, self.per_account)
        if self.per_token:
            crossed |= _crosses(_add(self._tokens, p.token_id, step), step, self.per_token)
        if crossed and self.on_change is not None:
            self.on_change()

    @contextlib.asynccontextmanager
    async def hold(self, p: Principal) -> AsyncIterator[None]:
        slot = await self.acquire(p)
        try:
            yield
        finally:
            slot.release()

    def of_account(self, account: str) -> int:
        """Slots the account holds on this process."""
        return self._accounts.get(account, 0)


@dataclass
class Slot:
    """One slot of a budget, held until ``release`` (which may be called more than once)."""

    budget: Budget
    principal: Principal
    lease: str | None
    released: bool = field(default=False, init=False)

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self.budget._count(self.principal, -1)
        if self.lease is not None and self.budget.leases is not None:
            self.budget.leases.give_back(self.lease)


# The upload slot an ``Expect: 100-continue`` handler took before its go-ahead; the middleware
# gives it back when the request ends.
BODY_SLOT = web.RequestKey("body_slot", Slot)


def _add(counts: dict[str, int], key: str, step: int) -> int:
    left = counts.get(key, 0) + step
    if left:
        counts[key] = left
    else:
        del counts[key]
    return left


def _crosses(now: int, step: int, share: int) -> bool:
    """Whether a count that moved by ``step`` to ``now`` reached ``share`` or left it."""
    return (now >= share) != (now - step >= share)


@dataclass
class Shares:
    """The relay's budgets, built from the config."""

    sockets: Budget
    waits: Budget
    bodies: Budget
    live_sessions: Budget  # sessions with a publisher or viewers

    @classmethod
    def of(cls, b: Budgets, max_websockets: int, leases: Leases | None = None) -> Shares:
        return cls(
            sockets=Budget(
                "websockets", b.sockets_per_account, max_websockets, b.sockets_per_token, leases
            ),
            waits=Budget("waits", b.waits_per_account, b.waits_total, b.waits_per_token, leases),
            bodies=Budget(
                "uploads", b.bodies_per_account, b.bodies_total, b.bodies_per_token, leases
            ),
            live_sessions=Budget(
                "live_sessions", b.live_sessions_per_account, b.live_sessions_total, 0, leases
            ),
        )


__all__ = ["BODY_SLOT", "Budget", "Leases", "Shares", "Slot"]
