"""``Client.update_keys_if_due``: key update proposals at the agreed rate, never in the middle
of a livestream (the hub cannot encrypt in a group with a proposal it has not folded yet, so
the stream would end). The relay and MLS paths: ``tests/e2e/test_e2e_pcs.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from privastead.client.app import Client
from privastead.client.device import DataDir
from privastead.clock import FakeClock


def _client(tmp_path: Path, clock: FakeClock) -> tuple[Any, list[float]]:
    client: Any = Client.__new__(Client)
    client.data = DataDir(tmp_path)
    client.data.prepare()
    client.clock = clock
    client.update_interval = 3600.0
    client.watching = 0
    proposed: list[float] = []

    async def propose() -> int:
        proposed.append(clock.time())
        return 3

    client.propose_updates = propose
    return client, proposed


async def test_updates_wait_for_an_open_livestream(tmp_path: Path, clock: FakeClock) -> None:
    client, proposed = _client(tmp_path, clock)
    client.watching = 1
    assert await client.update_keys_if_due() == 0 and proposed == []
    client.watching = 0  # the stream ended: the next round sends them
    assert await client.update_keys_if_due() == 3 and proposed == [clock.time()]


async def test_updates_keep_their_rate(tmp_path: Path, clock: FakeClock) -> None:
    client, proposed = _client(tmp_path, clock)
    assert await client.update_keys_if_due() == 3
    clock.advance(3599)
    assert await client.update_keys_if_due() == 0
    clock.advance(2)
    assert await client.update_keys_if_due() == 3 and len(proposed) == 2
