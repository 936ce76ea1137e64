"""H.265 -> H.264 for the browser: clips on demand, live fragments on the fly, bounded."""

from __future__ import annotations

import io
import itertools
import threading
import time
from functools import cache
from pathlib import Path

import av
import numpy as np
import pytest

from privastead.errors import CorruptMediaError
from privastead.media.live import LiveFragmenter, LiveSettings
from privastead.media.transcode import (
    FragmentTranscoder,
    LiveTranscoder,
    TranscodeSettings,
    transcode_clip,
)
from support.frames import BoxSource
from support.packets import demux, encode_mp4

SOURCE = BoxSource(320, 240, 15, 3.0, motion=(0.0, 3.0))


@cache
def _mp4(codec: str) -> bytes:
    return encode_mp4(SOURCE, codec, gop=15)


@cache
def _live_fragments(codec: str) -> tuple[bytes, ...]:
    info, packets = demux(_mp4(codec))
    fragmenter = LiveFragmenter(info, LiveSettings(frames_per_fragment=3))
    fragments = [f for p in packets for f in fragmenter.push(p)] + fragmenter.close()
    return tuple(f.data for f in fragments)


def _feed_paced(transcoder: LiveTranscoder, pieces: tuple[bytes, ...] | list[bytes]) -> None:
    """Feed like a viewer whose transcoder keeps up: never into a full queue."""
    for piece in pieces:
        while transcoder.queued >= transcoder.settings.max_queued:
            time.sleep(0.002)
        transcoder.feed(piece)


def _frames(data: bytes) -> tuple[str, list[av.VideoFrame]]:
    with av.open(io.BytesIO(data)) as clip:
        stream = clip.streams.video[0]
        return stream.codec_context.name, list(clip.decode(stream))


def _luma(frame: av.VideoFrame) -> np.ndarray:
    plane = frame.planes[0]
    view = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return view[:, : plane.width].astype(np.int16)


def test_h265_clip_becomes_h264_with_every_frame_and_the_same_picture(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    src.write_bytes(_mp4("h265"))
    result = transcode_clip(src, dst)
    assert not result.passthrough and result.frames_in == result.frames_out == 45
    codec, frames = _frames(dst.read_bytes())
    _, original = _frames(src.read_bytes())
    assert codec == "h264" and len(frames) == 45
    assert [f.key_frame for f in frames] == [f.key_frame for f in original]  # same GOPs
    for i in (0, 20, 44):
        assert np.abs(_luma(frames[i]) - _luma(original[i])).mean() < 3.0
    assert np.abs(_luma(frames[20]) - _luma(original[5])).mean() > 3.0  # the box moved


def test_clip_downscale_and_h264_pass_through(tmp_path: Path) -> None:
    src = tmp_path / "in.mp4"
    src.write_bytes(_mp4("h265"))
    transcode_clip(src, tmp_path / "small.mp4", TranscodeSettings(max_height=120))
    _, frames = _frames((tmp_path / "small.mp4").read_bytes())
    assert (frames[0].width, frames[0].height) == (160, 120) and len(frames) == 45
    src.write_bytes(_mp4("h264"))
    result = transcode_clip(src, tmp_path / "same.mp4")
    assert result.passthrough and (tmp_path / "same.mp4").read_bytes() == src.read_bytes()
    for name in ("small.mp4", "same.mp4"):  # plaintext video: owner-only, whatever the umask
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600


def test_live_h265_fragments_become_playable_h264_fragments() -> None:
    pieces = _live_fragments("h265")
    out: list[bytes] = []
    transcoder = LiveTranscoder(out.append)
    _feed_paced(transcoder, pieces)
    transcoder.close()
    assert transcoder.error is None and transcoder.drops == 0
    assert out[0][4:8] == b"ftyp" and all(p[4:8] == b"moof" for p in out[1:])
    codec, frames = _frames(b"".join(out))
    _, original = _frames(_mp4("h265"))
    assert codec == "h264" and len(frames) == len(original) == 45
    assert frames[0].key_frame
    for i in (3, 30):
        assert np.abs(_luma(frames[i]) - _luma(original[i])).mean() < 3.0


def test_live_h264_passes_through_untouched() -> None:
    pieces = _live_fragments("h264")
    core = FragmentTranscoder()
    out = [o for p in pieces for o in core.push(p)] + core.close()
    assert core.passthrough and out == list(pieces)


def test_a_transcoder_that_falls_behind_drops_to_a_keyframe() -> None:
    pieces = _live_fragments("h265")  # init, then 3-frame fragments; keyframes at 1, 6, 11
    blocked, release = threading.Event(), threading.Event()
    out: list[bytes] = []

    def stuck_viewer(piece: bytes) -> None:
        blocked.set()
        release.wait(10)  # the worker is stuck: input piles up behind it
        out.append(piece)

    transcoder = LiveTranscoder(stuck_viewer, TranscodeSettings(max_queued=3))
    transcoder.feed(pieces[0])
    transcoder.feed(pieces[1])
    assert blocked.wait(10)
    for piece in pieces[2:10]:  # 2,3,4 queue up; 5 overflows: dropped up to keyframe 6;
        transcoder.feed(piece)  # 6,7,8 queue up; 9 overflows: dropped up to keyframe 11
        assert transcoder.queued <= 3
    release.set()
    _feed_paced(transcoder, pieces[10:])
    transcoder.close()
    assert transcoder.drops == 2 and transcoder.error is None
    codec, frames = _frames(b"".join(out))
    assert codec == "h264" and len(frames) == 3 + 15  # fragment 1, then fragments 11..15
    assert [i for i, f in enumerate(frames) if f.key_frame] == [0, 3]
    steps = [b - a for a, b in itertools.pairwise(f.time for f in frames)]
    assert max(steps) == pytest.approx(1 / 15, abs=1e-3)  # continuous despite the drop
    _, original = _frames(_mp4("h265"))
    assert np.abs(_luma(frames[3]) - _luma(original[30])).mean() < 3.0


def test_a_bad_init_segment_stops_the_live_transcoder_with_a_media_error() -> None:
    pieces = _live_fragments("h265")
    transcoder = LiveTranscoder(lambda _piece: None)
    transcoder.feed(b"\x00\x00\x00\x10ftypgarbage!")  # not an init segment
    deadline = time.monotonic() + 10
    while transcoder.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert isinstance(transcoder.error, CorruptMediaError)
    with pytest.raises(CorruptMediaError):
        transcoder.feed(pieces[1])
    transcoder.close()
    with pytest.raises(CorruptMediaError):
        transcode_clip_of(b"not an mp4")


def transcode_clip_of(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.mp4"
        src.write_bytes(data)
        transcode_clip(src, Path(tmp) / "out.mp4")
