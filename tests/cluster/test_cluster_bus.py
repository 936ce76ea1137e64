"""Mailbox wake-ups across relay processes over a real PostgreSQL's LISTEN/NOTIFY: delivery
to the others and not to the sender, batching, gaps after a crash, foreign payloads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from privastead.devcluster.postgres import PostgresServer
from privastead.relay.backends import pg
from privastead.relay.backends.bus import CHANNEL, MailboxEvent, PgNotificationBus, decode
from privastead.relay.backends.settings import PostgresSettings
from support.postgres import settings_for


@dataclass
class Heard:
    events: list[MailboxEvent] = field(default_factory=list)
    gaps: int = 0

    def bus(self, settings: PostgresSettings, **kwargs: object) -> PgNotificationBus:
        return PgNotificationBus(
            settings,
            self.events.append,
            self._gap,
            **kwargs,  # type: ignore[arg-type]
        )

    def _gap(self) -> None:
        self.gaps += 1


async def eventually(check: Callable[[], bool], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.01)


def mailbox(i: int) -> str:
    return f"{i:032x}"


@pytest.fixture
async def pair(
    pg_settings: PostgresSettings,
) -> AsyncIterator[tuple[Heard, PgNotificationBus, Heard, PgNotificationBus]]:
    a, b = Heard(), Heard()
    bus_a, bus_b = a.bus(pg_settings), b.bus(pg_settings)
    await bus_a.start()
    await bus_b.start()
    try:
        yield a, bus_a, b, bus_b
    finally:
        await bus_a.stop()
        await bus_b.stop()


async def test_events_reach_the_other_process_not_the_sender(
    pair: tuple[Heard, PgNotificationBus, Heard, PgNotificationBus],
) -> None:
    a, bus_a, b, bus_b = pair
    bus_a.publish(MailboxEvent("message", mailbox(1), 7))
    bus_b.publish(MailboxEvent("deleted", mailbox(2)))
    await eventually(lambda: len(a.events) == 1 and len(b.events) == 1)
    assert b.events == [MailboxEvent("message", mailbox(1), 7)]
    assert a.events == [MailboxEvent("deleted", mailbox(2))]
    await asyncio.sleep(0.2)  # and nothing else comes (the sender's own echo is dropped)
    assert len(a.events) == len(b.events) == 1


async def test_a_burst_is_sent_in_few_notifications_in_order(
    pair: tuple[Heard, PgNotificationBus, Heard, PgNotificationBus],
) -> None:
    _, bus_a, b, _ = pair
    sent = [MailboxEvent("message", mailbox(i % 50), i) for i in range(2000)]
    for event in sent:
        bus_a.publish(event)
    await eventually(lambda: len(b.events) == len(sent))
    assert b.events == sent
    # ~45 bytes an event, ~7.9 kB a notification: about 12 needed; never one per event.
    assert bus_a.sent_notifies <= 40


async def test_after_a_crash_every_process_resyncs_and_events_flow_again(
    postgres_factory: Callable[[], PostgresServer],
) -> None:
    server = postgres_factory()
    settings = settings_for(server)
    a, b = Heard(), Heard()
    bus_a, bus_b = a.bus(settings, ping_seconds=0.5), b.bus(settings, ping_seconds=0.5)
    await bus_a.start()
    await bus_b.start()
    try:
        server.kill9()
        await eventually(lambda: not bus_a.connected and not bus_b.connected)
        server.start()
        # Each process tells its own subscribers to re-list: events may have been lost.
        await eventually(lambda: a.gaps >= 1 and b.gaps >= 1)
        await eventually(lambda: bus_a.connected and bus_b.connected)
        bus_a.publish(MailboxEvent("message", mailbox(3), 1))
        bus_b.publish(MailboxEvent("message", mailbox(4), 2))
        await eventually(lambda: MailboxEvent("message", mailbox(3), 1) in b.events)
        await eventually(lambda: MailboxEvent("message", mailbox(4), 2) in a.events)
    finally:
        await bus_a.stop()
        await bus_b.stop()


async def cut(bus: PgNotificationBus, settings: PostgresSettings) -> None:
    """Kill this bus's own server session (a network cut for one relay process only)."""
    pid = bus.backend_pid
    assert pid is not None

    async def terminate(conn: pg.Connection) -> None:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)

    await pg.with_connection(settings, terminate)


async def test_events_published_while_cut_off_are_sent_after_reconnecting(
    pair: tuple[Heard, PgNotificationBus, Heard, PgNotificationBus],
    pg_settings: PostgresSettings,
) -> None:
    a, bus_a, b, _ = pair
    await cut(bus_a, pg_settings)
    sent = [MailboxEvent("message", mailbox(6), i) for i in range(5)]
    for event in sent:  # before bus a could notice and reconnect: queued
        bus_a.publish(event)
    await eventually(lambda: len(b.events) == len(sent))
    assert b.events == sent
    await eventually(lambda: a.gaps == 1)  # a resynced its own subscribers
    assert b.gaps == 0  # b was connected throughout: it missed nothing


async def test_overflow_while_cut_off_becomes_a_gap_for_everyone(
    pg_settings: PostgresSettings,
) -> None:
    a, b = Heard(), Heard()
    bus_a, bus_b = a.bus(pg_settings, max_queued=10), b.bus(pg_settings)
    await bus_a.start()
    await bus_b.start()
    try:
        await cut(bus_a, pg_settings)
        for i in range(25):
            bus_a.publish(MailboxEvent("message", mailbox(5), i))
        await eventually(lambda: len(b.events) == 10)
        assert [e.seq for e in b.events] == list(range(15, 25))  # the newest were kept
        await eventually(lambda: b.gaps == 1)  # told to resync for the 15 that were dropped
    finally:
        await bus_a.stop()
        await bus_b.stop()


async def test_foreign_and_malformed_notifications_are_ignored(
    pair: tuple[Heard, PgNotificationBus, Heard, PgNotificationBus],
    pg_settings: PostgresSettings,
) -> None:
    a, bus_a, b, _ = pair
    junk = [
        "hello",
        "0123456789abcdef\nm not-a-mailbox 1",
        f"0123456789abcdef\nm {mailbox(1)} -1",
        f"0123456789abcdef\nx {mailbox(1)}",
        f"0123456789abcdef\nm {mailbox(1)} 1 extra",
        "",
    ]

    async def notify(conn: pg.Connection) -> None:
        for payload in junk:
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)

    await pg.with_connection(pg_settings, notify)
    bus_a.publish(MailboxEvent("message", mailbox(9), 1))  # the bus still works afterwards
    await eventually(lambda: len(b.events) == 1)
    assert b.events == [MailboxEvent("message", mailbox(9), 1)]
    assert a.events == [] and a.gaps == 0


def test_decode_round_trip() -> None:
    events = [MailboxEvent("message", mailbox(1), 12), MailboxEvent("deleted", mailbox(2))]
    payload = "\n".join(["00112233aabbccdd", "g", *(e.encode() for e in events)])
    assert decode(payload) == ("00112233aabbccdd", events, True)
    assert decode("00112233aabbccdd\n" + events[0].encode().upper()) is None
