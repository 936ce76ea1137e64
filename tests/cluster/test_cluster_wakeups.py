"""Mailbox wake-ups across relay processes: two notifiers (two relay processes' worth), each
on its own bus connection to a real PostgreSQL. WebSocket subscribers and long-polls of one
process wake for messages stored by the other; a broken bus connection makes them resync."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from privastead.relay.backends import pg
from privastead.relay.backends.bus import MailboxEvent
from privastead.relay.backends.settings import PostgresSettings
from privastead.relay.backends.wakeups import BusWakeups, to_bus, to_local
from privastead.relay.notify import Notifier

BOX, OTHER = "a" * 32, "b" * 32


class Socket:
    """What a WebSocket subscription does with events: queue them."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def offer(self, event: dict[str, Any]) -> None:
        self.events.append(event)


async def eventually(check: Callable[[], bool], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def relays(
    pg_settings: PostgresSettings,
) -> AsyncIterator[tuple[Notifier, BusWakeups, Notifier, BusWakeups]]:
    a, b = Notifier(), Notifier()
    wake_a, wake_b = BusWakeups(a, pg_settings), BusWakeups(b, pg_settings)
    await wake_a.start()
    await wake_b.start()
    try:
        yield a, wake_a, b, wake_b
    finally:
        await wake_a.stop()
        await wake_b.stop()


def message(seq: int, box: str = BOX) -> dict[str, Any]:
    return {"type": "message", "mailbox": box, "seq": seq}


async def test_a_message_stored_on_one_process_wakes_subscribers_on_the_other(
    relays: tuple[Notifier, BusWakeups, Notifier, BusWakeups],
) -> None:
    a, _, b, _ = relays
    here, there, elsewhere = Socket(), Socket(), Socket()
    a.subscribe(BOX, here)
    b.subscribe(BOX, there)
    b.subscribe(OTHER, elsewhere)
    a.publish(BOX, message(1))
    a.publish(BOX, {"type": "deleted", "mailbox": BOX})
    await eventually(lambda: len(there.events) == 2)
    assert there.events[:2] == [message(1), {"type": "deleted", "mailbox": BOX}]
    # The sender's own subscribers got each event once: its echo on the bus is ignored. A
    # marker from b arrives on a's connection after that echo (NOTIFYs arrive in commit order).
    b.publish(BOX, message(9))
    await eventually(lambda: message(9) in here.events)
    assert here.events == [message(1), {"type": "deleted", "mailbox": BOX}, message(9)]
    assert elsewhere.events == []


async def test_a_long_poll_on_one_process_wakes_for_a_message_stored_on_the_other(
    relays: tuple[Notifier, BusWakeups, Notifier, BusWakeups],
) -> None:
    a, _, b, _ = relays
    async with b.waiting(BOX) as news:
        a.publish(BOX, message(7))
        assert await news.wait_for(20.0)


async def test_a_broken_bus_connection_makes_the_process_resync(
    relays: tuple[Notifier, BusWakeups, Notifier, BusWakeups], pg_settings: PostgresSettings
) -> None:
    """Events sent while b's connection was down are lost to b: its subscribers are told to
    list their mailboxes again, its long-polls re-check, and events flow again afterwards."""
    a, _, b, wake_b = relays
    there = Socket()
    b.subscribe(BOX, there)
    pid = wake_b.bus.backend_pid
    assert pid is not None

    async def terminate(conn: pg.Connection) -> None:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)

    async with b.waiting(OTHER) as news:
        await pg.with_connection(pg_settings, terminate)
        await eventually(lambda: {"type": "resync"} in there.events)
        assert news.event.is_set()  # the long-poll re-lists rather than wait for a lost event
    a.publish(BOX, message(2))
    await eventually(lambda: message(2) in there.events)


def test_only_ids_cross_between_processes() -> None:
    event = {"type": "message", "mailbox": BOX, "seq": 3, "push": "secret", "size": 10}
    assert to_bus(BOX, event) == MailboxEvent("message", BOX, 3)
    assert to_local(MailboxEvent("message", BOX, 3)) == message(3)
    assert to_bus(BOX, {"type": "deleted", "mailbox": BOX}) == MailboxEvent("deleted", BOX)
    # Nothing else is shared, and a malformed seq is not sent.
    assert to_bus(BOX, {"type": "resync"}) is None
    assert to_bus(BOX, {"type": "message", "mailbox": BOX, "seq": "3"}) is None
    assert to_bus(BOX, {"type": "message", "mailbox": BOX, "seq": True}) is None
