"""Someone who comes and goes within the detector's start-up is found.

During the first seconds of a stream the detector knows neither the background nor the noise,
so it only learns; once both are established (the median of the frames seen meanwhile), it
looks at those frames again. A person who walks in and out of the view within the start-up
makes an event, backdated to when they appeared, in full and in keyframes (idle) mode: the
start-up is decoded at full rate in both. Through the hub's own pipeline (``scan_file``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from privastead.camsim.actors import Walker
from privastead.camsim.render import Phenomena, Scene
from privastead.camsim.suite import encode_scene
from privastead.media.decode import LumaFrame
from privastead.media.detector import STARTUP_SECONDS, MotionDetector
from privastead.media.explain import Explainer
from privastead.media.kernels import grid as G
from privastead.media.scan import scan_file
from privastead.media.settings import DetectionSettings, EventSettings
from privastead.media.verdicts import CHRONIC

#: In at 0.3 s from the left, a few steps into the yard, back out by 2.7 s.
VISITOR = Walker(path=((0.3, -0.12, 0.7), (1.5, 0.3, 0.72), (2.7, -0.12, 0.7)), height=0.45,
                 luma=45.0)  # fmt: skip


def _scene(walkers: tuple[Walker, ...]) -> Scene:
    return Scene("early", Phenomena(noise=2.5, walkers=walkers), width=320, height=180,
                 fps=10.0, seed=11, duration=9.0)  # fmt: skip


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("startup")
    visited = encode_scene(_scene((VISITOR,)), root / "visited.mp4", gop_seconds=2.0)
    empty = encode_scene(_scene(()), root / "empty.mp4", gop_seconds=2.0)
    return visited, empty


@pytest.mark.parametrize("mode", ["full", "keyframes"])
def test_a_visit_within_the_start_up_makes_an_event(clips: tuple[Path, Path], mode: str) -> None:
    visited, empty = clips
    assert VISITOR.path[-1][0] < STARTUP_SECONDS  # gone before the start-up ends
    events = scan_file(visited, DetectionSettings(), EventSettings(), mode=mode).events  # type: ignore[arg-type]
    assert len(events) == 1, events
    assert 0.0 <= events[0].start <= 1.5, events  # backdated to the visit, not the start-up's end
    # the same start-up with nobody in it stays quiet
    assert scan_file(empty, DetectionSettings(), EventSettings(), mode=mode).events == []  # type: ignore[arg-type]


def test_late_results_are_handed_out_once_in_order() -> None:
    scene = _scene((VISITOR,))
    det = MotionDetector(DetectionSettings(), scene.width, scene.height)
    late = []
    for i in range(int(STARTUP_SECONDS * scene.fps) + 2):
        y = np.ascontiguousarray(scene.render(i)[0])
        det.process(LumaFrame(y, i / scene.fps, i % 10 == 0))
        late += det.take_late()
    times = [t for t, _, _ in late]
    assert times == sorted(times) and times[0] < 0.5 and times[-1] < STARTUP_SECONDS
    assert any(r.motion for _, r, _ in late)
    assert all(explain is not None and explain.t == t for t, _, explain in late)
    assert det.take_late() == []


def test_explain_shows_the_startup_looked_at_again(clips: tuple[Path, Path]) -> None:
    # ``detect --explain`` says what the detector saw in the start-up's frames too: the
    # visitor's event is decided there, and an owner must be able to see why.
    visited, _ = clips
    lines: list[str] = []
    scan_file(visited, DetectionSettings(), EventSettings(), observer=Explainer(lines.append))
    again = [line for line in lines if line[10:11] == "^"]
    assert any("looked at again" in line for line in lines)
    assert again and all(float(line[:8]) < STARTUP_SECONDS for line in again)
    assert any("object" in line for line in lines[lines.index(again[0]) :])


def _hunting_walk(t: float) -> npt.NDArray[np.uint8]:
    """A textured yard under auto exposure hunting (+-6 % at about 1 Hz) through the start-up;
    a person walks slowly in from the left from 3 s on."""
    rng = np.random.default_rng(4)
    y = np.kron(rng.uniform(60, 180, (23, 40)), np.ones((8, 8)))[:180].copy()
    if t >= 3.0:
        x = int(20 * (t - 3.0))  # 20 px a second
        y[90:150, x : x + 14] = 35.0
    y *= 1.0 + 0.06 * np.sin(2 * np.pi * t * 0.9)
    y += np.random.default_rng(int(t * 1000)).normal(0, 2.0, y.shape)
    return np.clip(y, 0, 255).astype(np.uint8)


def test_exposure_hunting_through_the_start_up_leaves_no_chronic_path() -> None:
    # Auto exposure swinging meanwhile moves every cell at once: taken out by the global model,
    # a person walking through in those seconds leaves their path as it was, not chronic.
    det = MotionDetector(DetectionSettings(), 320, 180)
    t = 0.0
    while t <= STARTUP_SECONDS + 0.15:
        det.process(LumaFrame(_hunting_walk(t), t, False))
        t = round(t + 0.1, 3)
    activity = det.f[G.ACTIVITY]
    rows, cols = activity.shape
    path = activity[rows * 90 // 180 : rows * 150 // 180, : cols * 60 // 320]
    assert float(path.mean()) < CHRONIC / 2, float(path.mean())  # blobs judge the mean


def test_a_global_change_within_the_start_up_does_not_cut_it_short() -> None:
    # The camera switching to IR night mode 1 s into the stream (a new picture, which no light
    # model explains) re-bases the view and restarts the settling; the start-up still lasts its
    # whole length (what moves chronically is learned from several seconds), and only the
    # frames after the switch are looked at again.
    rng = np.random.default_rng(6)
    day, night = (np.kron(rng.uniform(60, 160, (23, 40)), np.ones((8, 8)))[:180] for _ in "ab")
    det = MotionDetector(DetectionSettings(), 320, 180)
    looked_again_at = None
    t = 0.0
    while t <= STARTUP_SECONDS + 1.0 and looked_again_at is None:
        noise = np.random.default_rng(int(t * 1000)).normal(0, 2, day.shape)
        y = (night if t >= 1.0 else day) + noise
        det.process(LumaFrame(np.clip(y, 0, 255).astype(np.uint8), t, False))
        late = det.take_late()
        if late:
            looked_again_at = t
            assert late[0][0] >= 1.0  # from the switch on
        t = round(t + 0.1, 3)
    assert looked_again_at is not None and looked_again_at >= STARTUP_SECONDS


def _flurry(seconds: float, seed: int = 3) -> list[LumaFrame]:
    """A flurry over textured ground: 500 flakes 9 px wide, each seen in three frames as it
    falls 6 px a frame, then gone (a new one elsewhere). Every cell is hit now and then, but
    in fewer than half the frames: its median deviation is the sensor's noise, while from
    frame to frame it changes by a flake's brightness."""
    rng = np.random.default_rng(seed)
    height, width, fps, size = 360, 640, 10.0, 9
    yy, xx = np.mgrid[0:height, 0:width]
    ground = (100 + 20 * np.sin(xx / 7.0) * np.cos(yy / 11.0)).astype(np.float32)
    top = (height - size, width - size)
    pos = rng.uniform((0, 0), top, (500, 2))
    age = rng.integers(0, 3, 500)
    frames = []
    for i in range(int(seconds * fps)):
        y = ground + rng.normal(0, 2.0, (height, width)).astype(np.float32)
        for r, c in pos.astype(int):
            y[r : r + size, c : c + size] += 30.0
        frames.append(LumaFrame(np.clip(y, 0, 255).astype(np.uint8), i / fps, i % 10 == 0))
        pos[:, 0] += 6
        age += 1
        gone = age >= 3
        pos[gone] = rng.uniform((0, 0), top, (int(gone.sum()), 2))
        age[gone] = 0
    return frames


def test_flakes_everywhere_do_not_fire_when_the_start_up_is_looked_at_again() -> None:
    # The median-based start-up estimates see the sensor's noise in each cell, not the
    # flakes: judged with them, the start-up's first frames flagged thousands of cells and
    # flakes falling together became objects. The frames are learned from once more before
    # they are judged, so the start-up is as quiet as what follows it.
    frames = _flurry(STARTUP_SECONDS + 4.0)
    det = MotionDetector(DetectionSettings(), frames[0].y.shape[1], frames[0].y.shape[0])
    late, live = [], []
    for frame in frames:
        result = det.process(frame)
        late += det.take_late()
        live.append(result)
    assert len(late) > 50  # the start-up was looked at again
    assert not any(r.motion for _, r, _ in late), [t for t, r, _ in late if r.motion]
    assert not any(r.motion for r in live)


#: Walks in from the left after the start-up, across the yard and out by 10.5 s.
LATECOMER = Walker(path=((6.5, -0.1, 0.75), (10.5, 1.1, 0.75)), height=0.4, luma=65.0)


def _lamp_scene(walkers: tuple[Walker, ...]) -> Scene:
    """Night, a lamp switched on halfway through the start-up (the whole view x1.45)."""
    phenomena = Phenomena(noise=3.5, darkness=0.5, light_steps=((3.0, 1.45),), walkers=walkers)
    return Scene("lamp", phenomena, width=320, height=180, fps=10.0, seed=12, duration=13.0)


@pytest.mark.parametrize("mode", ["full", "keyframes"])
def test_a_lamp_switched_on_in_the_start_up_does_not_hide_who_comes_next(
    tmp_path: Path, mode: str
) -> None:
    # Half the start-up's frames are a step away from the median in every cell. Taken as how
    # far each cell strays, the step raised every threshold for a minute, and a person who
    # walked through just after the start-up was not seen at all.
    walked = encode_scene(_lamp_scene((LATECOMER,)), tmp_path / "walked.mp4", gop_seconds=2.0)
    events = scan_file(walked, DetectionSettings(), EventSettings(), mode=mode).events  # type: ignore[arg-type]
    assert len(events) == 1, events
    assert 6.0 <= events[0].start <= 8.0, events
    # the lamp alone stays quiet
    lamp = encode_scene(_lamp_scene(()), tmp_path / "lamp.mp4", gop_seconds=2.0)
    assert scan_file(lamp, DetectionSettings(), EventSettings(), mode=mode).events == []  # type: ignore[arg-type]


def _dimmed_scene(walkers: tuple[Walker, ...]) -> Scene:
    """Night, a lamp switched off halfway through the start-up (the whole view x0.75)."""
    phenomena = Phenomena(noise=3.5, darkness=0.5, light_steps=((2.9, 0.75),), walkers=walkers)
    return Scene("dimmed", phenomena, width=320, height=180, fps=10.0, seed=12, duration=13.0)


@pytest.mark.parametrize("mode", ["full", "keyframes"])
@pytest.mark.parametrize("luma", [60.0, 157.0])
def test_someone_crossing_as_the_light_steps_in_the_start_up_is_seen_at_once(
    tmp_path: Path, mode: str, luma: float
) -> None:
    # Whoever walks through the start-up raises the noise learned along their path; the
    # hand-over cuts it back to what the cell's deviation from the median says. With the
    # light stepping halfway through, every cell's plain deviation is about the step, so
    # nothing was cut, and the walker was seen only once past the noisy part of the path.
    walker = Walker(path=((2.0, 1.1, 0.85), (8.6, -0.1, 0.83)), height=0.31, luma=luma)
    scene = _dimmed_scene((walker,))
    came = scene.truth[0].start
    events = scan_file(encode_scene(scene, tmp_path / "walked.mp4", gop_seconds=2.0),
                       DetectionSettings(), EventSettings(), mode=mode).events  # type: ignore[arg-type]  # fmt: skip
    assert len(events) == 1, events
    assert came - 0.5 <= events[0].start <= came + 1.0, (came, events)
    # the light step alone stays quiet
    dimmed = encode_scene(_dimmed_scene(()), tmp_path / "dimmed.mp4", gop_seconds=2.0)
    assert scan_file(dimmed, DetectionSettings(), EventSettings(), mode=mode).events == []  # type: ignore[arg-type]


def test_a_brisk_walker_at_a_low_frame_rate_from_the_start_up_on_is_found(
    tmp_path: Path,
) -> None:
    """At 5 fps a brisk walker clears most of its width between analysed frames, so its blob
    never overlaps itself by half (never coherent). Born in the start-up, its track is found
    once the start-up is over by going steadily on (``tracks._steady``), as a track born
    later is; what the start-up's frames alone show of a track (a flake that falls straight
    through them) still cannot make it steady. The event is backdated into the start-up (by
    at most ``events.BACKDATE``)."""
    walker = Walker(path=((3.0, -0.1, 0.7), (7.8, 1.1, 0.72)), height=0.45, luma=45.0)
    scene = Scene("brisk", Phenomena(noise=2.5, walkers=(walker,)), width=320, height=180,
                  fps=5.0, seed=12, duration=9.0)  # fmt: skip
    clip = encode_scene(scene, tmp_path / "brisk.mp4", gop_seconds=2.0)
    for mode in ("full", "keyframes"):
        events = scan_file(clip, DetectionSettings(), EventSettings(), mode=mode).events  # type: ignore[arg-type]
        assert len(events) == 1, (mode, events)
        assert events[0].start < STARTUP_SECONDS, (mode, events)
