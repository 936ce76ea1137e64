"""Continuous recording segments: cut on keyframes, private files, an index to seek in, and
what a crash leaves behind."""

from __future__ import annotations

import dataclasses
import io
import os
import stat
from pathlib import Path

import av
import pytest

from privastead.media.ingest import MediaPacket, StreamInfo
from privastead.media.segment_files import read_segment, recover
from privastead.media.segment_index import Segment, SegmentIndex
from privastead.media.segments import SegmentSettings, SegmentWriter
from support.frames import BoxSource
from support.packets import demux, encode_mp4, looped

WALL = 1_900_000_000.0


@pytest.fixture(scope="module")
def stream() -> tuple[StreamInfo, list[MediaPacket]]:
    """11 s of a 15 fps camera with a keyframe every second, arriving from ``WALL`` on."""
    info, packets = demux(encode_mp4(BoxSource(320, 240, 15, 3.0, motion=(0.5, 2.5)), gop=15))
    return info, looped(info, packets, 11.0, wall=WALL)


def _record(root: Path, stream: tuple[StreamInfo, list[MediaPacket]], seconds: float = 3.0):  # type: ignore[no-untyped-def]
    info, packets = stream
    index = SegmentIndex(root / "index.sqlite")
    writer = SegmentWriter(root, "porch", index, SegmentSettings(seconds=seconds))
    writer.start(info)
    done = [s for s in (writer.write(p) for p in packets) if s is not None]
    last = writer.close()
    return index, done + ([last] if last else [])


def _frames(path: Path, start: int = 0) -> list[av.VideoFrame]:
    data = path.read_bytes()
    if start:
        data = data[: data.index(b"moof") - 4] + data[start:]  # init + from that fragment on
    with av.open(io.BytesIO(data)) as container:
        return list(container.decode(video=0))


def test_segments_cut_on_keyframes_play_alone_and_add_up(
    tmp_path: Path, stream: tuple[StreamInfo, list[MediaPacket]]
) -> None:
    index, segments = _record(tmp_path, stream)
    assert [round(s.start - WALL, 2) for s in segments] == [0.0, 3.0, 6.0, 9.0]
    assert [round(s.duration, 2) for s in segments] == [3.0, 3.0, 3.0, 2.0]
    video = sum(1 for p in stream[1] if p.kind == "video")
    assert sum(s.frames for s in segments) == video  # nothing lost at the cuts
    for segment in segments:
        frames = _frames(tmp_path / segment.path)
        assert len(frames) == segment.frames and frames[0].key_frame
        assert frames[0].time == 0.0  # each file starts at zero
        assert read_segment(tmp_path, tmp_path / segment.path) == segment
    assert index.all() == segments


def test_files_are_private(tmp_path: Path, stream: tuple[StreamInfo, list[MediaPacket]]) -> None:
    os.umask(0o022)  # a permissive umask must not leak into the recordings
    _, segments = _record(tmp_path, stream)
    for segment in segments:
        path = tmp_path / segment.path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "index.sqlite").stat().st_mode) == 0o600


def test_the_index_finds_and_seeks_any_moment(
    tmp_path: Path, stream: tuple[StreamInfo, list[MediaPacket]]
) -> None:
    index, segments = _record(tmp_path, stream)
    assert index.between("porch", WALL + 2.5, WALL + 6.5) == segments[:3]
    assert index.between("garden", WALL, WALL + 20) == []
    found = index.at("porch", WALL + 7.4)
    assert found == segments[2]
    seconds, offset = found.seek(WALL + 7.4)
    assert seconds == pytest.approx(1.0)  # the keyframe at 7.0 s, one second into the segment
    frames = _frames(tmp_path / found.path, offset)
    assert frames[0].key_frame and frames[0].time == pytest.approx(1.0)
    assert index.total_bytes("porch") == sum(s.bytes for s in segments)
    assert index.oldest(1) == segments[:1]


def test_a_reconnect_ends_the_segment(
    tmp_path: Path, stream: tuple[StreamInfo, list[MediaPacket]]
) -> None:
    info, packets = stream
    writer = SegmentWriter(tmp_path, "porch", SegmentIndex(tmp_path / "i.sqlite"))
    writer.start(info)
    for p in packets[:40]:
        writer.write(p)
    ended = writer.start(dataclasses.replace(info, epoch=2))
    assert ended is not None and ended.frames == sum(1 for p in packets[:40] if p.kind == "video")
    assert writer.write(packets[41]) is None  # the old connection's packets are ignored


def test_a_crash_leaves_a_playable_segment_and_the_index_rebuilds(
    tmp_path: Path, stream: tuple[StreamInfo, list[MediaPacket]]
) -> None:
    info, packets = stream
    index = SegmentIndex(tmp_path / "index.sqlite")
    writer = SegmentWriter(tmp_path, "porch", index, SegmentSettings(seconds=60))
    writer.start(info)
    for p in packets[:100]:  # 6.6 s into a 60 s segment: the hub dies here
        writer.write(p)
    (part,) = tmp_path.glob("porch/*/*.mp4.part")
    with part.open("ab") as f:
        f.write(b"\x00\x00\x40\x00moof" + b"\x01" * 100)  # a torn write at the end
    recovered = recover(tmp_path, index)
    assert len(recovered) == 1 and not list(tmp_path.glob("porch/*/*.part"))
    segment = recovered[0]
    frames = _frames(tmp_path / segment.path)
    assert len(frames) == segment.frames >= 75  # all but the fragment the crash cut
    assert frames[0].key_frame
    (tmp_path / "index.sqlite").unlink()
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"index.sqlite{suffix}").unlink(missing_ok=True)
    fresh = SegmentIndex(tmp_path / "index2.sqlite")
    rebuilt = recover(tmp_path, fresh, rebuild=True)
    assert rebuilt == [segment] and fresh.all() == [segment]


def test_an_unfinished_file_with_nothing_complete_is_removed(tmp_path: Path) -> None:
    day = tmp_path / "porch" / "2030-01-01"
    day.mkdir(parents=True)
    (day / "1893456000000.mp4.part").write_bytes(b"\x00\x00\x00\x20ftypiso5")
    assert recover(tmp_path, SegmentIndex(tmp_path / "i.sqlite")) == []
    assert not list(day.iterdir())


def test_segment_seek_before_the_first_keyframe_starts_at_it() -> None:
    segment = Segment("c", 100.0, 160.0, "c/x.mp4", 10, 10, ((0.0, 500), (1.0, 900)))
    assert segment.seek(99.0) == (0.0, 500)
    assert segment.seek(100.99) == (0.0, 500)
    assert segment.seek(101.0) == (1.0, 900)
