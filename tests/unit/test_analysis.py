"""The analysis pipeline the hub and `privastead-hub detect` share: idle mode rewinds to the
keyframe before the one that showed a change, so events start when they do at full rate."""

from __future__ import annotations

from pathlib import Path

import pytest

from privastead.camsim.scene import make_scene
from privastead.media.analysis import Detector
from privastead.media.decode import LumaFrame
from privastead.media.detector import STARTUP_SECONDS, MotionDetector, MotionResult
from privastead.media.events import Event
from privastead.media.scan import ScanReport, scan_file
from privastead.media.settings import DetectionSettings, EventSettings
from privastead.media.verdicts import FrameExplain
from support.clips import DEMO_ENTERS, demo_clip


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 2 s GOP: without the rewind an idle-mode event would start up to 2 s late. The person
    # arrives after the detector's start-up (decoded at full rate in either mode).
    path = tmp_path_factory.mktemp("v") / "demo.mp4"
    return demo_clip(
        path, width=320, height=180, seed=3, duration=16 + STARTUP_SECONDS,
        delay=STARTUP_SECONDS, gop_seconds=2.0,
    )  # fmt: skip


class Recorder:
    def __init__(self) -> None:
        self.times: list[float] = []
        self.rewinds: list[tuple[float, float]] = []
        self.changes: list[Event] = []

    def analysed(self, frame: LumaFrame, result: MotionResult, detector: Detector) -> None:
        self.times.append(frame.pts)

    def events(self, changes: list[Event], frame_time: float) -> None:
        self.changes += changes

    def rewound(self, to: float, at: float) -> None:
        self.rewinds.append((to, at))

    def looked_again(self, at: float, result: MotionResult, explain: FrameExplain | None) -> None:
        pass  # the start-up's frames again: not decoded, not counted


def scan_both_modes(path: Path) -> tuple[ScanReport, ScanReport, Recorder]:
    """The file scanned at full rate, then in keyframes idle mode with a ``Recorder``."""
    full = scan_file(path, DetectionSettings(), EventSettings())
    seen = Recorder()
    idle = scan_file(path, DetectionSettings(), EventSettings(), mode="keyframes", observer=seen)
    return full, idle, seen


def test_idle_mode_starts_events_when_full_rate_does(demo: Path) -> None:
    full, idle, seen = scan_both_modes(demo)
    assert len(full.events) == len(idle.events) == 1
    assert abs(idle.events[0].start - full.events[0].start) <= 0.5
    assert abs(idle.events[0].end - full.events[0].end) <= 0.5
    # The change showed in a keyframe; analysis went back to the keyframe 2 s before it.
    assert idle.rewinds >= 1 and seen.rewinds
    to, at = seen.rewinds[0]
    assert at - to == pytest.approx(2.0, abs=0.01)
    assert idle.events[0].start > to
    # It decided no earlier than the keyframe that showed the change.
    assert idle.events[0].decided >= at
    # Idle decoding is cheap, apart from the detector's start-up, decoded at full rate in
    # either mode (10 fps here).
    assert idle.frames_decoded - 10 * STARTUP_SECONDS < full.frames_decoded * 0.8
    assert len(seen.changes) == 2  # started, ended: one event, nothing duplicated by a rewind


@pytest.fixture(scope="module")
def early(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The person enters about 1 s after the start-up, in the GOP where analysis drops to
    # keyframes: the keyframe before the one that shows them was decoded at full rate.
    path = tmp_path_factory.mktemp("v") / "early.mp4"
    return demo_clip(
        path, width=320, height=180, seed=3, duration=12 + STARTUP_SECONDS,
        delay=STARTUP_SECONDS + 1.0 - DEMO_ENTERS, gop_seconds=2.0,
    )  # fmt: skip


def test_a_change_in_the_gop_where_idle_mode_began_starts_on_time(early: Path) -> None:
    full, idle, seen = scan_both_modes(early)
    assert len(full.events) == len(idle.events) == 1
    assert abs(idle.events[0].start - full.events[0].start) <= 0.5
    # The rewind went back to where analysis dropped to keyframes, not to the keyframe that
    # showed the change: the frames in between had never been looked at.
    assert seen.rewinds
    to, at = seen.rewinds[0]
    assert STARTUP_SECONDS <= to < idle.events[0].start < at
    assert len(seen.changes) == 2


def test_a_restored_snapshot_replays_exactly() -> None:
    scene = make_scene("walkers", width=320, height=180, fps=10, seed=0, duration=8)
    frames = [LumaFrame(scene.render(i)[0], i / 10, i % 10 == 0) for i in range(80)]
    det = MotionDetector(DetectionSettings(), 320, 180)
    for f in frames[:40]:
        det.process(f)
    state = det.snapshot()
    first = [det.process(f) for f in frames[40:]]
    det.restore(state)
    again = [det.process(f) for f in frames[40:]]
    assert first == again
    with pytest.raises(TypeError):
        det.restore(object())
