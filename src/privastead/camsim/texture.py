"""Procedural textures for camsim scenes: value noise and three kinds of background.

``yard`` (lawn, buildings, fence), ``street`` (houses, pavement, asphalt with lane marks) and
``wall`` (a close brick wall over gravel: fine, high-contrast texture everywhere, which is
what makes rain, noise and compression hardest). These build the static planes once per
scene; ``render.py`` animates them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


def rng(seed: int, *salt: int) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFFFFFF, *salt])


def upsample(grid: F32, height: int, width: int) -> F32:
    """Bilinear upsampling of a small random grid (separable gathers, no loops)."""
    gh, gw = grid.shape
    ys = np.linspace(0, gh - 1.001, height, dtype=np.float32)
    xs = np.linspace(0, gw - 1.001, width, dtype=np.float32)
    y0 = ys.astype(np.int32)
    x0 = xs.astype(np.int32)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    rows = grid[y0] * (1 - fy) + grid[y0 + 1] * fy
    out = rows[:, x0] * (1 - fx) + rows[:, x0 + 1] * fx
    return np.asarray(out, dtype=np.float32)


def value_noise(
    rng: np.random.Generator, height: int, width: int, octaves: tuple[tuple[int, float], ...]
) -> F32:
    """Multi-octave value noise; octave = (cells across the frame height, amplitude)."""
    out = np.zeros((height, width), np.float32)
    for cells, amp in octaves:
        gh = max(2, cells)
        gw = max(2, round(cells * width / height))
        grid = rng.standard_normal((gh + 1, gw + 1)).astype(np.float32)
        out += amp * upsample(grid, height, width)
    return out


def background(rng: np.random.Generator, h: int, w: int) -> tuple[F32, F32, F32, F32]:
    """Day luma, IR luma, U, V of a plausible yard: sky, horizon, buildings, fence, lawn."""
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    horizon = 0.38
    sky = 170 + 40 * (1 - yy / horizon)
    ground = 95 + 35 * (yy - horizon)
    luma = np.where(yy < horizon, sky, ground) * np.ones((1, w), np.float32)
    texture = value_noise(rng, h, w, ((6, 14.0), (24, 9.0), (90, 6.0), (min(h // 3, 300), 4.0)))
    luma = luma + np.where(yy < horizon, 0.35, 1.0) * texture
    # Buildings and a fence: flat blocks with edges, the structure real detectors see.
    for _ in range(5):
        bw = int(w * rng.uniform(0.08, 0.2))
        bh = int(h * rng.uniform(0.12, 0.3))
        x0 = int(rng.uniform(0, w - bw))
        y1 = int(h * horizon) + int(h * rng.uniform(0.0, 0.05))
        level = float(rng.uniform(60, 190))
        luma[max(0, y1 - bh) : y1, x0 : x0 + bw] = (
            level + 0.5 * texture[max(0, y1 - bh) : y1, x0 : x0 + bw]
        )
        # windows
        step = max(4, bw // 6)
        for wx in range(x0 + step // 2, x0 + bw - step // 2, step):
            top = max(0, y1 - bh + step // 2)
            luma[top : y1 - step // 2 : step, wx : wx + max(1, step // 3)] = level * 0.5
    fence_y = int(h * 0.62)
    post = max(3, w // 60)
    luma[fence_y : fence_y + max(2, h // 90), :] = 60
    luma[fence_y - h // 14 : fence_y + h // 45, ::post] = 70
    luma = np.clip(luma, 16, 235).astype(np.float32)
    # IR: vegetation reflects near-infrared strongly, paint does not: a different texture.
    ir_tex = value_noise(rng, h, w, ((10, 18.0), (60, 10.0)))
    ir = np.clip(0.55 * luma + 45 + ir_tex + np.where(yy > horizon, 25.0, -10.0), 16, 235)
    ch, cw = h // 2, w // 2
    u = 128 + value_noise(rng, ch, cw, ((3, 8.0), (20, 3.0)))
    v = 128 + value_noise(rng, ch, cw, ((3, 8.0), (20, 3.0)))
    cy = np.linspace(0, 1, ch, dtype=np.float32)[:, None]
    u = u + np.where(cy < horizon, 18.0, -10.0)  # blue sky, green-ish lawn
    v = v + np.where(cy < horizon, -8.0, -6.0)
    return luma, ir.astype(np.float32), u.astype(np.float32), v.astype(np.float32)


def _chroma(rng: np.random.Generator, h: int, w: int, horizon: float) -> tuple[F32, F32]:
    ch, cw = h // 2, w // 2
    u = 128 + value_noise(rng, ch, cw, ((3, 8.0), (20, 3.0)))
    v = 128 + value_noise(rng, ch, cw, ((3, 8.0), (20, 3.0)))
    cy = np.linspace(0, 1, ch, dtype=np.float32)[:, None]
    u = u + np.where(cy < horizon, 14.0, -6.0)
    v = v + np.where(cy < horizon, -6.0, 4.0)
    return u.astype(np.float32), v.astype(np.float32)


def _ir(rng: np.random.Generator, luma: F32, horizon: float) -> F32:
    h, w = luma.shape
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    tex = value_noise(rng, h, w, ((10, 12.0), (60, 8.0)))
    ir = 0.6 * luma + 40 + tex + np.where(yy > horizon, 15.0, -10.0)
    result: F32 = np.clip(ir, 16, 235).astype(np.float32)
    return result


def street(rng: np.random.Generator, h: int, w: int) -> tuple[F32, F32, F32, F32]:
    """Day luma, IR luma, U, V of a street: sky, a row of houses, pavement, asphalt."""
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    horizon = float(rng.uniform(0.25, 0.35))
    luma = np.where(yy < horizon, 185 - 40 * yy / horizon, 120.0) * np.ones((1, w), np.float32)
    grain = value_noise(rng, h, w, ((8, 10.0), (40, 6.0), (min(h // 2, 400), 7.0)))
    luma = luma + grain
    x = 0
    while x < w:  # houses along the horizon
        bw = int(w * rng.uniform(0.1, 0.22))
        bh = int(h * rng.uniform(0.12, 0.22))
        top = int(h * horizon) - bh
        level = float(rng.uniform(70, 200))
        luma[max(0, top) : int(h * horizon) + 2, x : x + bw] = (
            level + 0.4 * grain[max(0, top) : int(h * horizon) + 2, x : x + bw]
        )
        step = max(6, bw // 5)
        for wx in range(x + step // 2, x + bw - step // 2, step):
            luma[max(0, top + step // 2) : int(h * horizon) - step // 3, wx : wx + step // 2] = (
                level * 0.45
            )
        x += bw + int(w * rng.uniform(0.0, 0.05))
    walk0, road0 = horizon + 0.05, horizon + float(rng.uniform(0.15, 0.25))
    road1 = min(0.95, road0 + float(rng.uniform(0.3, 0.4)))
    walk = (yy >= walk0) & (yy < road0)
    road = (yy >= road0) & (yy < road1)
    luma = np.where(walk, 150 + 0.6 * grain, luma)
    luma = np.where(road, 72 + 0.8 * grain, luma)
    # lane marks: dashes along the middle of the road
    mid = int(h * (road0 + road1) / 2)
    dash = max(8, w // 24)
    for x0 in range(0, w, 2 * dash):
        luma[mid : mid + max(2, h // 120), x0 : x0 + dash] = 200
    luma[int(h * road0) : int(h * road0) + max(2, h // 100), :] = 170  # kerb
    luma = np.clip(luma, 16, 235).astype(np.float32)
    u, v = _chroma(rng, h, w, horizon)
    return luma, _ir(rng, luma, horizon), u, v


def wall(rng: np.random.Generator, h: int, w: int) -> tuple[F32, F32, F32, F32]:
    """Day luma, IR luma, U, V of a close view: a brick wall with a door over gravel."""
    horizon = float(rng.uniform(0.45, 0.6))
    brick_h = max(3, int(h * rng.uniform(0.025, 0.04)))
    brick_w = brick_h * 3
    rows = h // brick_h + 1
    cols = w // brick_w + 2
    shades = rng.uniform(95, 165, (rows, cols)).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    r = yy // brick_h
    c = (xx + (r % 2) * (brick_w // 2)) // brick_w
    luma = shades[r, c]
    mortar = (yy % brick_h < max(1, brick_h // 6)) | (
        (xx + (r % 2) * (brick_w // 2)) % brick_w < max(1, brick_w // 14)
    )
    luma = np.where(mortar, 190.0, luma) + value_noise(rng, h, w, ((30, 5.0), (h // 3, 6.0)))
    x0 = int(w * rng.uniform(0.1, 0.7))
    luma[int(h * 0.12) : int(h * horizon), x0 : x0 + int(w * 0.12)] = 60 + value_noise(
        rng, int(h * horizon) - int(h * 0.12), int(w * 0.12), ((4, 6.0),)
    )
    gravel = 115 + value_noise(rng, h, w, ((20, 8.0), (min(h // 2, 540), 16.0)))
    luma = np.where(yy >= int(h * horizon), gravel, luma)
    luma = np.clip(luma, 16, 235).astype(np.float32)
    u, v = _chroma(rng, h, w, 0.0)
    return luma, _ir(rng, luma, horizon), u + 6, v + 10


#: Background styles by name: ``fn(rng, height, width) -> (day, ir, u, v)``.
BACKGROUNDS = {"yard": background, "street": street, "wall": wall}


__all__ = [
    "BACKGROUNDS",
    "F32",
    "U8",
    "background",
    "rng",
    "street",
    "upsample",
    "value_noise",
    "wall",
]
