"""A hub restart loses nothing clients still need: a message the relay dropped is resent by the
restarted hub (its resend index is on disk), and a clip cut by ``kill -9`` mid-recording ends
cleanly at clients as "incomplete, hub restarted" instead of waiting forever."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import av
import pytest
from e2e_harness import Home, app_cmd, free_port, run, sync_until

from privastead.client.clipstore import ClipStore
from privastead.client.device import DataDir
from privastead.client.eventlog import ClipState, EventLog
from privastead.clock import SystemClock
from privastead.media.fmp4 import BoxSplitter
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


def _pieces(data: bytes) -> list[bytes]:
    """The complete fMP4 pieces (init, then moof+mdat) in ``data``."""
    pieces: list[bytes] = []
    BoxSplitter(lambda piece, _init: pieces.append(piece)).write(data)
    return pieces


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


async def test_hub_killed_mid_recording_ends_the_clip_cleanly(home: Home) -> None:
    home.config.write_text(
        home.config.read_text().replace(
            "keep_plaintext_clips = true", "keep_plaintext_clips = false"
        )
    )
    client = home.root / "phone"
    home.pair(client, "phone")
    clips = home.data / "clips"
    journals = home.data / "open-clips"
    home.start_hub()

    def recording() -> Path | None:
        for part in clips.glob("*/*.mp4.part"):
            if len(_pieces(part.read_bytes())) >= 4:  # init + 3 fragments: 0..1 went out
                return part
        return None

    assert await _until_async(lambda: recording() is not None, 120), home.hub_log.read_text()[
        -3000:
    ]
    home.kill_hub()
    part = recording()
    assert part is not None, "the clip ended before the kill: nothing was tested"
    assert list(journals.iterdir()), "no journal for the open clip"
    recorded = _pieces(part.read_bytes())
    home.start_hub()
    data = DataDir(client)

    def done(syncers) -> bool:  # type: ignore[no-untyped-def]
        states = [r.clip_state for r in syncers[0].events.events()]
        return ClipState.INCOMPLETE in states and ClipState.COMPLETE in states

    syncers = await sync_until([client], done, limit=150)
    home.stop_hub()
    log = home.hub_log.read_text()
    assert syncers
    with EventLog(data.events_db, clock=SystemClock()) as events:
        rows = events.events()
    cut = [r for r in rows if r.clip_state is ClipState.INCOMPLETE]
    whole = [r for r in rows if r.clip_state is ClipState.COMPLETE]
    assert len(cut) == 1 and whole, (rows, log[-3000:])
    clip_ids = [r.clip_id for r in rows if r.clip_id is not None]
    assert len(clip_ids) == len(set(clip_ids))  # each clip once
    # The cut clip is exactly the recorded pieces up to the restart, the held one included,
    # each once, and it plays.
    assert cut[0].clip_path is not None
    got = cut[0].clip_path.read_bytes()
    assert got in {b"".join(recorded[:n]) for n in range(4, len(recorded) + 1)}
    assert _pieces(got) == recorded[: len(_pieces(got))]
    assert _frames(cut[0].clip_path) > 0
    out = home.root / "cut.mp4"
    exported = run(app_cmd("clip", cut[0].event_id, "--out", str(out), "--data-dir", str(client)))
    assert exported.returncode == 0 and "incomplete" in exported.stdout, exported.stderr
    assert out.read_bytes() == got
    record = ClipStore(data.clips).record(cut[0].clip_id or "")
    assert record is not None and record.ended == "hub_restarted"
    # The next event's clip is whole and plays; the hub keeps no plaintext clip.
    assert whole[0].clip_path is not None and _frames(whole[0].clip_path) > 0
    assert list(clips.rglob("*.mp4*")) == [], log[-3000:]
    assert list(journals.iterdir()) == []
