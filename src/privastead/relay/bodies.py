"""Reading request bodies so that a slow client costs time it pays for, not relay resources.

Every read has a stall timeout (``limits.body_timeout``: no byte for that long ends it), and
the whole body a floor rate: after ``limits.body_grace_seconds`` the bytes received must keep
up with ``limits.body_min_rate`` bytes per second. A trickle of a few bytes a second, which
the stall timeout alone would let hold a connection, a handler and a temp file for days, is
answered 408 ``body_timeout`` once it falls below the floor; a client on a slow but honest
link (the floor is far below any phone or home uplink) is never cut off. Nothing partial is
kept either way: the caller drops what was read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from privastead import compat
from privastead.errors import RelayRejectedError
from privastead.relay.config import Limits

LIMITS = web.AppKey("privastead_relay_limits", Limits)


def reader(request: web.BaseRequest) -> BodyReader:
    """A ``BodyReader`` for ``request`` under the application's limits."""
    return BodyReader(request, request.app[LIMITS])  # type: ignore[attr-defined]


def _timeout_error() -> RelayRejectedError:
    return RelayRejectedError("the body came too slowly; nothing was stored", 408, "body_timeout")


class BodyReader:
    """Bounded reads of one request's body under the stall timeout and the floor rate."""

    def __init__(self, request: web.BaseRequest, limits: Limits) -> None:
        self._content = request.content
        self._stall = limits.body_timeout
        self._grace = limits.body_grace_seconds
        self._rate = float(limits.body_min_rate)
        self._loop = asyncio.get_running_loop()
        self._start = self._loop.time()
        self.received = 0

    def _budget(self) -> float:
        """Seconds the next read may take: until a stall, or until the floor rate is broken
        with the bytes received so far, whichever comes first."""
        elapsed = self._loop.time() - self._start
        floor = self._grace + self.received / self._rate - elapsed
        if floor <= 0:
            raise _timeout_error()
        return min(self._stall, floor)

    async def _read(self, read: Callable[[], Awaitable[bytes]]) -> bytes:
        budget = self._budget()
        try:
            async with compat.timeout(budget):
                chunk = await read()
        except TimeoutError:
            raise _timeout_error() from None
        self.received += len(chunk)
        return chunk

    async def exactly(self, n: int) -> bytes:
        """``n`` bytes (``asyncio.IncompleteReadError`` if the body ends first)."""
        # A small body usually came with its header: take it without arming a timer.
        ready = self._content.read_nowait(n)
        self.received += len(ready)
        if len(ready) == n:
            return ready
        rest = await self._read(lambda: self._content.readexactly(n - len(ready)))
        return ready + rest

    async def some(self, limit: int = -1) -> bytes:
        """What has arrived (at most ``limit`` bytes); b"" at the end of the body."""
        if limit < 0:
            return await self._read(self._content.readany)
        return await self._read(lambda: self._content.read(limit))

    async def chunks(self) -> AsyncIterator[bytes]:
        while chunk := await self.some():
            yield chunk

    async def upto(self, want: int) -> bytes:
        """Up to ``want`` bytes (fewer only at the end of the body)."""
        parts: list[bytes] = []
        got = 0
        while got < want:
            chunk = await self.some(want - got)
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def at_eof(self) -> bool:
        return self._content.at_eof()


__all__ = ["LIMITS", "BodyReader", "reader"]
