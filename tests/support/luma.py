"""Luma planes in tests: compare decoded pictures with what camsim drew (8x8 block means of
the luma plane), and feed drawn pictures to the detector as a camera would.

Block means average the sensor noise away (the encoder does too), so the right frame matches
within a level or two while a neighbouring frame of a moving person differs by tens of levels.
"""

from __future__ import annotations

import av
import numpy as np

from privastead.camsim.render import Scene
from privastead.camsim.scene import make_scene
from privastead.media.decode import LumaFrame
from privastead.media.detector import MotionDetector, MotionResult
from privastead.media.settings import DetectionSettings


def luma(frame: av.VideoFrame) -> np.ndarray:
    plane = frame.planes[0]
    view = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return view[:, : plane.width].astype(np.float64)


def block_error(a: np.ndarray, b: np.ndarray, block: int = 8) -> float:
    """Largest difference between the 8x8 block means of two luma planes."""
    h, w = (a.shape[0] // block) * block, (a.shape[1] // block) * block

    def means(y: np.ndarray) -> np.ndarray:
        return y[:h, :w].reshape(h // block, block, w // block, block).mean(axis=(1, 3))

    return float(np.abs(means(a.astype(np.float64)) - means(b.astype(np.float64))).max())


def camera_frame(picture: np.ndarray, t: float, index: int, rng: np.random.Generator) -> LumaFrame:
    """A drawn picture (float levels) as a camera delivers it to the detector: sensor noise
    of 2 levels, clipped to 0-255, a keyframe every 10 frames."""
    y = picture + rng.normal(0.0, 2.0, picture.shape)
    return LumaFrame(np.clip(y, 0, 255).astype(np.uint8), t, index % 10 == 0)


def motion_times(frames: list[LumaFrame]) -> list[float]:
    """The times of the frames the detector (default settings) reports motion in."""
    height, width = frames[0].y.shape
    det = MotionDetector(DetectionSettings(), width, height)
    return [f.pts for f in frames if det.process(f).motion]


def scene_results(
    name: str, seed: int, fps: float = 15.0, duration: float = 30.0
) -> tuple[list[tuple[float, MotionResult, str]], Scene]:
    """Every frame of camsim scene ``name`` (720p, drawn luma: no encoder) through the
    detector (default settings): time, result and what ``--explain`` notes of it; the scene."""
    scene = make_scene(name, width=1280, height=720, fps=fps, seed=seed, duration=duration)
    det = MotionDetector(DetectionSettings(), scene.width, scene.height)
    results = []
    for index in range(scene.frame_count):
        t = index / fps
        result = det.process(LumaFrame(scene.render(index)[0], t, index % 30 == 0))
        results.append((t, result, det.explain.note if det.explain else ""))
    return results, scene


def assert_found_and_nothing_else(
    results: list[tuple[float, MotionResult, str]], scene: Scene
) -> None:
    """Every object interval of ``scene`` has motion in it, and there is no motion more than
    half a second outside one (``results`` as ``scene_results`` gives them)."""
    truth = scene.truth
    moving = [t for t, r, _ in results if r.motion]
    for interval in truth:
        assert any(interval.start <= t < interval.end for t in moving), interval
    stray = [t for t in moving if not any(i.start - 0.5 <= t < i.end + 0.5 for i in truth)]
    assert stray == []
