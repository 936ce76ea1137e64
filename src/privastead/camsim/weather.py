"""Rain and snow for camsim scenes: many small, short-lived, fast things in front of everything.

Two renderings of each, so a detector cannot be tuned to one look:

- ``rain``: the classic short, thin streaks (legacy scenes); ``streaks``: long motion-blurred
  streaks with a slant, semi-transparent, some wider (drops close to the lens), falling
  through several frames' worth of length per frame.
- ``snow``: small persistent flakes that fall slowly and drift; ``near_flakes``: big, soft,
  out-of-focus flakes right in front of the lens that cross the view in a second or less.

Sizes and densities are relative to the frame, so 360p and 4K look alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from privastead.camsim.texture import F32
from privastead.camsim.texture import rng as make_rng


@dataclass(frozen=True)
class Streaks:
    """Long rain streaks. ``density``: streaks per 1000 px^2 of a 640x360 frame (scaled)."""

    density: float
    length: float = 0.08  # fraction of frame height
    slant: float = 0.15  # horizontal px per vertical px
    brightness: tuple[float, float] = (10.0, 35.0)
    wide: float = 0.1  # share of streaks two or three px wide (drops near the lens)


@dataclass(frozen=True)
class NearFlakes:
    """Out-of-focus flakes close to the lens: ``count`` in view at any time."""

    count: int
    size: tuple[float, float] = (0.012, 0.035)  # radius, fraction of frame height
    speed: tuple[float, float] = (0.5, 1.2)  # frame heights per second


def draw_rain(y: F32, rng: np.random.Generator, density: float) -> None:
    """Short thin streaks at random places each frame (the legacy rendering)."""
    h, w = y.shape
    n = int(density * h * w / 1000)
    length = max(3, h // 40)
    xs = rng.integers(0, w, n)
    ys = rng.integers(-length, h, n)
    bright = rng.uniform(15, 45, n).astype(np.float32)
    steps = np.arange(length)
    rr = ys[:, None] + steps[None, :]
    cc = xs[:, None] + (steps[None, :] // 4)  # slight slant from wind
    ok = (rr >= 0) & (rr < h) & (cc < w)
    # Plain fancy-index add (where streaks cross, one of them wins): np.add.at is
    # exact but ten times slower, and at 4K rain would dominate rendering.
    y[rr[ok], cc[ok]] += np.broadcast_to(bright[:, None], rr.shape)[ok]


def draw_streaks(y: F32, rng: np.random.Generator, streaks: Streaks) -> None:
    """Long, slanted, semi-transparent streaks; the count scales with the frame area."""
    h, w = y.shape
    scale = (h * w) / (640 * 360)
    n = int(streaks.density * 640 * 360 / 1000 * scale / max(1.0, streaks.length * 40))
    length = max(4, round(streaks.length * h))
    xs = rng.uniform(-streaks.slant * length, w, n)
    ys = rng.integers(-length, h, n)
    bright = rng.uniform(*streaks.brightness, n).astype(np.float32)
    # Widths scale with the resolution (the same optics at 4K draw a wider streak).
    unit = max(1, round(h / 720))
    width = unit * np.where(rng.random(n) < streaks.wide, rng.integers(2, 4, n), 1)
    steps = np.arange(length, dtype=np.float32)
    # fade in and out along the streak: motion blur of a drop crossing the exposure
    profile = np.sin(np.pi * (steps + 0.5) / length).astype(np.float32)
    for extra in range(int(width.max()) if n else 0):
        sel = width > extra
        if not sel.any():
            continue
        rr = ys[sel, None] + steps[None, :].astype(np.int64)
        cc = (xs[sel, None] + streaks.slant * steps[None, :]).astype(np.int64) + extra
        ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        add = (bright[sel, None] * profile[None, :])[ok]
        region = y[rr[ok], cc[ok]]
        # a drop brightens what is behind it, less so where it is already bright
        y[rr[ok], cc[ok]] = region + add * (1.0 - region / 300.0)


def draw_snow(y: F32, seed: int, salt: int, density: float, t: float) -> None:
    """Flakes are persistent particles that fall slowly and drift, so they move coherently
    between frames (harder than rain), but each is tiny."""
    h, w = y.shape
    n = int(density * h * w / 1000)
    srng = make_rng(seed, salt, 3)
    x0 = srng.uniform(0, w, n)
    y0 = srng.uniform(0, h, n)
    speed = srng.uniform(0.04, 0.12, n) * h
    size = np.maximum(1, (srng.uniform(0.002, 0.005, n) * h)).astype(np.int32)
    phase = srng.uniform(0, 6.28, n)
    fy = (y0 + speed * t) % h
    fx = (x0 + 0.01 * w * np.sin(t * 1.3 + phase)) % w
    for s in np.unique(size):
        sel = size == s
        oy, ox = np.mgrid[0:s, 0:s]
        rr = (fy[sel].astype(np.int32)[:, None] + oy.ravel()[None, :]) % h
        cc = (fx[sel].astype(np.int32)[:, None] + ox.ravel()[None, :]) % w
        y[rr, cc] = 0.3 * y[rr, cc] + 0.7 * 225


def draw_near_flakes(y: F32, seed: int, salt: int, flakes: NearFlakes, t: float) -> None:
    """Big soft discs falling fast in front of everything; each flake lives for one crossing
    and a new one takes its place (deterministic in ``t``)."""
    h, w = y.shape
    for i in range(flakes.count):
        frng = make_rng(seed, salt, 7, i)
        speed = float(frng.uniform(*flakes.speed))
        period = (1.0 + 2 * flakes.size[1]) / speed
        offset = float(frng.uniform(0, period))
        lap = int((t + offset) // period)
        lrng = make_rng(seed, salt, 8, i, lap)
        radius = float(lrng.uniform(*flakes.size)) * h
        cx = float(lrng.uniform(0, 1)) * w + float(lrng.uniform(-0.1, 0.1)) * w * (
            ((t + offset) % period) / period
        )
        cy = (((t + offset) % period) * speed - flakes.size[1]) * h
        x0, x1 = max(0, int(cx - 2 * radius)), min(w, int(cx + 2 * radius) + 1)
        y0, y1 = max(0, int(cy - 2 * radius)), min(h, int(cy + 2 * radius) + 1)
        if x1 <= x0 or y1 <= y0:
            continue
        gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        d2 = ((gx - cx) ** 2 + (gy - cy) ** 2) / (radius * radius)
        alpha = 0.55 * np.exp(-d2 * 1.5)
        region = y[y0:y1, x0:x1]
        region += alpha * (230.0 - region)


__all__ = [
    "NearFlakes",
    "Streaks",
    "draw_near_flakes",
    "draw_rain",
    "draw_snow",
    "draw_streaks",
]
