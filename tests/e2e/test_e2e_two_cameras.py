"""Two cameras on one hub: a livestream of one does not stall the other's events.

Real processes on loopback: `privastead-server serve`, one `privastead-camsim` (demo scene,
320x180 at 10 fps: a person walks through from 4.5 s to 11.5 s of every 14 s loop) read by the
hub as two cameras, `door` and `yard`, and `privastead-hub run`. One client, paired to both
cameras in one go, runs in this process: it watches `door` live (``open_live``) while its
receive loop (``sync_once`` on the same ``Client``, as the web UI does) takes in what the hub
sends. Checked: `yard`'s walk-through becomes a notification and a complete clip, byte-identical
to the hub's recording, while fragments of `door`'s livestream keep arriving before and after;
`door`'s own events go on during its livestream; the relay holds nothing readable.
"""

from __future__ import annotations

import asyncio
import io
import time

import av
import pytest
from e2e_harness import Home, scan_for_plaintext
from live_support import open_when_ready

from privastead.client.app import Client
from privastead.client.device import DataDir
from privastead.client.eventlog import ClipState, EventRecord
from privastead.clock import SystemClock

pytestmark = pytest.mark.slow

LIMIT = 75.0  # seconds of livestream at most (five walk-throughs); the test ends far sooner


def _add_camera(home: Home, name: str) -> None:
    """A second `[[cameras]]` entry reading the same camsim stream (as two cameras would)."""
    text = home.config.read_text()
    text += f'\n[[cameras]]\nname = "{name}"\nurl = "{home.camera_url}"\ndecode = "keyframes"\n'
    text += "\n[cameras.events]\npre_roll = 1.0\npost_roll = 1.0\n"
    home.config.write_text(text)


def _complete_after(syncer: Client, camera: str, since: float) -> list[EventRecord]:
    return [
        r
        for r in syncer.events.events(camera=camera)
        if r.at is not None and r.at >= since and r.clip_state is ClipState.COMPLETE
    ]


async def test_a_livestream_of_one_camera_and_events_of_the_other(home: Home) -> None:
    _add_camera(home, "yard")
    phone = home.root / "phone"
    home.pair(phone, "phone")  # no --camera: both cameras in one go
    home.start_hub()
    syncer = Client(DataDir(phone), clock=SystemClock())
    seen_note: dict[str, float] = {}  # event id -> when this client first had its notification
    seen_clip: dict[str, float] = {}  # event id -> when its clip was complete here
    try:
        stream, first, status = await open_when_ready(syncer, "door", seconds=LIMIT)
        watching_since = time.time()
        arrivals: list[float] = []  # when each livestream piece came
        got = bytearray(first)

        async def receive_loop() -> None:
            """The client's receive loop, sharing the Client with the livestream."""
            while True:
                await syncer.sync_once()
                now = time.time()
                for r in syncer.events.events():
                    if r.at is not None and r.at >= watching_since:
                        seen_note.setdefault(r.event_id, now)
                        if r.clip_state is ClipState.COMPLETE:
                            seen_clip.setdefault(r.event_id, now)
                if _complete_after(syncer, "yard", watching_since) and _complete_after(
                    syncer, "door", watching_since
                ):
                    return
                await asyncio.sleep(0.5)

        receiver = asyncio.create_task(receive_loop())
        try:
            async for piece in stream:
                got += piece
                arrivals.append(time.time())
                # A few more pieces after both clips are in (the stream outlived the event),
                # and at least 12 s of watching.
                if (
                    receiver.done()
                    and arrivals[-1] > max(seen_clip.values()) + 2.0
                    and arrivals[-1] - watching_since >= 12.0
                ):
                    break
        finally:
            await stream.aclose()
            if not receiver.done():
                receiver.cancel()
        ended = status.ended
        assert receiver.done() and not receiver.cancelled(), (ended, home.hub_log.read_text())
        receiver.result()
        events = syncer.events.events()
    finally:
        await syncer.close()
    home.stop_hub()
    log = home.hub_log.read_text()[-4000:]

    yard = [r for r in events if r.camera == "yard" and r.event_id in seen_clip]
    door = [r for r in events if r.camera == "door" and r.event_id in seen_clip]
    assert yard and door, ([(r.camera, r.at, r.clip_state) for r in events], log)
    # The livestream ran on around yard's event: pieces came before its notification and
    # after its clip was complete, and the client never had to wait for a keyframe again.
    note_at = min(seen_note[r.event_id] for r in yard)
    clip_at = min(seen_clip[r.event_id] for r in yard)
    assert any(t < note_at for t in arrivals), (arrivals[:3], note_at)
    assert any(t > clip_at for t in arrivals), (arrivals[-3:], clip_at)
    assert status.dropped == 0 and status.fragments >= 50, status
    with av.open(io.BytesIO(bytes(got)), mode="r") as played:
        frames = len(list(played.decode(played.streams.video[0])))
    assert frames >= 100  # over 12 s at 10 fps, decoded

    # Both cameras' events are what the hub recorded, under the right camera, in full.
    # (Both read one camsim stream, so their clips may be equal bytes: compare per camera,
    # by the hub's file names, which start with the camera's.)
    clips = home.recorded_clips()
    for r in yard + door:
        assert r.score is not None and r.clip_path is not None
        own = {p.read_bytes() for p in clips if p.name.startswith(f"{r.camera}-")}
        assert r.clip_path.read_bytes() in own, (r, [p.name for p in clips])
    assert not scan_for_plaintext(home.relay.data_dir)
