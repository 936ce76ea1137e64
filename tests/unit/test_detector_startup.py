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
import pytest

from privastead.camsim.actors import Walker
from privastead.camsim.render import Phenomena, Scene
from privastead.camsim.suite import encode_scene
from privastead.media.decode import LumaFrame
from privastead.media.detector import STARTUP_SECONDS, MotionDetector
from privastead.media.explain import Explainer
from privastead.media.scan import scan_file
from privastead.media.settings import DetectionSettings, EventSettings

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
