"""Ending everything a revoked token holds open: WebSockets, live sockets, long-polls.

A revocation through the API is applied here right after its commit; one made elsewhere
(``privastead-server tokens revoke`` on the same data directory, or another relay sharing
the database) is found by polling the tombstones, whose ids only grow, every
``auth.revocation_poll_seconds``. Applying one drops the token from the authentication cache
and calls every ``Hold`` registered for it: a socket gets an error frame with the code
(``device_removed`` for a device token) and is closed with ``WS_CLOSE_REVOKED``; a long-poll
is answered 401 with the same code.

A request that authenticated just before the revocation and registers its hold just after
is caught too: recent revocations are remembered (bounded) and a new hold on one fires at
once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator

from privastead.errors import StorageError
from privastead.relay.api import DEVICE_REMOVED, TOKEN_REVOKED
from privastead.relay.storage import Storage

_log = logging.getLogger(__name__)
_RECENT = 10_000  # revoked token ids remembered for late holds


def code_for(kind: str) -> str:
    """The API error code that tells the holder of a revoked token of ``kind``."""
    return DEVICE_REMOVED if kind == "device" else TOKEN_REVOKED


class Hold:
    """One open connection (socket or long-poll) of one token."""

    def __init__(self, token_id: str, on_revoke: Callable[[str], None]) -> None:
        self.token_id = token_id
        self.revoked: str | None = None  # the error code once revoked
        self._on_revoke = on_revoke

    def fire(self, code: str) -> None:
        if self.revoked is None:
            self.revoked = code
            self._on_revoke(code)


class Revocations:
    def __init__(self, storage: Storage, forget: Callable[[str], None]) -> None:
        self._storage = storage
        self._forget = forget  # drops a token id from the authentication cache
        self._holds: dict[str, set[Hold]] = {}
        self._recent: OrderedDict[str, str] = OrderedDict()  # token id -> code
        self._seen = 0  # newest tombstone id applied

    @contextlib.contextmanager
    def hold(self, token_id: str, on_revoke: Callable[[str], None]) -> Iterator[Hold]:
        """Register an open connection of ``token_id`` for as long as the block runs."""
        h = Hold(token_id, on_revoke)
        self._holds.setdefault(token_id, set()).add(h)
        code = self._recent.get(token_id)
        if code is not None:
            h.fire(code)
        try:
            yield h
        finally:
            holds = self._holds.get(token_id)
            if holds is not None:
                holds.discard(h)
                if not holds:
                    del self._holds[token_id]

    def apply(self, revoked: list[tuple[str, str]]) -> None:
        """``(token id, kind)`` pairs were revoked: forget them, end what they hold open."""
        for token_id, kind in revoked:
            code = code_for(kind)
            self._forget(token_id)
            self._recent[token_id] = code
            self._recent.move_to_end(token_id)
            while len(self._recent) > _RECENT:
                self._recent.popitem(last=False)
            for h in list(self._holds.get(token_id, ())):
                h.fire(code)

    @property
    def open_holds(self) -> int:
        return sum(len(h) for h in self._holds.values())

    async def start(self) -> None:
        """Skip tombstones that existed before start-up (nothing of theirs is open)."""
        self._seen = await self._storage.newest_revocation()

    async def poll(self) -> int:
        """Apply tombstones written since the last poll (by the CLI); returns how many."""
        self._seen, revoked = await self._storage.revoked_since(after_id=self._seen)
        self.apply(revoked)
        return len(revoked)

    async def watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)  # real time: a FakeClock must not spin this
            try:
                await self.poll()
            except StorageError as exc:  # the database away: one line a poll, not a traceback
                _log.warning("polling for revocations failed (retried in %g s): %s", interval, exc)
            except Exception:
                _log.exception("polling for revocations failed")


__all__ = ["Hold", "Revocations", "code_for"]
