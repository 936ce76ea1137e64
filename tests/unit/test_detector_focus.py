"""A lens that goes soft and sharp again: the IR switch refocusing, a varifocal lens hunting.

Block means average fine texture out, so a blur shows only along edges a block or more apart,
in cells that stand still and stay changed: exactly what a person who just stepped into view
and stopped looks like. The detector asks whether a changed cell is the background softened
(or, once it learned the soft view, sharpened again) and takes such cells as the light test
takes a lamp's pool; people are still found, in a soft view and as it sharpens.
"""

from __future__ import annotations

import pytest

from support.luma import assert_found_and_nothing_else, scene_results


@pytest.mark.parametrize("seed", [0, 4])
def test_a_lens_going_soft_and_sharp_again_is_not_an_object(seed: int) -> None:
    # Seeds whose refocusing made the detector report an object for seconds before this test.
    results, scene = scene_results("focus", seed)
    changes = [c for c in scene.phenomena.focus if c.t < scene.duration]
    assert any(c.blur > 0 for c in changes) and any(c.blur == 0 for c in changes)
    assert [t for t, r, _ in results if r.motion] == []


def test_people_crossing_while_the_lens_refocuses_are_found_and_nothing_else() -> None:
    results, scene = scene_results("focuswalk", 4)
    assert scene.phenomena.focus
    assert_found_and_nothing_else(results, scene)
