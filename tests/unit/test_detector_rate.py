"""The detector at a camera's frame rate above ``detect_fps`` but below twice it.

A 12.5 fps camera with ``detect_fps`` 10: a least gap of 0.1 s between analysed frames would
analyse every other frame (6.25 a second), and a person walking at an ordinary pace moves
about half their width between analysed frames, so their blob rarely overlaps itself as the
coherence test (rain is incoherent, objects are not) expects. These scenes show the misses
that caused: a person who is missed entirely, and the second of two people who walk the same
path, whichever arrives during the start-up.
"""

from __future__ import annotations

import numpy as np

from privastead.camsim.actors import Walker
from privastead.camsim.render import Phenomena, Scene
from privastead.media.decode import LumaFrame
from privastead.media.detector import MotionDetector
from privastead.media.settings import DetectionSettings

FPS = 12.5


def _crossing(start: float, seconds: float, luma: float) -> Walker:
    """A person of 30 % of the frame height crossing left to right in ``seconds``."""
    return Walker(path=((start, -0.1, 0.85), (start + seconds, 1.1, 0.86)), height=0.3, luma=luma)


def _motion_times(scene: Scene) -> list[float]:
    det = MotionDetector(DetectionSettings(), scene.width, scene.height)
    times = []
    for i in range(scene.frame_count):
        frame = LumaFrame(np.ascontiguousarray(scene.render(i)[0]), i / scene.fps, i % 12 == 0)
        if det.process(frame).motion:
            times.append(i / scene.fps)
    return times


def test_analysis_keeps_detect_fps_as_a_rate_at_any_camera_rate() -> None:
    y = np.full((108, 192), 90, np.uint8)
    for fps in (12.5, 15.0, 25.0, 30.0):
        det = MotionDetector(DetectionSettings(detect_fps=10.0), 192, 108)
        analysed = []
        for i in range(int(fps * 4)):
            det.process(LumaFrame(y, i / fps, False))
            if det.explain is not None and det.explain.t == i / fps:
                analysed.append(i / fps)
        assert len(analysed) == 40, fps  # ten a second, not every other frame (6.25 a second)
        assert max(np.diff(analysed)) < 0.2 - 1e-6, fps  # never more than two frame periods
    slow = MotionDetector(DetectionSettings(detect_fps=10.0), 192, 108)
    for i in range(20):  # a camera slower than detect_fps: every frame
        slow.process(LumaFrame(y, i / 5.0, False))
    assert slow.frames_analysed == 20


def test_a_path_walked_once_stays_sensitive_to_the_next_person() -> None:
    # The first person is already entering during the start-up (at 0.5 s); the second walks
    # the same path ten seconds after the first left. Both walk at an ordinary pace.
    first, second = _crossing(0.5, 6.0, 40.0), _crossing(16.5, 6.0, 45.0)
    phenomena = Phenomena(noise=2.5, walkers=(first, second))
    scene = Scene("twice", phenomena, width=480, height=270, fps=FPS, seed=3, duration=24.0)
    times = _motion_times(scene)
    assert any(0.5 < t < 6.5 for t in times), times  # the first, entering during start-up
    assert any(16.5 < t < 22.5 for t in times), times  # the second, on the same path
    assert not any(7.5 < t < 16.0 for t in times), times  # nothing in between


def test_a_distant_walker_is_an_object() -> None:
    # A distant walker, 6 % of the frame height (about 2.5 analysis cells wide), crossing in
    # 14 s: ~2.7 cells per analysed frame at 6.25 a second (it never overlaps itself), ~1.7
    # at 10.
    small = Walker(path=((3.5, -0.05, 0.5), (17.5, 1.05, 0.5)), height=0.06, luma=160.0)
    scene = Scene("small", Phenomena(noise=2.5, walkers=(small,)), width=480, height=270,
                  fps=FPS, seed=4, duration=18.0)  # fmt: skip
    times = _motion_times(scene)
    assert any(3.5 < t < 17.5 for t in times), times
