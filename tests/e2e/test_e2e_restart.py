"""A hub restart loses nothing clients still need: a message the relay dropped is resent by the
restarted hub (its resend index is on disk), and a clip cut by ``kill -9`` mid-recording ends
cleanly at clients as "incomplete, hub restarted" instead of waiting forever."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest
from e2e_harness import Home, free_port, sync_until

from support.faulty_relay import FaultyRelay

pytestmark = pytest.mark.slow


async def _until_async(predicate, limit: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.3)
    return False


async def _stop_hub(home: Home) -> None:
    """SIGTERM, waiting without blocking the loop (the fault proxy runs on it)."""
    assert home.hub is not None
    home.hub.send_signal(signal.SIGTERM)
    assert await _until_async(lambda: home.hub is not None and home.hub.poll() is not None, 60)
    home.hub = None


def _mailbox(home: Home, key: str) -> str:
    return str(json.loads((home.data / "groups.json").read_text())[key]["mailbox"])


async def test_resend_after_a_hub_restart(home: Home) -> None:
    client = home.root / "phone"
    home.pair(client, "phone")
    events = _mailbox(home, "door/events")
    proxy = FaultyRelay(home.relay.url, events, drop={3})
    url = await proxy.start(free_port())
    home.config.write_text(home.config.read_text().replace(home.relay.url, url))
    queued = home.data / "outbox" / events
    try:
        home.start_hub()

        def clip_uploaded() -> bool:
            ended = list((home.data / "clips").glob("*/*.json"))
            return bool(ended) and proxy.count > 4 and not list(queued.glob("*.msg"))

        assert await _until_async(clip_uploaded, 120), home.hub_log.read_text()[-3000:]
        await _stop_hub(home)  # no client has asked for anything yet
        assert proxy.done == [("drop", 3)]
        first_run = home.hub_log.read_text()
        home.start_hub()

        def done(syncers) -> bool:  # type: ignore[no-untyped-def]
            receiver = syncers[0].groups[0].receiver
            return receiver.tracker.high_water >= 4 and not receiver.tracker.missing()

        syncers = await sync_until([client], done, limit=120)
        await _stop_hub(home)
    finally:
        await proxy.stop()
    tracker = syncers[0].groups[0].receiver.tracker
    log = home.hub_log.read_text()[len(first_run) :]
    assert tracker.high_water >= 4 and tracker.missing() == (), log[-3000:]
    assert "no longer held" not in log
