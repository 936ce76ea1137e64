"""Mailbox wake-ups across relay processes: PostgreSQL LISTEN/NOTIFY, ids only.

A relay process that stores a message wakes its own subscribers and long-polls at once
(``relay.notify.Notifier``) and publishes the event here; every other process hears it and
wakes its own. Events carry a mailbox id and a sequence number (or "deleted"), nothing else:
the mailbox stays the source of truth, and a missed event costs latency, never data, because
a woken or resynced client lists the mailbox.

- **Batching.** Events queue in memory; one sender turns everything queued into one NOTIFY of
  up to ~7,900 bytes (PostgreSQL's payload limit is 8,000), so a burst of a thousand uploads
  is a handful of NOTIFYs. Nothing waits on purpose: an event sent alone goes at once.
- **Own events** come back through LISTEN too; each payload names the sending process, and a
  process ignores its own (it delivered them locally already).
- **Gaps.** When the connection to PostgreSQL breaks (a restart, a failover) events may have
  been lost in either direction. After reconnecting, the bus calls ``on_gap`` so the relay
  tells its subscribers to resync (the WebSocket ``resync`` event; long-polls re-list).
  Events published while disconnected are kept (up to ``max_queued``) and sent afterwards; past
  that, the oldest are dropped and a gap marker is sent instead, which makes every process
  resync its subscribers.
- **Liveness.** A ``SELECT 1`` every ``ping_seconds`` finds a half-open connection that no
  error would reveal.

Why not Redis pub/sub: one more service to run, secure and fail over, for a stream of ids
that PostgreSQL, already required, carries. NOTIFY serialises the commits of notifying
transactions on a global queue lock; batching keeps the number of NOTIFYs far below the
message rate, and ``bench`` measures it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from privastead.compat import timeout
from privastead.errors import StorageError
from privastead.relay.backends.pg import Connection, connect
from privastead.relay.backends.settings import PostgresSettings

CHANNEL = "privastead_mailbox"
MAX_PAYLOAD = 7900
_MAILBOX = re.compile(r"\A[0-9a-f]{32}\Z")
_INSTANCE = re.compile(r"\A[0-9a-f]{16}\Z")
_log = logging.getLogger(__name__)
# Whatever means the connection to PostgreSQL is gone or unusable.
_LOST = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.PostgresError,
    ConnectionError,
    OSError,
    TimeoutError,
    asyncio.TimeoutError,  # asyncpg's timeouts on Python 3.10 (the builtin from 3.11 on)
)


@dataclass(frozen=True)
class MailboxEvent:
    kind: Literal["message", "deleted"]
    mailbox: str
    seq: int = 0

    def encode(self) -> str:
        return f"m {self.mailbox} {self.seq}" if self.kind == "message" else f"d {self.mailbox}"


def decode(payload: str) -> tuple[str, list[MailboxEvent], bool] | None:
    """``(sender, events, gap)`` of a payload, or None if it is not one of ours."""
    lines = payload.split("\n")
    sender = lines[0]
    if not _INSTANCE.match(sender):
        return None
    events: list[MailboxEvent] = []
    gap = False
    for line in lines[1:]:
        parts = line.split(" ")
        if parts == ["g"]:
            gap = True
        elif (
            len(parts) == 3 and parts[0] == "m" and _MAILBOX.match(parts[1]) and parts[2].isdigit()
        ):
            events.append(MailboxEvent("message", parts[1], int(parts[2])))
        elif len(parts) == 2 and parts[0] == "d" and _MAILBOX.match(parts[1]):
            events.append(MailboxEvent("deleted", parts[1]))
        else:
            return None  # not ours, or corrupted: ignore the whole payload
    return sender, events, gap


class PgNotificationBus:
    """``await start()``; ``publish(event)`` from the event loop; ``await stop()``."""

    def __init__(
        self,
        settings: PostgresSettings,
        on_event: Callable[[MailboxEvent], None],
        on_gap: Callable[[], None],
        *,
        env: Mapping[str, str] | None = None,
        max_queued: int = 10_000,
        ping_seconds: float = 10.0,
    ) -> None:
        self.settings = settings
        self.instance = secrets.token_hex(8)
        self._on_event = on_event
        self._on_gap = on_gap
        self._env = env
        self._queue: deque[str] = deque()
        self._max_queued = max_queued
        self._overflowed = False
        self._ping_seconds = ping_seconds
        self._wake = asyncio.Event()
        self._conn: Connection | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.sent_notifies = 0  # for tests and metrics
        self.reconnects = 0

    async def start(self) -> None:
        await self._connect()  # fails loudly at start-up: the relay cannot run without it
        self._task = asyncio.create_task(self._run(), name="relay-bus")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._disconnect()

    def publish(self, event: MailboxEvent) -> None:
        """Queue ``event`` for the other processes (never blocks, never raises)."""
        if len(self._queue) >= self._max_queued:
            self._queue.popleft()
            self._overflowed = True
        self._queue.append(event.encode())
        self._wake.set()

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL backend serving this bus (for diagnostics), None if disconnected."""
        return self._conn.get_server_pid() if self.connected and self._conn else None

    async def _connect(self) -> None:
        conn = await connect(self.settings, self._env)
        self._lost.clear()
        conn.add_termination_listener(lambda _conn: self._lost.set())
        await conn.add_listener(CHANNEL, self._heard)
        self._conn = conn

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await conn.close(timeout=2)
            except Exception:  # busy or broken: close the socket without a goodbye
                conn.terminate()

    def _drop(self) -> None:
        """Abandon a connection that failed (no protocol exchange on a broken socket)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        decoded = decode(payload) if isinstance(payload, str) else None
        if decoded is None:
            _log.warning("ignored a notification that is not a relay event")
            return
        sender, events, gap = decoded
        if sender == self.instance:
            return
        if gap:
            self._on_gap()
        for event in events:
            self._on_event(event)

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                await self._serve()
            except Exception as exc:  # whatever broke, the remedy is a new connection
                _log.warning("notification bus lost PostgreSQL (%s); reconnecting", exc)
            self._drop()
            while True:
                await asyncio.sleep(delay)
                try:
                    await self._connect()
                except StorageError:
                    delay = min(delay * 2, 2.0)
                    continue
                break
            delay = 0.1
            self.reconnects += 1
            self._on_gap()  # events may have been lost while we were away: resync locally
            self._wake.set()

    async def _serve(self) -> None:
        """Send queued events until the connection fails."""
        while True:
            if self._lost.is_set() or not self.connected:
                raise StorageError("connection closed")
            if not self._queue and not self._overflowed:
                self._wake.clear()
                lost = asyncio.ensure_future(self._lost.wait())
                woken = asyncio.ensure_future(self._wake.wait())
                done, pending = await asyncio.wait(
                    {lost, woken}, timeout=self._ping_seconds, return_when=asyncio.FIRST_COMPLETED
                )
                for task in pending:
                    task.cancel()
                if not done:
                    await self._ping()
                continue
            await self._send_batch()

    async def _ping(self) -> None:
        assert self._conn is not None
        async with timeout(self._ping_seconds):
            await self._conn.fetchval("SELECT 1")

    async def _send_batch(self) -> None:
        assert self._conn is not None
        lines = [self.instance]
        if self._overflowed:
            lines.append("g")
        size = len(lines[0]) + 2
        count = 0
        for item in self._queue:
            if size + len(item) + 1 > MAX_PAYLOAD:
                break
            lines.append(item)
            size += len(item) + 1
            count += 1
        # Removed from the queue only once sent: a failure keeps them for the next connection.
        async with timeout(self.settings.statement_timeout_seconds):
            await self._conn.execute("SELECT pg_notify($1, $2)", CHANNEL, "\n".join(lines))
        for _ in range(count):
            self._queue.popleft()
        self._overflowed = False
        self.sent_notifies += 1


__all__ = ["CHANNEL", "MailboxEvent", "PgNotificationBus", "decode"]
