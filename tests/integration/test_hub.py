"""The hub end to end against real RTSP servers (privastead-camsim in subprocesses)."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import time
from pathlib import Path

import av
import pytest

from privastead.hub.capture.runner import HubRunner
from privastead.hub.config import CameraConfig, HubConfig, HubSection
from privastead.media.ingest import Ingest, IngestEvent, IngestSettings, MediaPacket
from privastead.media.settings import EventSettings
from privastead.ports import free_port
from support.procs import camsim

FAST = IngestSettings(
    open_timeout=3.0, read_timeout=2.0, stall_after=1.0, backoff_initial=0.2, backoff_max=1.0
)


async def _until(predicate, limit: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return False


@pytest.mark.slow
async def test_scripted_motion_becomes_a_clip_with_pre_and_post_roll(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    # demo scene, 14 s loop: a person walks through from 4.5 s to 11.5 s
    with camsim(free_port(), cache, scene="demo", size="320x180", fps=10, duration=14) as cam:
        events = EventSettings(pre_roll=2.0, post_roll=1.5)
        camera = CameraConfig(name="door", url=cam.urls[0], decode="keyframes", events=events)
        config = HubConfig(HubSection(data_dir=tmp_path, status_interval=0), (camera,))
        fragments: list[tuple[str, int, int, bool]] = []
        runner = HubRunner(
            config,
            ingest_settings=FAST,
            on_fragment=lambda c, i, d, init: fragments.append((c, i, len(d), init)),
        )
        task = asyncio.create_task(runner.run())
        done = await _until(
            lambda: "door" in runner.cameras and runner.cameras["door"].stats.clips >= 1, 45
        )
        status = runner.cameras["door"].status_line() if "door" in runner.cameras else ""
        runner.stop()
        await asyncio.wait_for(task, 20)
    assert done, f"no clip recorded; status: {status}"
    sidecars = sorted((tmp_path / "clips").glob("*/*.json"))
    meta = json.loads(sidecars[0].read_text())
    clip = sidecars[0].with_suffix(".mp4")
    assert meta["completed"] and meta["frames"] > 0 and meta["boxes"]
    # The event covers the walk (truth 4.5-11.5 s of the first loop), give or take detection lag.
    assert 3.5 <= meta["event_start"] <= 6.0
    assert meta["event_end"] >= 10.0
    # pre-roll: the clip starts on a keyframe at or before event start - pre_roll
    assert meta["clip_start"] <= meta["event_start"] - 2.0 + 1e-6
    assert meta["clip_end"] >= meta["event_end"] - 0.2
    with av.open(str(clip)) as container:
        frames = list(container.decode(video=0))
    assert frames[0].key_frame
    assert len(frames) == meta["frames"]
    assert abs(frames[-1].time - (meta["clip_end"] - meta["clip_start"])) < 0.05
    # fragments: one init segment, then media fragments, all handed over, concatenating to the file
    mine = [f for f in fragments if f[0] == meta["event_id"]]
    assert mine[0][3] and sum(f[2] for f in mine) == clip.stat().st_size
    thumb = clip.with_suffix(".jpg").read_bytes()
    with av.open(io.BytesIO(thumb), format="jpeg_pipe") as image:
        assert next(image.decode(video=0)).width == 320


@pytest.mark.slow
async def test_reconnect_hang_and_corruption_do_not_stop_other_cameras(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    port_a, port_b, port_c = free_port(), free_port(), free_port()
    received: dict[str, list[float]] = {"a": [], "b": [], "c": []}

    def sink(name: str):  # type: ignore[no-untyped-def]
        def put(event: IngestEvent) -> None:
            if isinstance(event, MediaPacket) and event.kind == "video":
                received[name].append(time.monotonic())

        return put

    a = camsim(port_a, cache).start()
    b = camsim(port_b, cache).start()
    c = camsim(port_c, cache, "--corrupt", "0.3").start()
    ingests = {
        n: Ingest(p.urls[0], sink(n), FAST, name=n) for n, p in (("a", a), ("b", b), ("c", c))
    }
    try:
        for ingest in ingests.values():
            ingest.start()
        assert await _until(lambda: all(len(v) > 10 for v in received.values()), 20)

        # a: killed and restarted -> reconnects and delivers again
        a.stop()
        assert await _until(lambda: ingests["a"].health().state == "reconnecting", 10)
        a = camsim(port_a, cache).start()
        mark = time.monotonic()
        assert await _until(lambda: received["a"][-1] > mark + 0.5, 20)
        assert ingests["a"].health().reconnects >= 1

        # b: hung (SIGSTOP) -> stalled within seconds, then the read timeout gives up on it
        b.signal(signal.SIGSTOP)
        hung = time.monotonic()
        assert await _until(lambda: ingests["b"].health().state == "stalled", 5)
        assert await _until(lambda: ingests["b"].health().state == "reconnecting", 15)
        detected = time.monotonic() - hung
        # meanwhile a and the corrupting c keep delivering
        assert received["a"][-1] > hung and received["c"][-1] > hung
        b.signal(signal.SIGCONT)
        mark = time.monotonic()
        assert await _until(lambda: received["b"][-1] > mark + 0.5, 20)
        assert detected < 15
        assert ingests["c"].health().state == "connected"
    finally:
        await asyncio.gather(*(asyncio.to_thread(i.stop) for i in ingests.values()))
        for proc in (a, b, c):
            proc.stop()


@pytest.mark.slow
async def test_hub_keeps_recording_a_corrupted_camera_alongside_a_clean_one(
    tmp_path: Path,
) -> None:
    """Two cameras in one hub: one sends corrupted packets, the other (detecting on its
    substream, recording its main stream) still gets its event clips, split at max_length."""
    cache = tmp_path / "cache"
    scene = {"scene": "demo", "fps": 10, "duration": 14}
    with (
        camsim(free_port(), cache, "--corrupt", "0.2", size="320x180", **scene) as bad,  # type: ignore[arg-type]
        camsim(free_port(), cache, "--sub", "160x90", size="320x180", **scene) as good,  # type: ignore[arg-type]
    ):
        events = EventSettings(pre_roll=1.0, post_roll=1.0)
        cameras = (
            CameraConfig(name="bad", url=bad.urls[0], decode="full", events=events),
            CameraConfig(
                name="good",
                url=good.urls[0],
                substream_url=good.urls[1],
                events=EventSettings(pre_roll=1.0, post_roll=1.0, max_length=3.0),
            ),
        )
        runner = HubRunner(
            HubConfig(HubSection(data_dir=tmp_path, status_interval=0), cameras),
            ingest_settings=FAST,
        )
        task = asyncio.create_task(runner.run())
        ok = await _until(
            lambda: "good" in runner.cameras and runner.cameras["good"].stats.clips >= 2, 45
        )
        bad_stats = runner.cameras["bad"].stats if "bad" in runner.cameras else None
        runner.stop()
        await asyncio.wait_for(task, 20)
    assert ok
    assert bad_stats is not None and bad_stats.frames_analysed > 50
    metas = sorted(
        (json.loads(p.read_text()) for p in (tmp_path / "clips").glob("*/good-*.json")),
        key=lambda m: m["clip_start"],
    )
    first, second = metas[0], metas[1]
    # detected on the substream, mapped onto the main stream's timeline: the walk starts at 4.5 s
    assert 3.5 <= first["event_start"] <= 6.0
    # the 3 s cap split the walk: the next clip continues from a keyframe at or before the cut
    assert first["event_end"] - first["event_start"] <= 3.0 + 0.2
    assert second["clip_start"] <= first["clip_end"] + 1e-6
    assert second["event_id"] != first["event_id"]
    for meta in (first, second):
        with av.open(str(next((tmp_path / "clips").glob(f"*/{meta['clip']}")))) as clip:
            stream = clip.streams.video[0]
            assert (stream.codec_context.width, stream.codec_context.height) == (320, 180)
            frames = list(clip.decode(stream))
        assert frames[0].key_frame and len(frames) == meta["frames"]


@pytest.mark.slow
async def test_hub_camera_survives_a_server_restart(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    port = free_port()
    cam = camsim(port, cache).start()
    camera = CameraConfig(name="gate", url=cam.urls[0], decode="full")
    runner = HubRunner(
        HubConfig(HubSection(data_dir=tmp_path, status_interval=0), (camera,)),
        ingest_settings=FAST,
    )
    task = asyncio.create_task(runner.run())
    try:
        assert await _until(
            lambda: "gate" in runner.cameras and runner.cameras["gate"].stats.frames_analysed > 10,
            20,
        )
        gate = runner.cameras["gate"]
        cam.stop()
        assert await _until(lambda: gate.health().state == "reconnecting", 10)
        before = gate.stats.frames_analysed
        cam = camsim(port, cache).start()
        assert await _until(lambda: gate.stats.frames_analysed > before + 10, 20)
        assert gate.health().state == "connected" and gate.health().reconnects >= 1
        assert "reconnects=" in gate.status_line()
    finally:
        runner.stop()
        await asyncio.wait_for(task, 20)
        cam.stop()
