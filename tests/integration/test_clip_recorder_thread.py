"""The recording stage mux off the event loop (``hub.recording.clips`` + ``mux_thread``).

Packets from a real RTSP server are routed into a ``ClipRecorder`` the way the camera does it,
as event-loop callbacks, while the disk is slow (every fragment's write takes longer than the
loop guard's limit). The loop guard (autouse, ``tests/support/loop_guard.py``) fails the test
if any of that work runs on the loop. Also: the clip comes out whole and playable, and a mux
thread that falls too far behind ends the clip, counted, instead of queueing without end."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from privastead.hub.capture.camera import CameraStats
from privastead.hub.recording import clips
from privastead.hub.recording.clips import ClipRecorder
from privastead.media import recorder
from privastead.media.events import EventEnded, EventStarted
from privastead.media.ingest import MediaPacket, StreamInfo
from privastead.media.ring import PacketRing
from support.loop_guard import LIMIT, LoopGuard
from support.rtsp import box_stream, capture

EVENT = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def captured() -> tuple[StreamInfo, list[MediaPacket]]:
    """~4.5 s of a 15 fps H.264 stream with a 1 s GOP, read over RTSP by the ingest."""
    return capture(box_stream("h264", duration=2.0, motion=(0.5, 1.5)), 4.5)


@pytest.fixture
def slow_disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every fragment written to a clip file takes longer than the loop guard allows; the
    threads that wrote are listed."""
    writers: list[str] = []
    deliver = recorder._FragmentSplitter._deliver

    def slow(self: recorder._FragmentSplitter, data: bytes, is_init: bool) -> None:
        writers.append(threading.current_thread().name)
        time.sleep(LIMIT * 1.5)
        deliver(self, data, is_init)

    monkeypatch.setattr(recorder._FragmentSplitter, "_deliver", slow)
    yield writers


def _recorder(
    tmp_path: Path, info: StreamInfo, fragments: list[tuple[str, int, bool]]
) -> ClipRecorder:
    stats = CameraStats()
    rec = ClipRecorder(
        "porch",
        tmp_path / "clips",
        PacketRing(keep_seconds=3.0),
        stats,
        sink=None,
        fragments=lambda clip, index, data, is_init: fragments.append(
            (threading.current_thread().name, index, is_init)
        ),
        to_main_time=lambda t: t,
        substream=False,
    )
    rec.info = info
    return rec


async def _route(rec: ClipRecorder, packets: list[MediaPacket]) -> None:
    """Packets as the camera routes them: one loop callback each (ring, then recorder)."""
    loop = asyncio.get_running_loop()
    for packet in packets:
        loop.call_soon(rec.ring.push, packet)
        loop.call_soon(rec.push, packet)
        await asyncio.sleep(0)


async def test_a_slow_disk_never_holds_up_the_loop_and_the_clip_is_whole(
    captured: tuple[StreamInfo, list[MediaPacket]],
    tmp_path: Path,
    slow_disk: list[str],
    hub_loop_guard: LoopGuard,
) -> None:
    info, packets = captured
    fragments: list[tuple[str, int, bool]] = []
    rec = _recorder(tmp_path, info, fragments)
    trigger = 20
    await _route(rec, packets[:trigger])
    start = EventStarted(EVENT, packets[trigger].pts, (), 0.5)
    asyncio.get_running_loop().call_soon(rec.start, start, packets[trigger].pts - 1.0, start.at)
    await _route(rec, packets[trigger:])
    last = packets[-1].pts
    rec.event_ended(EventEnded(EVENT, last, start.at, 0.5, ()))
    await rec.close()

    assert hub_loop_guard.slow == []
    assert slow_disk and not any(name == threading.main_thread().name for name in slow_disk)
    assert {name for name, _, _ in fragments} == {"mux-porch"}
    assert [i for _, i, _ in fragments] == list(range(len(fragments)))
    assert rec.stats.clips == 1 and rec.stats.errors == 0
    (clip,) = rec.stats.clip_paths
    with av.open(str(clip)) as container:
        frames = list(container.decode(container.streams.video[0]))
    assert len(frames) >= len(packets) - trigger  # the pre-roll and every packet after it
    assert clip.with_suffix(".json").exists()


async def test_a_mux_thread_far_behind_ends_the_clip_counted(
    captured: tuple[StreamInfo, list[MediaPacket]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    info, packets = captured
    monkeypatch.setattr(clips, "MAX_BACKLOG", 10)
    fragments: list[tuple[str, int, bool]] = []
    rec = _recorder(tmp_path, info, fragments)
    await _route(rec, packets[:20])
    stalled = threading.Event()
    rec.start(EventStarted(EVENT, packets[20].pts, (), 0.5), packets[0].pts, packets[20].pts)
    rec.mux.put(stalled.wait)  # the disk hangs
    await _route(rec, packets[20:40])
    assert not rec.recording  # ended at the bound, not queued on
    assert rec.stats.errors == 1
    assert rec.mux.backlog <= 12  # the bound, plus the stalled job and the clip's close
    stalled.set()
    await rec.close()
    assert rec.stats.clips == 1  # what was written before the stall is a playable clip
    (clip,) = rec.stats.clip_paths
    with av.open(str(clip)) as container:
        assert list(container.decode(container.streams.video[0]))
