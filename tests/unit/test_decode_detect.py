"""LumaDecoder modes and MotionDetector behaviour on real encoded video."""

from __future__ import annotations

import itertools
from pathlib import Path

import av
import numpy as np
import pytest

from privastead.camsim.scene import make_scene
from privastead.camsim.suite import encode_scene
from privastead.media.decode import LumaDecoder, LumaFrame
from privastead.media.detector import MotionDetector
from privastead.media.settings import DetectionSettings


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # width 200: the decoder pads rows (line_size > width), so the Y view is non-contiguous
    scene = make_scene("demo", width=200, height=112, fps=10, seed=0, duration=12)
    return encode_scene(scene, tmp_path_factory.mktemp("v") / "demo.mp4", gop_seconds=1.0)


def decode_all(path: Path, switch_at: int | None = None, mode: str = "full") -> list[LumaFrame]:
    """Decode ``path``; at packet ``switch_at`` switch to full rate by replaying the GOP so far."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        dec = LumaDecoder(s, mode=mode)  # type: ignore[arg-type]
        out: list[LumaFrame] = []
        gop: list[av.Packet] = []
        for i, packet in enumerate(c.demux(s)):
            if packet.size == 0:
                continue
            gop = [packet] if packet.is_keyframe else [*gop, packet]
            if switch_at is not None and i == switch_at:
                out += dec.replay(gop, after=out[-1].pts)
                continue
            out += dec.decode(packet)
        return out + dec.flush()


def test_full_mode_yields_every_frame_as_a_luma_view(clip: Path) -> None:
    frames = decode_all(clip)
    assert len(frames) == 120
    assert all(b.pts > a.pts for a, b in itertools_pairs(frames))
    y = frames[50].y
    assert y.shape == (112, 200) and y.dtype == np.uint8
    assert not y.flags.owndata  # a view of the decoder's buffer
    expected = make_scene("demo", width=200, height=112, fps=10, seed=0, duration=12).render(50)[0]
    assert np.abs(y.astype(int) - expected.astype(int)).mean() < 6  # lossy, but the same image


def test_keyframes_mode_yields_only_keyframes(clip: Path) -> None:
    frames = decode_all(clip, mode="keyframes")
    assert len(frames) == 12 and all(f.keyframe for f in frames)
    assert [round(f.pts, 3) for f in frames] == [float(i) for i in range(12)]


def test_replay_switches_to_full_mid_gop_and_catches_up(clip: Path) -> None:
    frames = decode_all(clip, switch_at=55, mode="keyframes")  # packet 55: inside GOP 5
    pts = [round(f.pts, 3) for f in frames]
    assert pts == sorted(set(pts))  # strictly increasing, no duplicates
    # keyframes 0..5, then every frame from 5.1 on (replayed from the keyframe at 5.0)
    assert pts == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0] + [round(5.1 + i / 10, 3) for i in range(69)]


def test_replay_hands_out_frames_one_at_a_time(clip: Path) -> None:
    # A replay of two GOPs must not hold every decoded picture at once (at 4K that is GBs):
    # each frame is decoded when the previous one has been taken.
    with av.open(str(clip)) as c:
        s = c.streams.video[0]
        packets = [p for p in c.demux(s) if p.size][:25]  # GOPs 0 and 1, half of GOP 2
        dec = LumaDecoder(s, mode="keyframes")
        for packet in packets:
            dec.decode(packet)
        kept = packets[10:]  # from the keyframe at 1.0 s
        assert kept[0].is_keyframe
        before = dec.frames_decoded
        frames = dec.replay(kept, after=1.0)
        assert dec.frames_decoded == before  # nothing decoded until asked for
        first = next(frames)
        assert dec.frames_decoded - before <= 2  # (frame threading may run a frame ahead)
        rest = list(frames)
        pts = [round(f.pts, 3) for f in [first, *rest]]
        assert pts[0] > 1.0 and pts == sorted(set(pts))
        assert dec.mode == "full"
    with pytest.raises(ValueError, match="keyframe"):
        dec.replay(kept[1:], after=1.0)


def test_switch_to_full_without_replay_waits_for_a_keyframe(clip: Path) -> None:
    with av.open(str(clip)) as c:
        s = c.streams.video[0]
        dec = LumaDecoder(s, mode="keyframes")
        out: list[LumaFrame] = []
        for i, packet in enumerate(c.demux(s)):
            if i == 55:
                dec.mode = "full"
            out += dec.decode(packet)
        out += dec.flush()
    pts = [round(f.pts, 3) for f in out]
    assert pts == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0] + [round(6.0 + i / 10, 3) for i in range(60)]


def itertools_pairs(items: list[LumaFrame]) -> list[tuple[LumaFrame, LumaFrame]]:
    return list(itertools.pairwise(items))


def _frames(scene_name: str, **kw: object) -> tuple[list[LumaFrame], object]:
    scene = make_scene(scene_name, width=640, height=360, fps=10, seed=0, **kw)  # type: ignore[arg-type]
    return [
        LumaFrame(scene.render(i)[0], i / scene.fps, i % 10 == 0) for i in range(scene.frame_count)
    ], scene


def test_detector_finds_a_walker_and_boxes_it() -> None:
    frames, scene = _frames("demo", duration=14)
    det = MotionDetector(DetectionSettings(), 640, 360)
    hits = [(f.pts, det.process(f)) for f in frames]
    moving = [t for t, r in hits if r.motion]
    assert moving and min(moving) > 4.0 and max(moving) < 12.5
    t, result = next((t, r) for t, r in hits if r.motion and t > 8)
    (box,) = result.boxes
    (truth,) = scene.objects_at(round(t * 10))  # type: ignore[attr-defined]
    cx = box.x + box.w / 2
    assert truth[0] - 0.05 < cx < truth[0] + truth[2] + 0.05
    assert 0 < result.score < 0.2


def test_detector_ignores_a_lamp_and_reports_a_global_change() -> None:
    frames, _ = _frames("lighting", duration=40)
    det = MotionDetector(DetectionSettings(), 640, 360)
    results = [det.process(f) for f in frames]
    assert not any(r.motion for r in results)
    assert any(r.global_change for r in results)


def test_masks_hide_motion_and_zones_limit_it() -> None:
    frames, _ = _frames("demo", duration=14)
    everywhere = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))
    masked = MotionDetector(DetectionSettings(masks=(everywhere,)), 640, 360)
    assert not any(masked.process(f).motion for f in frames)
    top = ((0.0, 0.0), (1.0, 0.0), (1.0, 0.3), (0.0, 0.3))  # the walker's feet are at 0.85
    zoned = MotionDetector(DetectionSettings(zones=(top,)), 640, 360)
    assert not any(zoned.process(f).motion for f in frames)


def test_settings_validate() -> None:
    with pytest.raises(ValueError, match="sensitivity"):
        DetectionSettings(sensitivity=2)
    with pytest.raises(ValueError, match="polygon"):
        DetectionSettings(zones=(((0.0, 0.0), (1.0, 1.0)),))


def test_hevc_decodes_in_both_modes(tmp_path: Path) -> None:
    scene = make_scene("static", width=192, height=108, fps=10, seed=0, duration=3)
    path = encode_scene(scene, tmp_path / "static.mp4", codec="hevc")
    full = decode_all(path)
    assert len(full) == 30 and full[0].y.shape == (108, 192)
    keys = decode_all(path, mode="keyframes")
    assert [round(f.pts, 3) for f in keys] == [0.0, 1.0, 2.0]
