"""Drains the outbox to the relay: in order per mailbox, with retries, back-off and jitter.

Each mailbox has its own task, so a mailbox that keeps failing does not hold up the others. A
message's relay id is ``message_id(mailbox, seq)``: a retry after a lost response, or after a
hub restart, carries the same id and the relay keeps one copy. Entries leave the outbox only
once the relay has confirmed them.

Failures:
- relay unreachable, 5xx, timeout, auth or rate limiting (401/403/408/429): retry the same entry
  after ``Backoff.delay`` (exponential, with jitter so many hubs do not retry in lock-step);
- any other 4xx: the relay will never take this message; after ``max_rejections`` attempts the
  entry is discarded (counted as dropped, logged) so the mailbox does not stall forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from typing import Protocol

from privastead import compat
from privastead.clock import Clock
from privastead.errors import RelayRejectedError, RelayUnavailableError, StorageError
from privastead.hub.delivery.outbox import Outbox, OutboxEntry
from privastead.protocol.messages import message_id

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({401, 403, 408, 425, 429})


class RelayUploadClient(Protocol):
    """What the uploader needs from the relay client.

    Shaped like ``privastead.relay.client.RelayClient.upload`` so that the real client fits as
    it is; it raises ``RelayUnavailableError`` (retry) or ``RelayRejectedError`` (4xx).
    """

    async def upload(
        self, mailbox: str, body: bytes, message_id: str, *, push: bytes | None = None
    ) -> object:
        """Store ``body`` in ``mailbox`` under ``message_id``; a retry stores it once."""
        ...


@dataclass(frozen=True)
class Backoff:
    initial: float = 0.5
    maximum: float = 60.0
    factor: float = 2.0
    jitter: float = 0.5  # the delay is drawn from [(1 - jitter) * d, d]

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The wait before retry number ``attempt`` (0-based)."""
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return base * (1.0 - self.jitter * rng.random())


@dataclass
class UploaderStats:
    uploaded: int = 0
    retries: int = 0
    discarded: int = 0


class Uploader:
    """Uploads every outbox entry, in order per mailbox, until cancelled."""

    def __init__(
        self,
        outbox: Outbox,
        relay: RelayUploadClient,
        *,
        clock: Clock,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        timeout: float = 30.0,
        max_rejections: int = 3,
        idle_poll: float = 5.0,
    ) -> None:
        self._outbox = outbox
        self._relay = relay
        self._clock = clock
        self._backoff = backoff or Backoff()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._timeout = timeout
        self._max_rejections = max_rejections
        self._idle_poll = idle_poll
        self.stats = UploaderStats()
        self._wake: dict[str, asyncio.Event] = {}
        self._new_mailbox = asyncio.Event()

    async def drain(self, mailbox: str) -> int:
        """Upload everything pending in ``mailbox`` now (retrying as needed); how many."""
        queue = self._outbox.mailbox(mailbox)
        done = 0
        while (entry := queue.first_pending()) is not None:
            if await self._deliver(entry):
                # fsyncs: off the event loop
                await asyncio.to_thread(queue.mark_uploaded, entry.seq)
                self.stats.uploaded += 1
                done += 1
        return done

    async def _deliver(self, entry: OutboxEntry) -> bool:
        """Try until the relay has ``entry`` (True) or it was discarded/dropped (False)."""
        queue = self._outbox.mailbox(entry.mailbox)
        mid = message_id(entry.mailbox, entry.seq)
        attempt = rejections = 0
        while True:
            try:
                body = await asyncio.to_thread(entry.read)
            except StorageError as e:
                if not queue.contains(entry.seq):
                    return False  # dropped by the quota meanwhile
                await asyncio.to_thread(queue.discard, entry.seq, f"unreadable: {e}")
                self.stats.discarded += 1
                return False
            try:
                async with compat.timeout(self._timeout):
                    await self._relay.upload(entry.mailbox, body, mid, push=entry.push_payload)
                return True
            except RelayRejectedError as e:
                if e.status not in RETRYABLE_STATUSES:
                    rejections += 1
                    if rejections >= self._max_rejections:
                        reason = f"relay refused it: {e.status} {e.code}"
                        await asyncio.to_thread(queue.discard, entry.seq, reason)
                        self.stats.discarded += 1
                        return False
                reason = f"refused ({e.status} {e.code})"
            except (RelayUnavailableError, TimeoutError, OSError) as e:
                reason = type(e).__name__
            delay = self._backoff.delay(attempt, self._rng)
            log.info(
                "upload of %s seq %d failed (%s); retry %d in %.1f s",
                entry.mailbox,
                entry.seq,
                reason,
                attempt + 1,
                delay,
            )
            attempt += 1
            self.stats.retries += 1
            await self._clock.sleep(delay)
            if not queue.contains(entry.seq):
                return False

    async def run(self) -> None:
        """Upload forever: one task per mailbox, woken by appends (and a slow poll)."""
        loop = asyncio.get_running_loop()

        def on_append(mailbox: str) -> None:
            loop.call_soon_threadsafe(self._signal, mailbox)

        unsubscribe = self._outbox.subscribe(on_append)
        try:
            async with compat.TaskGroup() as tasks:
                while True:
                    for mailbox in self._outbox.mailboxes():
                        if mailbox not in self._wake:
                            self._wake[mailbox] = asyncio.Event()
                            tasks.create_task(self._run_mailbox(mailbox))
                    self._new_mailbox.clear()
                    with contextlib.suppress(TimeoutError):
                        async with compat.timeout(self._idle_poll):
                            await self._new_mailbox.wait()
        finally:
            unsubscribe()

    def _signal(self, mailbox: str) -> None:
        event = self._wake.get(mailbox)
        if event is None:
            self._new_mailbox.set()
        else:
            event.set()

    async def _run_mailbox(self, mailbox: str) -> None:
        event = self._wake[mailbox]
        while True:
            event.clear()
            try:
                await self.drain(mailbox)
            except StorageError as e:
                # A disk problem: keep the other mailboxes going and try again later.
                log.error("outbox %s: %s", mailbox, e)
                await self._clock.sleep(self._backoff.maximum)
                continue
            with contextlib.suppress(TimeoutError):
                async with compat.timeout(self._idle_poll):
                    await event.wait()


__all__ = ["Backoff", "RelayUploadClient", "Uploader", "UploaderStats"]
