"""Procedural textures for camsim scenes: value noise and a plausible yard background.

Split from ``scene.py``: these build the static planes once per scene; ``scene.py`` animates.
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


__all__ = ["F32", "U8", "background", "rng", "upsample", "value_noise"]
