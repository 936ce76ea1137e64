"""The budget leases of relay processes sharing one PostgreSQL (``backends/pg_leases.py``),
against a real server: two pools play two processes racing for an account's last slots, the
renewal keeps a live process's leases, a clean stop gives them back at once, and with the
database gone a process fails open to its own share (without asking the database again for a
moment) and writes its leases again afterwards (a crash empties the UNLOGGED table). Expiry
after a process is killed is tested with real relay processes in
``tests/relay/test_relay_shared_budgets.py``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from privastead.clock import SYSTEM_CLOCK, FakeClock
from privastead.devcluster.postgres import PostgresServer
from privastead.errors import RelayRejectedError
from privastead.relay.accounts import Principal
from privastead.relay.backends import pg_leases
from privastead.relay.backends.pg import PgDatabase
from privastead.relay.backends.pg_leases import PgLeases
from privastead.relay.backends.settings import PostgresSettings
from privastead.relay.budgets import Budget
from support.postgres import settings_for

SHARE = 3


def _principal(account: str = "home", token: str = "t1") -> Principal:
    return Principal(account=account, kind="owner", token_id=token, device_id="d")


async def _rows(db: PgDatabase, account: str = "home") -> int:
    return int(
        await db.read(
            lambda c: c.fetchval("SELECT count(*) FROM budget_leases WHERE account = $1", account)
        )
    )


@pytest.fixture
async def two_processes(
    pg_settings: PostgresSettings,
) -> AsyncIterator[tuple[PgDatabase, PgDatabase]]:
    first, second = PgDatabase(pg_settings), PgDatabase(pg_settings)
    await first.open()
    await second.open()
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_two_processes_racing_get_the_share_and_no_more(
    two_processes: tuple[PgDatabase, PgDatabase],
) -> None:
    one, two = (PgLeases(db, 30.0, SYSTEM_CLOCK) for db in two_processes)
    # Forty takes at once, alternating between the processes: exactly the share succeeds.
    got = await asyncio.gather(
        *((one if i % 2 else two).take("websockets", "home", SHARE) for i in range(40))
    )
    leases = [g for g in got if g is not None]
    assert len(leases) == SHARE
    assert await _rows(two_processes[0]) == SHARE
    # Other resources and other accounts have shares of their own.
    assert await one.take("waits", "home", SHARE) is not None
    assert await two.take("websockets", "neighbour", SHARE) is not None
    # A slot given back by one process is free for the other at once.
    mine = one if any(x in one._held for x in leases) else two
    other = two if mine is one else one
    mine.give_back(next(x for x in leases if x in mine._held))
    await mine.settled()
    assert await other.take("websockets", "home", SHARE) is not None
    assert await other.take("websockets", "home", SHARE) is None


async def test_renewed_leases_outlive_their_time_and_a_clean_stop_frees_them(
    two_processes: tuple[PgDatabase, PgDatabase],
) -> None:
    live = PgLeases(two_processes[0], 0.6, SYSTEM_CLOCK)
    other = PgLeases(two_processes[1], 0.6, SYSTEM_CLOCK)
    await live.start()
    try:
        for _ in range(SHARE):
            assert await live.take("waits", "home", SHARE) is not None
        await asyncio.sleep(1.5)  # the server's clock runs: 2.5 lease times, renewed meanwhile
        assert await other.take("waits", "home", SHARE) is None
    finally:
        await live.stop()
    assert await _rows(two_processes[0]) == 0
    assert await other.take("waits", "home", SHARE) is not None


async def test_without_the_database_a_process_keeps_its_own_share(
    postgres_factory: type,
) -> None:
    server: PostgresServer = postgres_factory()
    db = PgDatabase(settings_for(server))
    await db.open()
    clock = FakeClock()  # the pause after a failure; lease expiry is the server's clock
    leases = PgLeases(db, 30.0, clock)
    budget = Budget("websockets", per_account=SHARE, total=100, per_token=0, leases=leases)
    try:
        slots = [await budget.acquire(_principal())]
        server.kill9()
        # Fail open, to this process's own count: within the share it is served ...
        slots += [await budget.acquire(_principal()) for _ in range(SHARE - 1)]
        # ... and past it refused, as a relay on one process would.
        with pytest.raises(RelayRejectedError) as err:
            await budget.acquire(_principal())
        assert (err.value.status, err.value.code) == (429, "too_many_websockets")
        server.start()
        assert await _rows(db) == 0  # the crash emptied the UNLOGGED table
        # Shortly after a failure takes do not ask the database (no wait for its timeout) ...
        slots.pop().release()
        slots.append(await budget.acquire(_principal()))
        assert await _rows(db) == 0
        # ... afterwards they do again.
        clock.advance(pg_leases._PAUSE_SECONDS)
        slots.pop().release()
        slots.append(await budget.acquire(_principal()))
        assert await _rows(db) == 1
        # One renewal writes every held lease again.
        await leases.renew()
        assert await _rows(db) == SHARE
        slots.pop().release()
        await leases.settled()
        assert await _rows(db) == SHARE - 1
        for slot in slots:
            slot.release()
    finally:
        await leases.stop()
        await db.close()
