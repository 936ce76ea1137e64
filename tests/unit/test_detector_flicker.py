"""A light on mains power seen through a rolling shutter bands the rows (``kernels.rows``).

The gain swings by a few to 20 % from one band to the next and the bands jump from frame to
frame, so every cell in a band changes as much as the band is deep. Before each row got a
light of its own, the start-up took that for chronic motion everywhere and nobody walking
under such a light was found.
"""

from __future__ import annotations

import numpy as np
import pytest

from privastead.media.detector import MotionDetector
from privastead.media.settings import DetectionSettings
from support.luma import assert_found_and_nothing_else, camera_frame, scene_results


@pytest.mark.parametrize("seed", [0, 2])
def test_the_bands_of_a_mains_light_are_no_motion(seed: int) -> None:
    results, scene = scene_results("flicker", seed)
    flicker = scene.phenomena.flicker
    assert flicker is not None and flicker.depth > 0.1
    assert [t for t, r, _ in results if r.motion] == []
    assert not any(r.global_change for _, r, _ in results)


@pytest.mark.parametrize("seed", [0, 1])
def test_people_under_a_banding_light_are_found_and_nothing_else(seed: int) -> None:
    # Both seeds' people were all missed before the rows had a light of their own.
    results, scene = scene_results("flickerwalk", seed)
    assert_found_and_nothing_else(results, scene)


def test_bands_over_a_bright_sky_and_dark_ground_leave_the_whole_view_model_alone() -> None:
    """The whole-view fit takes its slope from the darkest and brightest thirds, which here
    sit in different rows, so the bands pulled it (a gain of 0.86-0.95 and an offset of up
    to 11 where the light as a whole did not change) and row gains over that model left the
    person unseen. Fitted again with the bands taken out, the model stays at the light."""
    rng = np.random.default_rng(7)
    width, height, fps = 640, 360, 10.0
    texture = np.kron(rng.uniform(-25, 25, (height // 6, width // 8)), np.ones((6, 8)))
    scene = np.where(np.arange(height)[:, None] < 0.4 * height, 190.0, 70.0) + texture
    rows = np.arange(height)[:, None] / height
    det = MotionDetector(DetectionSettings(), width, height)
    gains, moving = [], []
    for index in range(int(20 * fps)):
        t = index / fps
        picture = scene.copy()
        if t >= 10.0:  # a dark figure walks across the ground
            left = int(40 + 45 * (t - 10.0))
            picture[200:320, left : left + 40] = 20.0
        band = 1.0 + 0.19 * np.cos(2 * np.pi * (5 * rows + 0.67 * index))
        result = det.process(camera_frame(picture * band, t, index, rng))
        if t >= 7.0 and det.explain is not None and det.explain.note == "":
            gains.append(det.explain.gain)
        if result.motion:
            moving.append(t)
    g, o = np.array(gains).T
    assert np.abs(g - 1.0).max() < 0.04 and np.abs(o).max() < 2.0
    assert moving and min(moving) >= 10.0
