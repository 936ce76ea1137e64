"""Per-account and per-token budgets for everything households share on one relay.

Each shared resource (sockets, long-polls, request bodies being received, live sessions and
publishers) is counted per account, per token and in all. A request that would go past its
account's or its token's share is refused before the work is done: 429 with ``Retry-After``
and a code naming the resource (``too_many_sockets``...), so one household, or one leaked
pairing token, can use up its own share and nothing else. The global limit stays as the last
resort (503): it is what protects the machine when many accounts are busy at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from privastead.errors import RelayRejectedError
from privastead.relay.accounts import Principal
from privastead.relay.config import Budgets
from privastead.relay.httputil import RetryAfter


@dataclass
class Budget:
    """Counts of one resource. ``per_token`` 0: no per-token share."""

    name: str  # plural noun for the error code and message: "sockets", "uploads"...
    per_account: int
    total: int
    per_token: int = 0

    def __post_init__(self) -> None:
        self._accounts: dict[str, int] = {}
        self._tokens: dict[str, int] = {}
        self.used = 0

    def check(self, p: Principal) -> None:
        """Raise the refusal ``hold`` would raise, without taking anything."""
        if self.used >= self.total:
            raise RelayRejectedError(
                f"the relay is at its limit of {self.name}; retry later",
                503,
                f"too_many_{self.name}",
            ) from RetryAfter(5)
        if self._accounts.get(p.account, 0) >= self.per_account:
            raise RelayRejectedError(
                f"this account has {self.per_account} {self.name} open, its share; close one",
                429,
                f"too_many_{self.name}",
            ) from RetryAfter(1)
        if self.per_token and self._tokens.get(p.token_id, 0) >= self.per_token:
            raise RelayRejectedError(
                f"this token has {self.per_token} {self.name} open, its share; close one",
                429,
                f"too_many_{self.name}",
            ) from RetryAfter(1)

    def acquire(self, p: Principal) -> None:
        self.check(p)
        self.used += 1
        self._accounts[p.account] = self._accounts.get(p.account, 0) + 1
        if self.per_token:
            self._tokens[p.token_id] = self._tokens.get(p.token_id, 0) + 1

    def release(self, p: Principal) -> None:
        self.used -= 1
        _decrement(self._accounts, p.account)
        if self.per_token:
            _decrement(self._tokens, p.token_id)

    @contextlib.contextmanager
    def hold(self, p: Principal) -> Iterator[None]:
        self.acquire(p)
        try:
            yield
        finally:
            self.release(p)

    def of_account(self, account: str) -> int:
        return self._accounts.get(account, 0)


def _decrement(counts: dict[str, int], key: str) -> None:
    left = counts[key] - 1
    if left:
        counts[key] = left
    else:
        del counts[key]


@dataclass
class Shares:
    """The relay's budgets, built from the config."""

    sockets: Budget
    waits: Budget
    bodies: Budget
    live_sessions: Budget  # sessions with a publisher or viewers

    @classmethod
    def of(cls, b: Budgets, max_websockets: int) -> Shares:
        return cls(
            sockets=Budget(
                "websockets", b.sockets_per_account, max_websockets, b.sockets_per_token
            ),
            waits=Budget("waits", b.waits_per_account, b.waits_total, b.waits_per_token),
            bodies=Budget("uploads", b.bodies_per_account, b.bodies_total, b.bodies_per_token),
            live_sessions=Budget(
                "live_sessions", b.live_sessions_per_account, b.live_sessions_total
            ),
        )


__all__ = ["Budget", "Shares"]
