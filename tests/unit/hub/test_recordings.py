"""The hub's continuous recorders and its disk keeper (``hub.recording``): segments written by
the recorder's own thread, events marked, retention per camera and hub-wide, a full disk that
deletes the oldest recording (never clips or state) and resumes paused recorders."""

from __future__ import annotations

import itertools
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from privastead.clock import FakeClock
from privastead.hub.config import CameraConfig
from privastead.hub.recording.continuous import ContinuousRecorder
from privastead.hub.recording.recordings import Recordings
from privastead.hub.storage_config import StorageSection
from privastead.media.ingest import MediaPacket, StreamInfo
from privastead.media.retention import DAY
from privastead.media.segment_index import Segment, SegmentIndex
from privastead.media.segments import SegmentSettings
from support.frames import BoxSource
from support.packets import demux, encode_mp4, looped

WALL = 1_900_000_000.0


@pytest.fixture(scope="module")
def stream() -> tuple[StreamInfo, list[MediaPacket]]:
    info, packets = demux(encode_mp4(BoxSource(320, 240, 15, 2.0, motion=(0.5, 1.5)), gop=15))
    return info, looped(info, packets, 6.0, wall=WALL)


def _camera(name: str, **kw: object) -> CameraConfig:
    return CameraConfig(name=name, url="rtsp://127.0.0.1:8554/x", **kw)  # type: ignore[arg-type]


def test_the_recorder_writes_private_segments_in_its_thread_and_marks_events(
    tmp_path: Path, stream: tuple[StreamInfo, list[MediaPacket]]
) -> None:
    info, packets = stream
    index = SegmentIndex(tmp_path / "index.sqlite")
    recorder = ContinuousRecorder(
        "porch", tmp_path, index, SegmentSettings(seconds=2.0), wall_clock=lambda: WALL + 6.0
    )
    recorder.connected(info)
    for packet in packets:
        recorder.push(packet)
    recorder.event_started("ev1", 3.0)
    recorder.event_ended("ev1", 3.0, 4.5)
    recorder.close()
    assert recorder.state == "stopped"
    segments = index.all()
    assert [round(s.start - WALL, 2) for s in sorted(segments, key=lambda s: s.start)] == [
        0.0,
        2.0,
        4.0,
    ]
    assert sum(s.frames for s in segments) == sum(1 for p in packets if p.kind == "video")
    for segment in segments:
        path = tmp_path / segment.path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    (mark,) = index.marks_between("porch", 0, 2e9)
    assert mark.event_id == "ev1" and mark.end is not None
    # dated through the newest packet (stream time ~6 s at wall clock WALL + 6)
    assert abs(mark.start - (WALL + 3.0)) < 0.2 and abs(mark.end - (WALL + 4.5)) < 0.2


def test_a_camera_without_continuous_recording_only_marks_events(tmp_path: Path) -> None:
    index = SegmentIndex(tmp_path / "index.sqlite")
    recorder = ContinuousRecorder(
        "yard", tmp_path, index, SegmentSettings(), record=False, wall_clock=lambda: WALL
    )
    assert recorder.state == "off"
    recorder.event_started("ev2", 0.0)
    recorder.close()
    assert index.all() == [] and not (tmp_path / "yard").exists()
    assert [m.event_id for m in index.marks_between("yard", 0, 2e9)] == ["ev2"]


@dataclass
class _Vfs:
    free: int
    total: int = 1_000_000_000

    @property
    def f_frsize(self) -> int:
        return 1

    @property
    def f_blocks(self) -> int:
        return self.total

    @property
    def f_bavail(self) -> int:
        return self.free


def _segment(root: Path, index: SegmentIndex, camera: str, start: float, size: int) -> Segment:
    rel = f"{camera}/day/{int(start * 1000)}.mp4"
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * 16)
    segment = Segment(camera, start, start + 60, rel, size, 10, ((0.0, 0),))
    index.add(segment)
    return segment


def _event_files(clips: Path, when: float) -> list[Path]:
    day = clips / "2030-01-01"
    day.mkdir(parents=True, exist_ok=True)
    files = [day / "porch-120000-aaaaaaaa.mp4", day / "porch-120000-aaaaaaaa.jpg"]
    for path in files:
        path.write_bytes(b"x" * 100)
        os.utime(path, (when, when))
    return files


def _recordings(tmp_path: Path, storage: StorageSection, cameras: list[CameraConfig], vfs: _Vfs):  # type: ignore[no-untyped-def]
    root, clips = tmp_path / "recordings", tmp_path / "clips"
    root.mkdir()
    index = SegmentIndex(root / "index.sqlite")
    clock = FakeClock(WALL)
    rec = Recordings(
        storage, cameras, clock, root=root, index=index, clips=clips, statvfs=lambda _p: vfs
    )
    return rec, index, clips, clock


def test_retention_by_age_follows_each_cameras_own_limit(tmp_path: Path) -> None:
    storage = StorageSection(recording_days=1, clip_days=0, thumbnail_days=0)
    cameras = [_camera("porch", continuous=True), _camera("yard", recording_days=3)]
    rec, index, _, _ = _recordings(tmp_path, storage, cameras, _Vfs(free=10**9))
    for camera in ("porch", "yard", "gone"):  # "gone": no longer configured: hub-wide rules
        for days in (0.5, 2, 4):
            _segment(rec.root, index, camera, WALL - days * DAY, 1000)
    assert rec.sweep() == 5
    kept = sorted((s.camera, round((WALL - s.start) / DAY, 1)) for s in index.all())
    assert kept == [("gone", 0.5), ("porch", 0.5), ("yard", 0.5), ("yard", 2.0)]
    assert len(list(rec.root.glob("*/*/*.mp4"))) == 4  # the files went with their rows


def test_a_low_disk_deletes_the_oldest_recordings_never_clips_and_resumes(
    tmp_path: Path,
) -> None:
    storage = StorageSection(min_free_gb=0.1, min_free_percent=0, full_below_mb=10)
    vfs = _Vfs(free=50_000_000)
    rec, index, clips, _ = _recordings(tmp_path, storage, [_camera("porch")], vfs)
    events = _event_files(clips, WALL - 10 * DAY)
    for minute in range(10):
        _segment(rec.root, index, "porch", WALL - 3600 + minute * 60, 10_000_000)
    assert rec.watcher.check().state == "low"
    deleted = rec.sweep(rec.watcher.status)
    # 50 MB short of 100 MB free, plus 10 MB of margin: the six oldest 10 MB segments
    assert deleted == 6
    starts = sorted(round(s.start - WALL) for s in index.all())
    assert starts == [-3600 + 60 * m for m in range(6, 10)]
    assert all(p.exists() for p in events)  # events are never deleted for space


def test_the_disk_state_reaches_the_facts_and_a_paused_recorder_resumes(
    tmp_path: Path, stream: tuple[StreamInfo, list[MediaPacket]]
) -> None:
    import asyncio

    storage = StorageSection(min_free_gb=0.1, min_free_percent=0, full_below_mb=10)
    vfs = _Vfs(free=5_000_000)
    cameras = [_camera("porch", continuous=True), _camera("yard")]
    rec, _, _, _ = _recordings(tmp_path, storage, cameras, vfs)
    porch = rec.recorder(cameras[0])
    rec.recorder(cameras[1])
    assert porch.writer is not None
    porch.writer.blocked = True  # as after a write failed with ENOSPC
    seen: list[str] = []

    async def main() -> None:
        task = asyncio.create_task(rec.run(lambda status: seen.append(status.state)))
        for _ in range(200):
            await asyncio.sleep(0.01)
            if seen:
                break
        assert rec.facts("porch")["disk"] == "full"
        assert rec.facts("porch")["recording"] == "paused"
        vfs.free = 500_000_000  # room was made
        rec._disk_full("porch")  # as the writer thread does: sweep now
        for _ in range(300):
            await asyncio.sleep(0.01)
            if seen[-1:] == ["ok"] and porch.state == "recording":
                break
        task.cancel()

    asyncio.run(main())
    assert seen == ["full", "ok"]
    assert rec.facts("porch") | {"disk_detail": ""} == {
        "recording": "recording",
        "disk": "ok",
        "disk_free": 500_000_000,
        "disk_detail": "",
    }
    assert rec.facts("yard")["recording"] == "off"
    porch.close()


def test_a_stalled_disk_costs_whole_gops_never_the_loop_or_unbounded_memory(
    tmp_path: Path, stream: tuple[StreamInfo, list[MediaPacket]]
) -> None:
    import threading

    info, packets = stream
    index = SegmentIndex(tmp_path / "index.sqlite")
    recorder = ContinuousRecorder("porch", tmp_path, index, SegmentSettings(seconds=2.0))
    assert recorder.writer is not None
    stalled = threading.Event()
    write = recorder.writer.write
    seen: list[MediaPacket] = []

    def slow(packet: MediaPacket) -> object:
        stalled.wait()  # the disk hangs until released
        seen.append(packet)
        return write(packet)

    recorder.writer.write = slow  # type: ignore[method-assign]
    recorder.connected(info)
    video = [p for p in packets if p.kind == "video"]
    fps = len(video) / 6.0
    limit = recorder._fps * 10.0
    for _ in range(int(limit / len(video)) + 2):  # more than that pushed while nothing is written
        for packet in packets:
            recorder.push(packet)
    assert recorder.dropped > 0
    assert recorder._queued - recorder._written <= limit + 1
    stalled.set()
    recorder.close()
    kept = [p for p in seen if p.kind == "video"]
    # what was dropped was dropped up to a keyframe: every run of kept frames starts on one
    assert kept[0].keyframe
    runs = [b for a, b in itertools.pairwise(kept) if b.pts < a.pts or b.pts - a.pts > 1.5 / fps]
    assert all(p.keyframe for p in runs)


def test_pause_and_resume_are_reported_as_soon_as_asked(
    tmp_path: Path, stream: tuple[StreamInfo, list[MediaPacket]]
) -> None:
    """The heartbeat sent right after the disk filled reads ``state`` on the loop while the
    writer thread may still be busy: it must already say what was asked."""
    import threading

    info, packets = stream
    index = SegmentIndex(tmp_path / "index.sqlite")
    recorder = ContinuousRecorder("porch", tmp_path, index, SegmentSettings(seconds=2.0))
    assert recorder.writer is not None
    stalled, busy = threading.Event(), threading.Event()
    write = recorder.writer.write

    def slow(packet: MediaPacket) -> object:
        busy.set()
        stalled.wait()  # the thread is held inside a write
        return write(packet)

    recorder.writer.write = slow  # type: ignore[method-assign]
    recorder.connected(info)
    recorder.push(packets[0])
    assert busy.wait(10)
    assert recorder.state == "recording"
    recorder.pause()
    assert recorder.state == "paused"  # asked, though the thread has not got to it
    recorder.resume()
    assert recorder.state == "recording"
    recorder.pause()
    stalled.set()
    recorder.close()
    assert recorder.writer.blocked  # the thread did what was asked last


def test_clips_and_thumbnails_go_by_their_own_ages_and_caps(tmp_path: Path) -> None:
    storage = StorageSection(clip_days=30, thumbnail_days=90, thumbnail_gb=150e-9)
    rec, index, clips, _ = _recordings(tmp_path, storage, [_camera("porch")], _Vfs(free=10**9))
    old = _event_files(clips, WALL - 40 * DAY)  # a clip past 30 days, a thumbnail within 90
    day = clips / "2030-02-01"
    day.mkdir()
    newer = [day / "porch-130000-bbbbbbbb.mp4", day / "porch-130000-bbbbbbbb.jpg"]
    for path in newer:
        path.write_bytes(b"y" * 100)
        os.utime(path, (WALL - DAY, WALL - DAY))
    sidecar = day / "porch-130000-bbbbbbbb.json"
    sidecar.write_text("{}")
    assert rec.sweep() == 2
    # the old clip by age; the old thumbnail by the thumbnails' size cap (oldest first)
    assert not old[0].exists() and not old[1].exists()
    assert all(p.exists() for p in newer) and sidecar.exists()
    assert index.all() == []
