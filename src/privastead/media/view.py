"""Whether the view itself moved: the camera was knocked and every edge in it shifted.

A camera on a pole or a wall is knocked now and then (a door slams, a ball hits it, a truck
goes by): the whole picture jumps by a pixel or a few and stays there. Nothing in the scene
moved, but every textured cell now differs from the background, by an amount that grows with
its texture. Light cannot explain that (no gain maps the old edge onto the new one), and the
blobs it leaves along strong edges are sharp, sudden and stand still: exactly what a person
who just stepped into view looks like. Left alone, the detector reported an object until the
background had learned the new view (seconds for a pixel, never within a minute for three).

The test asks the question directly: is this frame the background seen through a moved
camera? It runs only when at least ``LEAST_SHARE`` of the view is flagged (the detector asks
only in the half second after the flagged cells grew that much at once: a knock is sudden):

1. Estimate the move on the grid: a few Gauss-Newton steps of ``m(x) ~ bg(x - d)``, the
   background moved by ``d`` cells (bilinear between cells), over half of the watched,
   unclipped cells (a checkerboard). Not over the flagged cells alone: they are where the
   change was largest, and a fit over them overshoots. Textureless cells carry no weight
   (their gradient is zero); an object is a minority of the cells and cannot be explained
   by moving the background it is not in.
2. Keep it only if it is at least half a pixel and explains most of the flagged cells' change
   on the grid (the squared change left is under ``GRID_LEFT`` of it).
3. Check it on the pixels: the cell means of the frame moved back by it (the blend of the
   whole-pixel moves around it, whose cell means blend alike) are compared with the
   background at the cells' own thresholds. A flagged cell that matches is explained.
4. The view moved if the move explains at least ``EXPLAINS`` of the flagged cells, at least
   ``LEAST_SHARE`` of the view, and in at least two quarters of it (a knock moves the
   texture everywhere; a large object's patterned side does not).

The detector then treats it as a global change: re-base, learn for ``settle_seconds``.
A pole swaying or shaking in the wind is not this: the cells along edges fluctuate, learn
their reach and become chronic, as foliage does, and the flagged cells do not grow at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from privastead.media.kernels import block_means
from privastead.media.kernels import grid as G
from privastead.media.kernels.blocks import grid_shape

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
B = npt.NDArray[np.bool_]
F64 = npt.NDArray[np.float64]

#: Least share of the watched cells flagged (and explained) for the test to run (and pass).
LEAST_SHARE = 0.004
#: Share of the flagged cells the move must explain.
EXPLAINS = 0.6
#: A flagged cell is explained when moving the frame back leaves at most this share of its
#: change (or less than its threshold).
CELL_LEFT = 0.35
#: The grid fit must leave less than this share of the flagged cells' squared change.
GRID_LEFT = 0.8
#: A move of more than this many cells is not estimated (the linear steps do not reach).
REACH_CELLS = 2.0
#: Gauss-Newton steps, and the update (cells) below which they stop.
STEPS, CONVERGED = 4, 0.01


@dataclass(frozen=True)
class ViewMove:
    """The view moved by ``dy``, ``dx`` pixels (content moved that way); ``cells``: flagged
    cells the move explains."""

    dy: float
    dx: float
    cells: int


def _sample(plane: F32, rows: F64, cols: F64) -> F64:
    """``plane`` at fractional cell positions (bilinear; positions clamped to the grid)."""
    height, width = plane.shape
    r = np.clip(rows, 0.0, height - 1.0)
    c = np.clip(cols, 0.0, width - 1.0)
    r0 = np.minimum(r.astype(np.intp), height - 2)
    c0 = np.minimum(c.astype(np.intp), width - 2)
    fr, fc = r - r0, c - c0
    top = (1 - fc) * plane[r0, c0] + fc * plane[r0, c0 + 1]
    bottom = (1 - fc) * plane[r0 + 1, c0] + fc * plane[r0 + 1, c0 + 1]
    values: F64 = (1 - fr) * top + fr * bottom
    return values


def estimate(m: F32, bg: F32, use: B) -> tuple[float, float]:
    """The move ``(dy, dx)`` in cells that best maps ``bg`` onto ``m`` over the cells in
    ``use`` (0, 0 where they have no texture to tell, or it is beyond ``REACH_CELLS``).
    Only those cells are sampled, so the cost follows their number, not the grid's."""
    rows, cols = (i.astype(np.float64) for i in np.nonzero(use))
    if rows.size < 2:
        return 0.0, 0.0
    x = m[use].astype(np.float64)
    dy = dx = 0.0
    for _ in range(STEPS):
        r, c = rows - dy, cols - dx
        # m(x) = bg(x - d - e) ~ b(x) - grad b . e, b being bg moved by d: the residual is
        # minus the gradient times the update e.
        res = x - _sample(bg, r, c)
        a = 0.5 * (_sample(bg, r + 1, c) - _sample(bg, r - 1, c))
        g = 0.5 * (_sample(bg, r, c + 1) - _sample(bg, r, c - 1))
        saa, sgg, sag = float(a @ a), float(g @ g), float(a @ g)
        det = saa * sgg - sag * sag
        if saa * sgg == 0.0 or det <= 1e-6 * saa * sgg:
            return 0.0, 0.0
        sar, sgr = float(a @ res), float(g @ res)
        step_y = -(sgg * sar - sag * sgr) / det
        step_x = -(saa * sgr - sag * sar) / det
        dy, dx = dy + step_y, dx + step_x
        if max(abs(dy), abs(dx)) > REACH_CELLS:
            return 0.0, 0.0
        if max(abs(step_y), abs(step_x)) < CONVERGED:
            break
    return dy, dx


def _moved_back(y: U8, block: int, dy: float, dx: float) -> F32:
    """Cell means of the frame ``y`` with its content moved back by ``dy``, ``dx`` pixels
    (into the background's view), edges repeated: the bilinear blend of the whole-pixel
    moves around it, whose cell means blend the same way."""
    rows, cols = y.shape
    iy, ix = math.floor(dy), math.floor(dx)
    fy, fx = dy - iy, dx - ix
    pad = max(abs(iy), abs(ix)) + 1
    padded = np.pad(y, pad, mode="edge")
    out = np.zeros(grid_shape(rows, cols, block), np.float32)
    total = 0.0
    for oy, wy in ((iy, 1.0 - fy), (iy + 1, fy)):
        for ox, wx in ((ix, 1.0 - fx), (ix + 1, fx)):
            if wy * wx < 0.05:  # a whole-pixel move or nearly: skip the far neighbours
                continue
            view = padded[pad + oy : pad + oy + rows, pad + ox : pad + ox + cols]
            out += np.float32(wy * wx) * block_means(np.ascontiguousarray(view), block)
            total += wy * wx
    result: F32 = out / np.float32(total)
    return result


def _quarters(cells: B) -> int:
    """In how many quarters of the view at least a tenth of ``cells`` lie."""
    rows, cols = cells.shape
    total = int(cells.sum())
    parts = (
        cells[: rows // 2, : cols // 2],
        cells[: rows // 2, cols // 2 :],
        cells[rows // 2 :, : cols // 2],
        cells[rows // 2 :, cols // 2 :],
    )
    return sum(1 for part in parts if part.sum() >= 0.1 * total)


def view_move(  # noqa: PLR0917 -- the detector's state and its thresholds
    m: F32, f: F32, u: U8, y: U8, block: int, k: float, kb: float, floor: float
) -> ViewMove | None:
    """Whether the frame (grid ``m``, luma ``y``) is the background seen through a moved
    camera (see the module doc). ``f``, ``u``: the detector's planes after ``compare_grid``
    (the background is at the frame's light) and the light tests."""
    flagged = u[G.CHANGED] != 0
    flagged_count = int(flagged.sum())
    watched = u[G.WEIGHT] != 0
    least = LEAST_SHARE * max(1, int(watched.sum()))
    if flagged_count < least:
        return None
    bg = f[G.BG]
    # Watched cells all over the view, not only the flagged ones (the cells the change was
    # largest in: a fit over them alone overshoots the move). Half of them is plenty, in a
    # checkerboard: every other row and column aliased with a brick wall's courses and put a
    # 1 px move at 1.8 px.
    use = watched & (m < G.SATURATED) & (bg < G.SATURATED)
    use[[0, -1], :] = False
    use[:, [0, -1]] = False
    row, col = np.indices(use.shape)
    dy, dx = estimate(m, bg, use & ((row + col) % 2 == 1))
    py, px = dy * block, dx * block
    if round(py) == 0 and round(px) == 0:
        return None
    fit = flagged & use
    rows, cols = (i.astype(np.float64) for i in np.nonzero(fit))
    x = m[fit].astype(np.float64)
    before = float(np.square(x - bg[fit]).sum())
    left = float(np.square(x - _sample(bg, rows - dy, cols - dx)).sum())
    if left > GRID_LEFT * before:
        return None
    back = _moved_back(y, block, py, px)
    thr = G.thresholds(f, k, kb, floor)
    # Explained: within the cell's threshold, or most of its change gone (the encoder draws
    # a strong edge a little differently after it moved, beyond a quiet cell's threshold).
    base = np.minimum(bg, G.SATURATED)
    off = np.abs(back - base)
    explained = flagged & ((off <= thr) | (off <= CELL_LEFT * np.abs(m - base)))
    count = int(explained.sum())
    if count < EXPLAINS * flagged_count or count < least or _quarters(explained) < 2:
        return None
    return ViewMove(py, px, count)


__all__ = ["ViewMove", "estimate", "view_move"]
