"""The hub's ingest and recorder against a third-party RTSP server (GStreamer, Debian)."""

from __future__ import annotations

import time
from pathlib import Path

import av
import pytest

from privastead.media.ingest import Ingest, IngestEvent, MediaPacket, StreamInfo
from privastead.media.recorder import ClipWriter
from privastead.ports import free_port
from support.procs import gstreamer, gstreamer_available
from support.rtsp import box_stream

pytestmark = pytest.mark.gstreamer


def test_ingest_and_clip_from_gstreamer_rtsp_server(tmp_path: Path) -> None:
    missing = gstreamer_available()
    if missing:
        pytest.skip(missing)
    stream = box_stream("h264", duration=2.0, motion=(0.5, 1.5))
    h264 = tmp_path / "clip.h264"
    h264.write_bytes(b"".join(u.data for u in stream.units))
    port = free_port()
    events: list[IngestEvent] = []
    with gstreamer(port, h264, float(stream.fps)) as server:
        ingest = Ingest(server.urls[0], events.append)
        ingest.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            video = [e for e in events if isinstance(e, MediaPacket) and e.kind == "video"]
            if len(video) >= 40:
                break
            time.sleep(0.05)
        health = ingest.health()
        ingest.stop()
    info = next(e for e in events if isinstance(e, StreamInfo))
    video = [e for e in events if isinstance(e, MediaPacket) and e.kind == "video"]
    assert len(video) >= 40, f"only {len(video)} packets; health {health}"
    assert info.codec == "h264" and (info.width, info.height) == (320, 240)
    assert video[0].keyframe
    writer = ClipWriter("g", info, tmp_path / "g.mp4")
    for packet in video:
        writer.write(packet)
    summary = writer.close()
    with av.open(str(summary.path)) as clip:
        frames = list(clip.decode(video=0))
    assert len(frames) == summary.video_frames == len(video)
    assert frames[0].key_frame


@pytest.mark.slow
async def test_hub_records_an_event_from_gstreamer(tmp_path: Path) -> None:
    missing = gstreamer_available()
    if missing:
        pytest.skip(missing)
    import asyncio
    import json

    from privastead.camsim.encoder import encode
    from privastead.camsim.scene import make_scene
    from privastead.hub.capture.runner import HubRunner
    from privastead.hub.config import CameraConfig, HubConfig, HubSection
    from privastead.media.settings import EventSettings

    scene = make_scene("demo", width=320, height=180, fps=10, duration=14)  # walk: 4.5-11.5 s
    stream = await asyncio.to_thread(encode, scene, "h264")
    h264 = tmp_path / "demo.h264"
    h264.write_bytes(b"".join(u.data for u in stream.units))
    port = free_port()
    with gstreamer(port, h264, 10.0) as server:
        camera = CameraConfig(
            name="gst",
            url=server.urls[0],
            decode="keyframes",
            events=EventSettings(pre_roll=2.0, post_roll=1.0),
        )
        runner = HubRunner(HubConfig(HubSection(data_dir=tmp_path, status_interval=0), (camera,)))
        task = asyncio.create_task(runner.run())
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            if "gst" in runner.cameras and runner.cameras["gst"].stats.clips:
                break
            await asyncio.sleep(0.2)
        runner.stop()
        await asyncio.wait_for(task, 20)
    sidecar = next((tmp_path / "clips").glob("*/gst-*.json"))
    meta = json.loads(sidecar.read_text())
    assert meta["completed"] and meta["clip_start"] <= meta["event_start"] - 2.0 + 1e-6
    with av.open(str(sidecar.with_suffix(".mp4"))) as clip:
        frames = list(clip.decode(video=0))
    assert frames[0].key_frame and len(frames) == meta["frames"]
    assert sidecar.with_suffix(".jpg").stat().st_size > 500
