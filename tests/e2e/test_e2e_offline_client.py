"""A client that was away while a lot happened catches up in one sync.

Real processes on loopback: `privastead-server serve` (default message TTL, 7 days: nothing
here comes near it, what matters is how much piles up, not wall time), `privastead-camsim`
(demo scene: a person walks through from 4.5 s to 11.5 s of every 14 s loop), `privastead-hub
run|pair|devices remove` and `privastead-app sync`. While `phone-a` stays offline (it neither
syncs nor listens), the hub records at least three clips, each after its own self-update
commit, `phone-b` stays online (and proposes updates, which the hub commits), `phone-c` is
removed and `phone-d` is paired: commits of every kind pile up in A's mailboxes. Then one
`privastead-app sync` on A brings every clip, byte-identical to the hub's recordings, each
exactly once, with no resync or re-add.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from e2e_harness import Home, app_cmd, hub_cmd, run, scan_for_plaintext, sync_until

from privastead.client.clipstore import ClipStore
from privastead.client.device import DataDir
from privastead.client.eventlog import ClipState, EventLog, EventRecord
from privastead.clock import SystemClock
from privastead.crypto import Identity

pytestmark = pytest.mark.slow

CLIPS = 3


def _events(client: Path) -> list[EventRecord]:
    with EventLog(client / "events.db", clock=SystemClock()) as log:
        return log.events()


def _events_group(client: Path) -> tuple[int, int]:
    """(epoch, devices) of ``client``'s view of the `events` group."""
    data = DataDir(client)
    entry = next(g for g in data.load().groups if g.group == "events")
    with Identity.open(data.mls / entry.state) as ident:
        return ident.epoch(entry.group_id), len(ident.members(entry.group_id)) - 1


def _has_clips(n: int):  # type: ignore[no-untyped-def]
    return lambda syncers: all(
        sum(1 for r in s.events.events() if r.clip_state is ClipState.COMPLETE) >= n
        for s in syncers
    )


def _all_recorded(home: Home, n: int):  # type: ignore[no-untyped-def]
    def done(syncers) -> bool:  # type: ignore[no-untyped-def]
        have = sum(1 for r in syncers[0].events.events() if r.clip_state is ClipState.COMPLETE)
        return have >= n and have == len(home.recorded_clips())

    return done


async def test_an_offline_client_catches_up_with_everything_in_one_sync(home: Home) -> None:
    a, b, c, d = (home.root / f"phone-{x}" for x in "abcd")
    for client in (a, b, c):
        home.pair(client, client.name)
    home.start_hub()
    # B online: it syncs (and sends its update proposals) all along.
    await sync_until([b], _has_clips(1), limit=90)
    removed = run(hub_cmd("devices", "remove", "phone-c", "--config", str(home.config)))
    assert removed.returncode == 0, removed.stderr + home.hub_log.read_text()[-3000:]
    home.pair(d, "phone-d")  # through the running hub's admin socket
    await sync_until([b, d], _has_clips(1), limit=60)
    # Stop between two events, once B holds every clip the hub recorded: a clip still being
    # recorded or sent when the hub stops goes out at its next start (its outbox keeps it),
    # not into this test's one sync.
    await sync_until([b], _all_recorded(home, CLIPS), limit=120)
    home.stop_hub()
    recorded = [p.read_bytes() for p in home.recorded_clips()]
    assert len(recorded) >= CLIPS, home.hub_log.read_text()[-3000:]
    assert _events(a) == []  # A really was away
    away_epoch, _ = _events_group(a)
    await sync_until([b], lambda s: True, limit=5)
    hub_epoch, _ = _events_group(b)  # B is up to date with the hub
    # A self-update per clip, C's removal and D's addition at least (B's updates come on top).
    assert hub_epoch >= away_epoch + len(recorded) + 2, (away_epoch, hub_epoch)

    # A comes back: one sync.
    synced = run(app_cmd("sync", "--data-dir", str(a)))
    assert synced.returncode == 0, synced.stderr
    print(f"after {hub_epoch - away_epoch} epochs and {len(recorded)} clips: {synced.stdout}")
    out = synced.stdout + synced.stderr
    assert "resync" not in out.lower() and "re-add" not in out.lower(), out
    events = _events(a)
    complete = [r for r in events if r.clip_state is ClipState.COMPLETE]
    # Every clip the hub recorded, byte for byte, each exactly once.
    assert len(complete) == len(events) == len(recorded), (out, events)
    assert len({r.event_id for r in complete}) == len({r.clip_id for r in complete}) == len(events)
    got = Counter(r.clip_path.read_bytes() for r in complete if r.clip_path is not None)
    assert got == Counter(recorded)
    assert all(r.at is not None and r.score is not None for r in complete)  # notifications too
    assert ClipStore(a / "clips").incomplete() == []
    assert _events_group(a) == (hub_epoch, 3)  # A, B and D: C is gone, D is in
    assert sorted(p.name for p in (a / "clips").rglob("*.mp4")) == sorted(
        r.clip_path.name for r in complete if r.clip_path is not None
    )
    # Nothing asked the hub to resend or re-add: A followed every epoch in order.
    resync = DataDir(a).sync / "resync.json"
    assert not resync.exists() or not json.loads(resync.read_text()).get("requests"), (
        resync.read_text()
    )

    # A second sync finds nothing new: nothing was left behind or is handed over twice.
    again = run(app_cmd("sync", "--data-dir", str(a)))
    assert again.returncode == 0 and " 0 new" in again.stdout, again.stdout + again.stderr
    assert len(_events(a)) == len(events)
    assert not scan_for_plaintext(home.relay.data_dir)
