"""The camera's lens for camsim scenes: focus that goes soft and sharp again.

A camera refocuses when it switches to IR at night (infrared focuses behind visible light),
a varifocal lens hunts for focus after a zoom or a knock, dew or a spider's thread softens
the view. Nothing in the scene moves, but every edge in it blurs, or sharpens again: the
change is largest along strong edges and stays. ``radius`` gives the blur at a time;
``soften`` blurs a plane by it (two box passes, close to the disc of a defocused lens).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from privastead.camsim.texture import F32


@dataclass(frozen=True)
class Refocus:
    """From ``t`` the lens blurs by ``blur`` (the blur's radius as a fraction of the frame
    height, so that a refocus softens every rendering of a scene alike; 0 is sharp), reached
    in a ramp of ``ramp`` seconds from what it was."""

    t: float
    blur: float
    ramp: float = 0.0


def radius(changes: tuple[Refocus, ...], t: float, height: int) -> float:
    """The blur's radius in pixels at ``t``: each change ramps from the blur before it."""
    blur = 0.0
    for change in changes:
        if t < change.t:
            break
        done = 1.0 if change.ramp <= 0 else min(1.0, (t - change.t) / change.ramp)
        blur += done * (change.blur - blur)
    return blur * height


def _box(plane: F32, half: int, axis: int) -> F32:
    """A running mean over ``2 * half + 1`` samples along ``axis``, edges repeated."""
    pad = [(0, 0), (0, 0)]
    pad[axis] = (half + 1, half)
    sums = np.cumsum(np.pad(plane, pad, mode="edge"), axis=axis, dtype=np.float64)
    width = 2 * half + 1
    ahead = sums.take(np.arange(width, sums.shape[axis]), axis=axis)
    behind = sums.take(np.arange(0, sums.shape[axis] - width), axis=axis)
    out: F32 = ((ahead - behind) / width).astype(np.float32)
    return out


def soften(plane: F32, blur: float) -> F32:
    """``plane`` through a lens that blurs by ``blur`` pixels (radius): two box passes of
    about half that radius each way, so the spread matches a disc of that radius; under half
    a pixel the plane is left as it is."""
    half = round(blur / 2)
    if half < 1:
        return plane
    out = plane
    for _ in range(2):
        out = _box(_box(out, half, 0), half, 1)
    return out


__all__ = ["Refocus", "radius", "soften"]
