"""Ingest from a real RTSP server, then ring, fMP4 clips and thumbnails from those packets."""

from __future__ import annotations

import itertools
from pathlib import Path

import av
import pytest

from privastead.media.ingest import MediaPacket, StreamInfo
from privastead.media.recorder import ClipWriter
from privastead.media.ring import PacketRing
from privastead.media.thumbnail import thumbnail_from_packets
from support.rtsp import box_stream, capture


@pytest.fixture(scope="module", params=["h264", "h265"])
def captured(request: pytest.FixtureRequest) -> tuple[StreamInfo, list[MediaPacket]]:
    """~4.5 s of a 15 fps stream with a 1 s GOP, read over RTSP by the ingest."""
    return capture(box_stream(request.param, duration=2.0, motion=(0.5, 1.5)), 4.5)


def test_ingest_timeline_starts_on_a_keyframe_and_increases(captured) -> None:  # type: ignore[no-untyped-def]
    info, packets = captured
    assert packets[0].keyframe and packets[0].kind == "video"
    times = [p.pts for p in packets]
    assert all(b > a for a, b in itertools.pairwise(times))
    assert info.codec in ("h264", "hevc")
    # 15 fps: frame steps of 1/15 s on the continuous timeline
    assert abs((times[-1] - times[0]) / (len(times) - 1) - 1 / 15) < 1e-3


def test_ring_keeps_pre_roll_from_a_keyframe(captured) -> None:  # type: ignore[no-untyped-def]
    _, packets = captured
    ring = PacketRing(keep_seconds=2.0)
    for p in packets:
        ring.push(p)
    newest = packets[-1].pts
    assert ring.oldest is not None and ring.oldest <= newest - 2.0
    assert ring.span < 2.0 + 1.0 + 1e-6  # at most pre-roll + one GOP
    window = ring.since(newest - 2.0)
    assert window[0].keyframe and window[0].pts <= newest - 2.0
    small = PacketRing(keep_seconds=10.0, max_bytes=1)  # byte bound wins: one GOP left
    for p in packets:
        small.push(p)
    assert sum(1 for p in small.since(0.0) if p.keyframe) == 1


def test_clip_is_fragmented_mp4_that_decodes_back(captured, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    info, packets = captured
    ring = PacketRing(keep_seconds=1.0)
    trigger_index = 35
    for p in packets[:trigger_index]:
        ring.push(p)
    trigger = packets[trigger_index].pts
    fragments: list[tuple[str, int, bytes, bool]] = []
    writer = ClipWriter(
        "clip1", info, tmp_path / "clip1.mp4", on_fragment=lambda *a: fragments.append(a)
    )
    pre = ring.since(trigger - 1.0)
    for p in pre + packets[trigger_index:]:
        writer.write(p)
    summary = writer.close()
    data = (tmp_path / "clip1.mp4").read_bytes()
    assert not (tmp_path / "clip1.mp4.part").exists()
    assert data == b"".join(f[2] for f in fragments)
    assert [f[1] for f in fragments] == list(range(len(fragments)))
    assert fragments[0][3] and not any(f[3] for f in fragments[1:])
    assert fragments[0][2][4:8] == b"ftyp" and fragments[1][2][4:8] == b"moof"
    assert len(fragments) >= 3  # init + one fragment per 1 s GOP
    expected = len(pre) + len(packets) - trigger_index
    assert summary.video_frames == expected
    assert summary.start <= trigger - 1.0
    with av.open(str(tmp_path / "clip1.mp4")) as clip:
        stream = clip.streams.video[0]
        if info.codec == "hevc":
            assert stream.codec_context.codec_tag == "hvc1"
        frames = list(clip.decode(stream))
    assert len(frames) == expected
    assert frames[0].key_frame
    assert abs(frames[-1].time - (summary.end - summary.start)) < 1e-3


def test_thumbnail_is_a_small_jpeg(captured) -> None:  # type: ignore[no-untyped-def]
    info, packets = captured
    jpeg = thumbnail_from_packets(info, packets[:30], packets[20].pts, width=160)
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
    with av.open(__import__("io").BytesIO(jpeg), format="jpeg_pipe") as image:
        frame = next(image.decode(video=0))
    assert (frame.width, frame.height) == (160, 120)


def test_aac_audio_is_ingested_and_copied_into_the_clip(tmp_path: Path) -> None:
    from privastead.camsim.audio import tone

    info, packets = capture(box_stream("h264", duration=2.0), 2.5, audio=tone(2.0))
    assert info.audio is not None and info.audio.codec_context.sample_rate == 16000
    assert (info.width, info.height) == (320, 240)
    audio = [p for p in packets if p.kind == "audio"]
    video = [p for p in packets if p.kind == "video"]
    assert len(audio) > 20 and len(video) > 30
    writer = ClipWriter("av", info, tmp_path / "av.mp4")
    for p in packets:
        writer.write(p)
    summary = writer.close()
    assert summary.audio_packets > 20
    with av.open(str(summary.path)) as clip:
        assert clip.streams.audio[0].codec_context.name == "aac"
        audio_frames = sum(1 for _ in clip.decode(audio=0))
    with av.open(str(summary.path)) as clip:
        video_frames = sum(1 for _ in clip.decode(video=0))
    assert audio_frames == summary.audio_packets
    assert video_frames == summary.video_frames
