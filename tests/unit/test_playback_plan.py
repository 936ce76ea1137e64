"""Playback plans over real segment files: any range becomes one stream that starts at the
keyframe before it, at zero, with its duration stated, frames in order across segments."""

from __future__ import annotations

import io
from pathlib import Path

import av
import pytest

from privastead.errors import MediaError
from privastead.media.fmp4_edit import movie_timescale, with_duration
from privastead.media.playback import nearby, plan_playback, spans
from privastead.media.segment_index import SegmentIndex
from support.recordings import frame_number, record

WALL = 1_800_000_000.0
FPS = 10


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """0-40 s and, after a 60 s gap, 100-120 s of numbered frames (10 s segments, GOP 1 s)."""
    root = tmp_path_factory.mktemp("recordings")
    record(root, "door", WALL, 40.0)
    record(root, "door", WALL + 100, 20.0)
    return root


def _decode(data: bytes) -> tuple[float, list[av.VideoFrame]]:
    with av.open(io.BytesIO(data)) as c:
        return float(c.duration or 0) / 1e6, list(c.decode(video=0))


def _play(root: Path, start: float, end: float) -> tuple[object, float, list[int], list[float]]:
    index = SegmentIndex(root / "index.sqlite")
    try:
        plan = plan_playback(index, root, "door", WALL + start, WALL + end)
    finally:
        index.close()
    assert plan is not None
    data = b"".join(piece for piece, _init, _t in plan.pieces())
    assert len(data) == plan.size
    duration, frames = _decode(data)
    return plan, duration, [frame_number(f) for f in frames], [f.time for f in frames]


def test_a_range_across_segments_starts_at_its_keyframe_at_zero(recording: Path) -> None:
    plan, duration, numbers, times = _play(recording, 12.5, 31.0)
    assert plan.start == pytest.approx(WALL + 12.0)  # type: ignore[attr-defined]
    assert numbers[0] == 120 and times[0] == 0.0
    assert numbers == list(range(120, 120 + len(numbers)))  # no frame lost or repeated
    assert numbers[-1] >= 310 - 1 and numbers[-1] < 310 + FPS  # to the end, one GOP at most
    assert duration == pytest.approx(len(numbers) / FPS)  # the init says how long it is
    assert times == pytest.approx([i / FPS for i in range(len(numbers))])


def test_a_recording_gap_is_left_out_not_played_as_a_stall(recording: Path) -> None:
    _plan, duration, numbers, times = _play(recording, 35.0, 105.0)
    # 35-40 s of the first recording, then 100-105 s of the second (numbered from 0 again).
    assert numbers[: 5 * FPS] == list(range(350, 400))
    assert numbers[5 * FPS :][:5] == [0, 1, 2, 3, 4]
    assert times == pytest.approx([i / FPS for i in range(len(numbers))])
    assert duration == pytest.approx(len(numbers) / FPS)


def test_the_output_is_seekable(recording: Path, tmp_path: Path) -> None:
    index = SegmentIndex(recording / "index.sqlite")
    plan = plan_playback(index, recording, "door", WALL + 0.0, WALL + 40.0)
    index.close()
    assert plan is not None
    out = tmp_path / "out.mp4"
    out.write_bytes(b"".join(piece for piece, _i, _t in plan.pieces()))
    with av.open(str(out)) as c:
        stream = c.streams.video[0]
        assert stream.time_base is not None
        c.seek(int(25.0 / stream.time_base), stream=stream)
        frame = next(iter(c.decode(video=0)))
        assert frame.time == pytest.approx(25.0) and frame_number(frame) == 250


def test_nothing_recorded_and_what_is_nearby(recording: Path) -> None:
    index = SegmentIndex(recording / "index.sqlite")
    try:
        assert plan_playback(index, recording, "door", WALL + 50, WALL + 90) is None
        assert plan_playback(index, recording, "porch", WALL, WALL + 10) is None
        near = nearby(index, "door", WALL + 50, WALL + 90, 16)
        assert near == [(WALL, WALL + 40.0), (WALL + 100, WALL + 120.0)]
        assert spans(index.all()) == near
    finally:
        index.close()


def test_a_segment_that_is_not_what_the_index_says_is_an_error(
    recording: Path, tmp_path: Path
) -> None:
    root = tmp_path / "copy"
    record(root, "door", WALL, 10.0)
    index = SegmentIndex(root / "index.sqlite")
    try:
        (segment,) = index.all()
        (root / segment.path).write_bytes(b"not an mp4 at all")
        with pytest.raises(MediaError):
            plan_playback(index, root, "door", WALL, WALL + 5)
    finally:
        index.close()


def test_a_camera_that_changed_its_stream_ends_the_plan_there(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    record(root, "door", WALL, 20.0)
    record(root, "door", WALL + 20.0, 20.0, size=(320, 192))  # reconnected at another size
    index = SegmentIndex(root / "index.sqlite")
    try:
        plan = plan_playback(index, root, "door", WALL + 5.0, WALL + 35.0)
    finally:
        index.close()
    assert plan is not None
    assert plan.end == pytest.approx(WALL + 20.0)  # the answer says how far the stream goes
    _duration, frames = _decode(b"".join(piece for piece, _i, _t in plan.pieces()))
    assert {f.width for f in frames} == {160} and len(frames) == 15 * FPS


def test_the_init_states_the_duration_for_players(recording: Path) -> None:
    index = SegmentIndex(recording / "index.sqlite")
    try:
        (segment, *_rest) = index.all()
    finally:
        index.close()
    data = (recording / segment.path).read_bytes()
    init = data[: data.index(b"moof") - 4]
    assert b"mehd" not in init  # the segment writer's init leaves the length open
    stated = with_duration(init, 12.5)
    assert b"mehd" in stated and b"mehd" not in init
    assert with_duration(stated, 12.5) == stated  # stating it again replaces, never adds
    scale = movie_timescale(stated)
    mehd = stated.index(b"mehd")
    assert int.from_bytes(stated[mehd + 8 : mehd + 16], "big") == round(12.5 * scale)
    fragments = data[len(init) :]
    _duration, frames = _decode(stated + fragments)  # (FFmpeg measures the fragments itself)
    assert len(frames) == segment.frames and frames[0].key_frame
