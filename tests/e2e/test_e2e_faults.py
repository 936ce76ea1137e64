"""A relay that drops, duplicates and reorders the hub's messages is detected and survived:
the client notices the gap by sequence number, asks the hub to resend, ignores the duplicate,
puts the reordered fragment in place, and ends with the exact recorded clip."""

from __future__ import annotations

import json

import pytest
from e2e_harness import Home, free_port, sync_until

from privastead.client.eventlog import ClipState, EventLog
from privastead.clock import SystemClock
from support.faulty_relay import FaultyRelay

pytestmark = pytest.mark.slow


async def test_drops_duplicates_and_reordering_are_detected_and_repaired(home: Home) -> None:
    client = home.root / "phone"
    home.pair(client, "phone")
    events_mailbox = json.loads((home.data / "groups.json").read_text())["door/events"]["mailbox"]
    proxy = FaultyRelay(home.relay.url, events_mailbox, drop={3}, duplicate={5}, swap={7})
    url = await proxy.start(free_port())
    home.config.write_text(home.config.read_text().replace(home.relay.url, url))
    try:
        home.start_hub()

        def done(syncers) -> bool:  # type: ignore[no-untyped-def]
            return (
                len(proxy.done) == 3
                and not syncers[0].groups[0].receiver.tracker.missing()
                and any(r.clip_state is ClipState.COMPLETE for r in syncers[0].events.events())
            )

        syncers = await sync_until([client], done, limit=150)
        home.stop_hub()
    finally:
        await proxy.stop()
    assert sorted(kind for kind, _ in proxy.done) == ["drop", "duplicate", "swap"]
    tracker = syncers[0].groups[0].receiver.tracker
    assert tracker.missing() == (), home.hub_log.read_text()[-3000:]
    with EventLog(client / "events.db", clock=SystemClock()) as log:
        clips = [r for r in log.events() if r.clip_state is ClipState.COMPLETE]
    assert clips, home.hub_log.read_text()[-3000:]
    recorded = {p.read_bytes() for p in home.recorded_clips()}
    for record in clips:
        assert record.clip_path is not None and record.clip_path.read_bytes() in recorded
