"""Mailbox wake-ups shared by relay processes: the local ``Notifier`` over the PostgreSQL bus.

``BusWakeups`` is the notifier's ``Remote``: an event published by this process (a stored
message, a deleted mailbox) goes on the bus as ids only (mailbox id and seq, or "deleted");
the other processes turn it back into the same event and deliver it to their own WebSocket
subscribers and long-polls. When the bus may have lost events (its connection broke, its
queue overflowed somewhere), every local subscriber is told to resync and every long-poll
re-checks its mailbox: the mailbox is the source of truth, a lost wake-up costs latency only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from privastead.relay.backends.bus import MailboxEvent, PgNotificationBus
from privastead.relay.backends.settings import PostgresSettings
from privastead.relay.notify import Notifier

_log = logging.getLogger(__name__)


def to_bus(mailbox: str, event: dict[str, Any]) -> MailboxEvent | None:
    """The ids of a local event, or None for an event other processes have no use for."""
    kind = event.get("type")
    if kind == "message":
        seq = event.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool) and seq > 0:
            return MailboxEvent("message", mailbox, seq)
        return None
    if kind == "deleted":
        return MailboxEvent("deleted", mailbox)
    return None


def to_local(event: MailboxEvent) -> dict[str, Any]:
    """The event a local subscriber gets, the same as if this process had stored it."""
    if event.kind == "message":
        return {"type": "message", "mailbox": event.mailbox, "seq": event.seq}
    return {"type": "deleted", "mailbox": event.mailbox}


class BusWakeups:
    """``await start()`` after the notifier exists, ``await stop()`` at shutdown."""

    def __init__(
        self,
        notifier: Notifier,
        settings: PostgresSettings,
        *,
        env: Mapping[str, str] | None = None,
        ping_seconds: float = 10.0,
    ) -> None:
        self._notifier = notifier
        self.bus = PgNotificationBus(
            settings, self._heard, notifier.resync, env=env, ping_seconds=ping_seconds
        )

    async def start(self) -> None:
        await self.bus.start()
        self._notifier.attach(self)

    async def stop(self) -> None:
        self._notifier.attach(None)
        await self.bus.stop()

    def forward(self, mailbox: str, event: dict[str, Any]) -> None:
        out = to_bus(mailbox, event)
        if out is None:
            _log.debug("event %r is not shared with other relay processes", event.get("type"))
            return
        self.bus.publish(out)

    def _heard(self, event: MailboxEvent) -> None:
        self._notifier.deliver(event.mailbox, to_local(event))


__all__ = ["BusWakeups", "to_bus", "to_local"]
