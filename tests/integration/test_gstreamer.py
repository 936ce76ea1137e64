"""The hub's ingest and recorder against a third-party RTSP server (GStreamer, Debian)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import av
import pytest

from privastead.media.ingest import Ingest, IngestEvent, MediaPacket, StreamInfo
from privastead.media.recorder import ClipWriter
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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
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
