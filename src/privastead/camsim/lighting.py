"""Light changes for camsim scenes: the things that change brightness without anything moving.

- ``light_steps``: the whole frame brightens or darkens by a factor from one frame to the next
  (a lamp that lights everything, a floodlight, the camera's gain jumping), clipping where the
  sensor saturates;
- ``ae_steps``: the camera's auto exposure correcting in a quick ramp (0.2-0.5 s);
- ``headlights``: a pool of light sweeping across the ground (a car passing outside the view);
- ``clouds``: soft shadows drifting across a sunny scene;
- ``flicker``: a light on mains power seen through a rolling shutter (bands across the rows).

Each returns a gain (a number or a per-pixel map) that multiplies the scene's luma.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from privastead.camsim.texture import F32, upsample
from privastead.camsim.texture import rng as make_rng


@dataclass(frozen=True)
class Sweep:
    """A pool of light crossing the view: starts at ``t``, lasts ``seconds``, at height ``y``
    (fraction of the frame), ``strength`` x brighter at its centre."""

    t: float
    seconds: float
    y: float
    strength: float
    left_to_right: bool = True


def step_gain(steps: tuple[tuple[float, float], ...], t: float) -> float:
    """Product of the factors of every step at or before ``t`` (instant)."""
    gain = 1.0
    for at, factor in steps:
        if t >= at:
            gain *= factor
    return gain


def ramp_gain(steps: tuple[tuple[float, float], ...], t: float, seconds: float = 0.35) -> float:
    """Like ``step_gain`` but each step ramps linearly over ``seconds`` (auto exposure)."""
    gain = 1.0
    for at, factor in steps:
        share = min(1.0, max(0.0, (t - at) / seconds))
        gain *= 1.0 + (factor - 1.0) * share
    return gain


def sweep_map(sweep: Sweep, t: float, h: int, w: int) -> F32 | None:
    """The gain map of a headlight sweep at ``t`` (None outside its time)."""
    share = (t - sweep.t) / sweep.seconds
    if not 0.0 <= share <= 1.0:
        return None
    cx = (-0.3 + 1.6 * share) if sweep.left_to_right else (1.3 - 1.6 * share)
    # brightening and fading as the car turns into and away from the view
    level = sweep.strength * math.sin(math.pi * share) ** 0.5
    ys = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    xs = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    pool = np.exp(-(((xs - cx) / 0.22) ** 2) - ((ys - sweep.y) / 0.18) ** 2)
    result: F32 = (1.0 + level * pool).astype(np.float32)
    return result


@dataclass(frozen=True)
class Flicker:
    """A light on mains power seen through a rolling shutter.

    The light pulses at twice the mains frequency (``pulses``: about 100 or 120 Hz, a little
    off as the grid wanders) and the sensor exposes each row a little later than the one
    above it (``readout``: the share of a frame time the shutter takes from top to bottom),
    so a frame shows horizontal bands where the gain swings ``1 +/- depth``. There are
    ``pulses * readout / fps`` of them; from one frame to the next they jump by the
    fractional part of ``pulses / fps`` cycles, or roll slowly where the frame rate divides
    the pulses (the grid's wander)."""

    depth: float
    pulses: float
    readout: float
    phase: float


def flicker_gain(flicker: Flicker, t: float, h: int, fps: float) -> F32:
    """The gain of each row (an ``(h, 1)`` column) of the frame exposed from ``t``."""
    rows = np.arange(h, dtype=np.float64)[:, None] / h
    when = t + flicker.readout * rows / fps
    cycles = flicker.pulses * when + flicker.phase
    gain: F32 = (1.0 + flicker.depth * np.cos(2.0 * math.pi * cycles)).astype(np.float32)
    return gain


class Clouds:
    """Soft shadows drifting across the ground: a fixed random field sliding sideways. They
    fall on the ground, not on the sky: the shadow fades out over the upper part of the
    view (the sky brightens and darkens as a whole, which the exposure drift covers)."""

    def __init__(self, seed: int, salt: int, h: int, w: int, *, depth: float, speed: float) -> None:
        rng = make_rng(seed, salt, 9)
        gh, gw = 4, 12
        grid = rng.standard_normal((gh + 1, gw + 1)).astype(np.float32)
        field = upsample(grid, h, 3 * w)
        # shadows cover roughly half of the field, with soft edges
        ground = np.clip((np.linspace(0, 1, h, dtype=np.float32) - 0.25) / 0.2, 0, 1)[:, None]
        self.field = (depth * ground * np.clip(0.5 + 0.9 * field, 0.0, 1.0)).astype(np.float32)
        self.speed = speed  # frame widths per second
        self.w = w

    def gain(self, t: float) -> F32:
        offset = int(self.speed * t * self.w) % (2 * self.w)
        result: F32 = 1.0 - self.field[:, offset : offset + self.w]
        return result


__all__ = ["Clouds", "Flicker", "Sweep", "flicker_gain", "ramp_gain", "step_gain", "sweep_map"]
