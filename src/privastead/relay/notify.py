"""In-process fan-out of "mailbox X has seq N" to WebSocket subscribers and long-polls.

Nothing here is durable: a missed event costs only latency, because the mailbox itself is
the source of truth and every client re-lists after it (re)connects.

Several relay processes share their mailboxes' events through a ``Remote`` (the PostgreSQL
bus, ``backends.wakeups``): ``publish`` also forwards, the remote's events come back through
``deliver`` (local only, so they are never forwarded again), and when the remote may have
lost events it calls ``resync``.
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


class Remote(Protocol):
    def forward(self, mailbox: str, event: dict[str, Any]) -> None:
        """Pass ``event`` to the other relay processes without blocking."""


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
        self._remote: Remote | None = None

    def attach(self, remote: Remote | None) -> None:
        """Forward every event published here to the other relay processes (None: stop)."""
        self._remote = remote

    def subscribe(self, mailbox: str, sub: Subscriber) -> None:
        self._subscribers.setdefault(mailbox, set()).add(sub)

    def unsubscribe(self, mailbox: str, sub: Subscriber) -> None:
        subs = self._subscribers.get(mailbox)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscribers[mailbox]

    def publish(self, mailbox: str, event: dict[str, Any]) -> None:
        """An event of this process: wake local subscribers, and the other processes'."""
        self.deliver(mailbox, event)
        if self._remote is not None:
            self._remote.forward(mailbox, event)

    def deliver(self, mailbox: str, event: dict[str, Any]) -> None:
        """Wake this process's subscribers and long-polls of ``mailbox`` only."""
        for sub in self._subscribers.get(mailbox, ()):
            sub.offer(event)
        for waiter in self._waiters.get(mailbox, ()):
            waiter.set()

    def resync(self) -> None:
        """Events may have been lost: every subscriber re-lists, every long-poll re-checks."""
        for subs in self._subscribers.values():
            for sub in subs:
                sub.offer({"type": "resync"})  # list your mailboxes again
        for waiters in self._waiters.values():
            for waiter in waiters:
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


__all__ = ["News", "Notifier", "Remote", "Subscriber"]
