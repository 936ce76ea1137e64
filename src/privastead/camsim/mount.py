"""The camera's mount for camsim scenes: knocks that move the view.

A camera on a pole or a wall is knocked now and then (a door slams, a ball hits it, a truck
passes, a gust): the whole view jumps by a few pixels, rings for a moment and settles where
it ended up. Nothing in the scene moved, but every edge of its texture did. ``offset`` gives
the view's displacement at a time; ``shift`` moves a plane by it, repeating the edge rows and
columns the way a real sensor shows the scene just beyond them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from privastead.camsim.texture import F32

#: A knock rings at this frequency (Hz) and dies away with this time constant (s).
RING_HZ, RING_SECONDS = 5.0, 0.15


@dataclass(frozen=True)
class Knock:
    """At ``t`` the view jumps by ``dx``, ``dy`` (fractions of the frame height, so that a
    knock moves every rendering of a scene alike) and stays there."""

    t: float
    dx: float
    dy: float


def offset(knocks: tuple[Knock, ...], t: float, height: int) -> tuple[int, int]:
    """The view's displacement ``(dy, dx)`` in whole pixels at ``t``: the sum of every knock
    so far, each overshooting at first and ringing down to its own step."""
    dy = dx = 0.0
    for knock in knocks:
        if t < knock.t:
            continue
        age = t - knock.t
        swing = 1.0 + math.exp(-age / RING_SECONDS) * math.cos(2 * math.pi * RING_HZ * age)
        dy += knock.dy * swing
        dx += knock.dx * swing
    return round(dy * height), round(dx * height)


def shift(plane: F32, dy: int, dx: int) -> F32:
    """``plane`` seen through a view moved by ``dy``, ``dx`` pixels (content moves that way),
    edges repeated."""
    if dy == 0 and dx == 0:
        return plane
    rows, cols = plane.shape
    pad = max(abs(dy), abs(dx))
    padded = np.pad(plane, pad, mode="edge")
    moved: F32 = padded[pad - dy : pad - dy + rows, pad - dx : pad - dx + cols]
    return np.ascontiguousarray(moved)


__all__ = ["Knock", "offset", "shift"]
