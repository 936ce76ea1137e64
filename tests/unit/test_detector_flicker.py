"""A light on mains power seen through a rolling shutter bands the rows (``kernels.rows``).

The gain swings by a few to 20 % from one band to the next and the bands jump from frame to
frame, so every cell in a band changes as much as the band is deep. Before each row got a
light of its own, the start-up took that for chronic motion everywhere and nobody walking
under such a light was found.
"""

from __future__ import annotations

import pytest

from support.luma import scene_results


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
    moving = [t for t, r, _ in results if r.motion]
    for interval in scene.truth:
        assert any(interval.start <= t < interval.end for t in moving), interval
    stray = [t for t in moving if not any(i.start - 0.5 <= t < i.end + 0.5 for i in scene.truth)]
    assert stray == []
