"""A knocked camera: the whole view jumps a few pixels and stays (``media.view``).

Every textured cell then differs from the background, in sharp, sudden blobs that stand still,
as a person who just stepped into view does. The detector asks whether the frame is the
background seen through a moved camera and treats a yes as a global change; people are still
found, before and after, and an object is never explained away as a move.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from privastead.media.decode import LumaFrame
from privastead.media.detector import MotionDetector, MotionResult
from privastead.media.settings import DetectionSettings
from privastead.media.view import estimate
from support.luma import assert_found_and_nothing_else, scene_results

FPS = 15.0
F32 = npt.NDArray[np.float32]


def _texture(rows: int, cols: int, seed: int = 3) -> npt.NDArray[np.float32]:
    """A smooth random texture of block means (levels 40-200)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(40, 200, (rows // 4 + 2, cols // 4 + 2))
    fine = np.kron(coarse, np.ones((4, 4)))[:rows, :cols]
    smooth = (fine + np.roll(fine, 1, 0) + np.roll(fine, 1, 1) + np.roll(fine, (1, 1), (0, 1))) / 4
    return smooth.astype(np.float32)


def _shifted(plane: F32, dy: float, dx: float) -> F32:
    """``plane`` with its content moved by ``dy``, ``dx`` cells: ``out(r, c) = plane(r - dy,
    c - dx)``, bilinear between cells, edges repeated."""
    rows, cols = plane.shape
    pad = math.ceil(max(abs(dy), abs(dx))) + 1
    padded = np.pad(plane, pad, mode="edge")
    iy, ix = math.floor(dy), math.floor(dx)
    fy, fx = dy - iy, dx - ix

    def window(oy: int, ox: int) -> F32:
        return padded[pad - oy : pad - oy + rows, pad - ox : pad - ox + cols]

    top = (1 - fx) * window(iy, ix) + fx * window(iy, ix + 1)
    bottom = (1 - fx) * window(iy + 1, ix) + fx * window(iy + 1, ix + 1)
    out: F32 = ((1 - fy) * top + fy * bottom).astype(np.float32)
    return out


@pytest.mark.parametrize("move", [(0.3, -0.45), (-0.8, 0.2), (1.4, 1.1)])
def test_the_move_of_a_textured_view_is_estimated(move: tuple[float, float]) -> None:
    bg = _texture(120, 213)
    m = _shifted(bg, *move)
    use = np.zeros(bg.shape, bool)
    use[4:-4, 4:-4] = True
    dy, dx = estimate(m, bg, use)
    assert abs(dy - move[0]) < 0.1
    assert abs(dx - move[1]) < 0.1


def test_a_flat_view_gives_no_move() -> None:
    bg = np.full((60, 100), 90.0, np.float32)
    assert estimate(bg + 3.0, bg, np.ones(bg.shape, bool)) == (0.0, 0.0)


@pytest.mark.parametrize("seed", [1, 6])
def test_a_knocked_camera_is_not_an_object(seed: int) -> None:
    # Seeds whose knocks made the detector report an object for seconds before this test.
    results, scene = scene_results("knock", seed)
    assert scene.phenomena.knocks
    assert [t for t, r, _ in results if r.motion] == []
    # Each knock (all after the start-up) was a global change within half a second: the view
    # moving, or (as it rings, overshooting at first) a large part changing at once.
    changes = [t for t, r, _ in results if r.global_change]
    for knock in scene.phenomena.knocks:
        assert any(knock.t <= t <= knock.t + 0.5 for t in changes), (knock, changes)
    assert any("the view moved by" in note for _, r, note in results if r.global_change)


def test_people_crossing_a_knocked_view_are_found_and_nothing_else() -> None:
    results, scene = scene_results("knockwalk", 1)
    assert_found_and_nothing_else(results, scene)


def test_a_person_stepping_into_view_is_not_a_move() -> None:
    """A large patterned object walking onto textured ground: the frames are not the
    background moved, whatever the object's own texture."""
    rng = np.random.default_rng(5)
    width, height = 640, 360
    ground = np.kron(rng.uniform(40, 200, (height // 6, width // 6)), np.ones((6, 6)))
    # A tall person in a striped coat: a third of the frame high, stripes 4 px apart.
    stripes = np.where((np.arange(120) // 4) % 2 == 0, 30.0, 220.0)[:, None]
    det = MotionDetector(DetectionSettings(), width, height)
    seen: list[MotionResult] = []
    for index in range(int(10 * FPS)):
        t = index / FPS
        picture = ground.copy()
        if t >= 8.0:
            left = 200 + round(6 * (t - 8.0) * FPS)
            picture[150:270, left : left + 50] = stripes
        y = np.clip(picture + rng.normal(0, 2, picture.shape), 0, 255).astype(np.uint8)
        result = det.process(LumaFrame(y, t, False))
        if t >= 8.0:
            seen.append(result)
    assert not any(r.global_change for r in seen)
    assert any(r.motion for r in seen)
