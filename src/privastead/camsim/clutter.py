"""Continuous local motion for camsim scenes: things that move all the time, in place.

Swaying foliage (bushes and trees in gusty wind, a travelling wave up the crown), rippling
water with sun glints, and flags. A detector must learn where such motion is chronic and stay
quiet there, without masks, while still seeing a person who walks in front of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from privastead.camsim.texture import F32, value_noise
from privastead.camsim.texture import rng as make_rng


@dataclass(frozen=True)
class Bush:
    """One swaying plant: its box, leaf texture with a margin for the sway, and motion."""

    y0: int
    x0: int
    h: int
    w: int
    texture: F32
    alpha: F32
    freq: float
    phase: float
    gust_period: float = 9.0
    strength: float = 1.0  # sway amplitude, in margins


def draw_bush(y: F32, bush: Bush, t: float, ir: bool) -> None:
    tex, alpha = bush.texture, bush.alpha
    margin = (tex.shape[1] - bush.w) // 2
    gust = 0.6 + 0.4 * math.sin(2 * math.pi * t / bush.gust_period + bush.phase) ** 2
    rows = np.arange(bush.h, dtype=np.float32)
    # Tops of trees sway more than trunks; each row lags a little (a travelling wave).
    amp = margin * 0.9 * bush.strength * gust * (1.2 - rows / bush.h)
    shift = amp * np.sin(2 * math.pi * bush.freq * t + bush.phase + rows * (3.0 / bush.h))
    cols = np.arange(bush.w)[None, :] + margin + np.rint(shift).astype(np.int32)[:, None]
    cols = np.clip(cols, 0, tex.shape[1] - 1)
    r = np.arange(bush.h)[:, None]
    leaves = tex[r, cols] * (1.6 if ir else 1.0)
    a = alpha[r, cols]
    region = y[bush.y0 : bush.y0 + bush.h, bush.x0 : bush.x0 + bush.w]
    region += a * (leaves - region)


@dataclass(frozen=True)
class Water:
    """A rippling strip of water: box, level, wave numbers, glint threshold."""

    y0: int
    x0: int
    h: int
    w: int
    level: float
    waves: tuple[tuple[float, float, float, float], ...]  # (kx, ky, omega, amplitude)
    glint: float


def make_water(seed: int, salt: int, h: int, w: int) -> Water:
    rng = make_rng(seed, salt, 10)
    wh = int(h * rng.uniform(0.12, 0.22))
    ww = int(w * rng.uniform(0.3, 0.6))
    y0 = int(h * rng.uniform(0.62, 0.98 - wh / h))
    x0 = int(rng.uniform(0, w - ww))
    waves = tuple(
        (
            float(rng.uniform(20, 60)) / h,
            float(rng.uniform(60, 140)) / h,
            float(rng.uniform(2.0, 6.0)),
            float(rng.uniform(6, 14)),
        )
        for _ in range(3)
    )
    return Water(y0, x0, wh, ww, float(rng.uniform(70, 120)), waves, float(rng.uniform(18, 26)))


def draw_water(y: F32, water: Water, t: float) -> None:
    gy, gx = np.mgrid[0 : water.h, 0 : water.w].astype(np.float32)
    ripple = np.zeros((water.h, water.w), np.float32)
    for kx, ky, omega, amp in water.waves:
        ripple += amp * np.sin(kx * gx + ky * gy - omega * t)
    glints = np.where(ripple > water.glint, 70.0, 0.0)
    y[water.y0 : water.y0 + water.h, water.x0 : water.x0 + water.w] = water.level + ripple + glints


@dataclass(frozen=True)
class Flag:
    y0: int
    x0: int
    h: int
    w: int
    level: float
    freq: float


def make_flag(seed: int, salt: int, index: int, h: int, w: int) -> Flag:
    rng = make_rng(seed, salt, 11, index)
    fh = max(6, int(h * rng.uniform(0.05, 0.09)))
    fw = int(fh * rng.uniform(1.4, 1.8))
    return Flag(
        int(h * rng.uniform(0.1, 0.3)),
        int(rng.uniform(0.05, 0.9) * (w - fw)),
        fh,
        fw,
        float(rng.choice([60.0, 190.0])),
        float(rng.uniform(1.0, 2.2)),
    )


def draw_flag(y: F32, flag: Flag, t: float) -> None:
    gx = np.arange(flag.w, dtype=np.float32)[None, :]
    gy = np.arange(flag.h, dtype=np.float32)[:, None]
    phase = 2 * math.pi * (flag.freq * t - gx / (0.6 * flag.w))
    # folds shade the cloth; the free end flaps up and down
    shading = flag.level + 35 * np.sin(phase) * (gx / flag.w)
    lift = (0.18 * flag.h * np.sin(phase) * (gx / flag.w)).astype(np.float32)
    inside = (gy >= lift) & (gy < flag.h + lift - 0.1 * flag.h * (gx / flag.w))
    region = y[flag.y0 : flag.y0 + flag.h, flag.x0 : flag.x0 + flag.w]
    region[:] = np.where(inside, shading, region)
    y[flag.y0 : flag.y0 + flag.h + flag.h // 2, max(0, flag.x0 - 2) : flag.x0] = 50  # pole


def make_bush(rng: np.random.Generator, h: int, w: int) -> Bush:
    """A bush or tree at a random place (draws from ``rng`` in a fixed order)."""
    fh = int(h * rng.uniform(0.22, 0.35))
    fw = int(w * rng.uniform(0.12, 0.2))
    x0 = int(rng.uniform(0.02, 0.98) * (w - fw))
    y0 = int(h * rng.uniform(0.3, 0.6))
    y0 = min(y0, h - fh)
    margin = max(4, fw // 8)
    tex = 70 + value_noise(
        rng, fh, fw + 2 * margin, ((max(2, fh // 12), 30.0), (max(2, fh // 4), 18.0))
    )
    gy, gx = np.mgrid[0:fh, 0 : fw + 2 * margin].astype(np.float32)
    blob = 1 - (((gx - (fw / 2 + margin)) / (fw / 2)) ** 2 + ((gy - fh / 2) / (fh / 2)) ** 2)
    alpha = np.clip(
        blob * 3 + 0.3 * value_noise(rng, fh, fw + 2 * margin, ((max(2, fh // 6), 1.0),)),
        0,
        1,
    )
    return Bush(
        y0,
        x0,
        fh,
        fw,
        tex.astype(np.float32),
        alpha.astype(np.float32),
        float(rng.uniform(0.4, 0.9)),
        float(rng.uniform(0, 6.28)),
    )


__all__ = [
    "Bush",
    "Flag",
    "Water",
    "draw_bush",
    "draw_flag",
    "draw_water",
    "make_bush",
    "make_flag",
    "make_water",
]
