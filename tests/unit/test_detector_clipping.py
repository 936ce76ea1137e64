"""Highlights that clip under auto exposure are light, not objects; a person in front of them is
an object.

A textured yard with a bright wall: the exposure steps up by 30 % (ramped over half a second)
and then hunts, and a good part of the wall's pixels reach 255. Its blocks brighten less than
the brightness model predicts, by an amount the block means alone cannot tell from something
darker standing there (``kernels.clipping``, whose own tests show the cells it explains). Here
the whole detector is run: the step stays light, and a person in dark clothes walking along
the clipped wall, whose blocks hold clipped pixels at their edges, is still found.
"""

from __future__ import annotations

import numpy as np

from privastead.media.decode import LumaFrame
from support.luma import camera_frame, motion_times

W, H, FPS, SECONDS = 320, 180, 10.0, 30.0
STEP_AT, STEP, RAMP = 12.0, 1.3, 0.5


def _exposure(t: float) -> float:
    """Steps up by STEP over RAMP seconds, then hunts by a few per cent."""
    step = 1.0 + (STEP - 1.0) * min(1.0, max(0.0, (t - STEP_AT) / RAMP))
    hunt = 0.04 * np.sin(2 * np.pi * 0.4 * (t - STEP_AT)) if t > STEP_AT + RAMP else 0.0
    return float(step + hunt)


def _frames(*, person: bool) -> list[LumaFrame]:
    rng = np.random.default_rng(11)
    # a yard with fine texture, and a wall over the top half: brighter and darker patches a
    # few blocks wide, each with its pixels spread over 60 levels, so that as the exposure
    # rises whole patches clip in part (at x1.3 everything over 196 does)
    ys, xs = np.mgrid[0:H, 0:W]
    yard = rng.uniform(60.0, 160.0, (H, W))
    patches = 185.0 + 30.0 * np.sin(xs / 17.0) * np.cos(ys / 13.0)
    yard[:90] = (patches + rng.uniform(-30.0, 30.0, (H, W)))[:90]
    frames = []
    for i in range(int(SECONDS * FPS)):
        t = i / FPS
        y = yard * _exposure(t)
        if person and 18.0 <= t <= 28.0:
            x0 = int(10 + 25.0 * (t - 18.0))  # 10 x 30 px, along the wall, 25 px/s
            y[40:70, x0 : x0 + 10] = 50.0 * _exposure(t)
        frames.append(camera_frame(y, t, i, rng))
    return frames


def test_highlights_clipping_as_the_exposure_steps_up_are_not_an_object() -> None:
    assert motion_times(_frames(person=False)) == []


def test_a_person_in_front_of_the_clipped_wall_is_an_object() -> None:
    times = motion_times(_frames(person=True))
    assert times, "the person was missed"
    assert all(18.0 <= t <= 29.0 for t in times), times
