"""Scripted objects of camsim scenes: people and cars moving through waypoints.

An actor exists from its first to its last waypoint; where its silhouette overlaps the frame
it is ground truth (what a motion detector must find). Silhouettes are boolean masks drawn
at the frame's resolution, so the same script looks the same at 360p and at 4K.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Walker:
    """A person (or a car, ``kind="car"``) moving through waypoints ``(t, x, y)``: the centre
    of the feet (wheels), normalised 0..1 of the frame."""

    path: tuple[tuple[float, float, float], ...]
    height: float  # fraction of frame height
    luma: float  # clothing (paint) brightness 0..255 under day light
    colour: tuple[float, float] = (0.0, 0.0)  # (U, V) offsets from grey
    kind: Literal["person", "car"] = "person"
    #: Cars at night: headlights throw a pool of light ahead (part of the object's event).
    lights: bool = False

    def position(self, t: float) -> tuple[float, float] | None:
        times = [p[0] for p in self.path]
        if t < times[0] or t > times[-1]:
            return None
        x = float(np.interp(t, times, [p[1] for p in self.path]))
        y = float(np.interp(t, times, [p[2] for p in self.path]))
        return x, y

    def direction(self, t: float) -> float:
        """+1 moving right, -1 moving left, 0 standing."""
        a, b = self.position(t - 0.05), self.position(t + 0.05)
        if a is None or b is None:
            return 0.0
        return float(np.sign(b[0] - a[0]))

    @property
    def aspect(self) -> float:
        """Width / height of the silhouette's box."""
        return 2.6 if self.kind == "car" else 0.4


def silhouette(walker: Walker, t: float, height: int, width: int) -> tuple[Mask, int, int] | None:
    """The actor's pixel mask clipped to the frame and its top-left corner, or None."""
    pos = walker.position(t)
    if pos is None:
        return None
    ph = max(4, round(walker.height * height))
    pw = max(2, round(ph * walker.aspect))
    x0, y0 = round(pos[0] * width - pw / 2), round(pos[1] * height - ph)
    ys0, xs0 = max(0, y0), max(0, x0)
    ys1, xs1 = min(height, y0 + ph), min(width, x0 + pw)
    if ys1 <= ys0 or xs1 <= xs0:
        return None
    gy, gx = np.mgrid[ys0 - y0 : ys1 - y0, xs0 - x0 : xs1 - x0].astype(np.float32)
    nx = (gx + 0.5) / pw - 0.5
    ny = (gy + 0.5) / ph
    mask = _car(nx, ny) if walker.kind == "car" else _person(nx, ny, t)
    if not mask.any():
        return None
    return mask, ys0, xs0


def _person(nx: npt.NDArray[np.float32], ny: npt.NDArray[np.float32], t: float) -> Mask:
    head = (nx / 0.22) ** 2 + ((ny - 0.09) / 0.09) ** 2 < 1
    body = (np.abs(nx) < 0.32 - 0.1 * (ny > 0.5)) & (ny > 0.17)
    # Legs: a gap between them that opens and closes with the stride.
    stride = abs(math.sin(t * 6.0)) * 0.18
    legs = (ny > 0.55) & (np.abs(nx) < 0.05 + stride * (ny - 0.55))
    mask: Mask = (head | body) & ~legs
    return mask


def _car(nx: npt.NDArray[np.float32], ny: npt.NDArray[np.float32]) -> Mask:
    body = (ny > 0.42) & (ny < 0.9) & (np.abs(nx) < 0.5 - 0.04 * (ny < 0.55))
    cabin = (ny > 0.08) & (ny <= 0.42) & (nx > -0.28 + 0.3 * (0.42 - ny)) & (nx < 0.22)
    wheels = ((np.abs(nx) - 0.3) ** 2 / 0.01 + (ny - 0.88) ** 2 / 0.012) < 1
    mask: Mask = body | cabin | wheels
    return mask


def shade(walker: Walker, mask: Mask, ys0: int, ir: bool) -> npt.NDArray[np.float32]:
    """Brightness of the actor's pixels (clothing stripes, car windows and wheels)."""
    rows = np.arange(ys0, ys0 + mask.shape[0], dtype=np.float32)[:, None]
    base = ir_luma(walker.luma) if ir else walker.luma
    if walker.kind == "car":
        level = np.full(mask.shape, base, np.float32)
        top = mask.shape[0] * 0.42
        ry = np.arange(mask.shape[0], dtype=np.float32)[:, None] * np.ones((1, mask.shape[1]))
        level = np.where(ry < top, base * 0.35 + 10, level)  # windows: dark glass
        level = np.where(ry > mask.shape[0] * 0.82, 25.0, level)  # tyres
        return level.astype(np.float32)
    stripes = 8 * np.sin(rows * 0.7)
    return (base + stripes * np.ones(mask.shape, np.float32)).astype(np.float32)


def ir_luma(luma: float) -> float:
    """Under IR, dark fabrics stay dark and light ones (cotton) glow: contrast survives."""
    return luma * 0.75 if luma < 100 else min(235.0, luma * 1.12)


__all__ = ["Walker", "ir_luma", "shade", "silhouette"]
