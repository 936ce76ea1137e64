"""In-process fan-out of "mailbox X has seq N" to WebSocket subscribers and long-polls.

Nothing here is durable: a missed event costs only latency, because the mailbox itself is
the source of truth and every client re-lists after it (re)connects.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

from privastead import compat


class Subscriber(Protocol):
    def offer(self, event: dict[str, Any]) -> None:
        """Queue ``event`` without blocking (drop and flag a resync when full)."""


class News:
    """Set when the mailbox a long-poll waits on gets a message."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def wait_for(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with compat.timeout(seconds):
                await self.event.wait()
        return self.event.is_set()


class Notifier:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscriber]] = {}
        self._waiters: dict[str, set[asyncio.Event]] = {}

    def subscribe(self, mailbox: str, sub: Subscriber) -> None:
        self._subscribers.setdefault(mailbox, set()).add(sub)

    def unsubscribe(self, mailbox: str, sub: Subscriber) -> None:
        subs = self._subscribers.get(mailbox)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscribers[mailbox]

    def publish(self, mailbox: str, event: dict[str, Any]) -> None:
        for sub in self._subscribers.get(mailbox, ()):
            sub.offer(event)
        for waiter in self._waiters.get(mailbox, ()):
            waiter.set()

    @contextlib.asynccontextmanager
    async def waiting(self, mailbox: str) -> AsyncIterator[News]:
        """Register interest in ``mailbox`` first, check the store, then ``wait_for``."""
        news = News()
        waiters = self._waiters.setdefault(mailbox, set())
        waiters.add(news.event)
        try:
            yield news
        finally:
            waiters.discard(news.event)
            if not waiters:
                self._waiters.pop(mailbox, None)

    @property
    def subscriptions(self) -> int:
        return sum(len(s) for s in self._subscribers.values())


__all__ = ["News", "Notifier", "Subscriber"]
