"""Waking the hub's control reader when a client writes, instead of waiting for its next poll.

The hub subscribes to its ``control`` mailboxes on the relay's WebSocket (``/v1/ws``); every
"new message" event wakes the reader at once, so a ``LiveRequest`` is answered within a
relay round trip rather than up to a poll interval later. Polling stays as the fallback: the
reader still wakes every interval, and after the socket drops (relay restart) it wakes once
more, since news may have been missed while it was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from privastead.clock import Clock
from privastead.errors import RelayError
from privastead.relay.client import RelayClient

log = logging.getLogger(__name__)

RECONNECT_SECONDS = 2.0


class MailboxWake:
    def __init__(self, relay: RelayClient, mailboxes: Sequence[str], clock: Clock) -> None:
        self.relay = relay
        self.mailboxes = list(mailboxes)
        self.clock = clock
        self._news = asyncio.Event()
        self.events = 0

    async def run(self) -> None:
        """Keep a subscription open until cancelled, reconnecting after failures."""
        if not self.mailboxes:
            return
        while True:
            try:
                sub = await self.relay.subscribe(self.mailboxes)
                try:
                    async for event in sub:
                        if event.get("type") in ("message", "resync"):
                            self.events += 1
                            self._news.set()
                finally:
                    with contextlib.suppress(Exception):
                        await sub.close()
            except RelayError as e:
                log.debug("mailbox subscription: %s", e)
            self._news.set()  # the socket was down: something may have been missed
            await self.clock.sleep(RECONNECT_SECONDS)

    async def wait(self, seconds: float) -> None:
        """Return on news or after ``seconds`` on the injected clock."""
        if not self._news.is_set():
            news = asyncio.ensure_future(self._news.wait())
            sleep = asyncio.ensure_future(self.clock.sleep(seconds))
            try:
                await asyncio.wait({news, sleep}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (news, sleep):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        self._news.clear()


__all__ = ["MailboxWake"]
