"""Highlights that clip: flagged cells whose change is the sensor's ceiling, not an object.

When the exposure rises (auto exposure stepping up, or drifting), the brightest pixels reach
the top of the range and stay there. A block holding some of them brightens less than the
global brightness model (fitted over unclipped cells) predicts, and the background, re-based
by that model every frame, ends up brighter than the block can be: after an auto-exposure
step that left a tenth of a yard's pixels at 255, hundreds of partly clipped cells stayed
flagged, 9 levels darker than predicted, and some of them formed blobs that became objects.
A block mean cannot tell a partly clipped block from a darker thing in it, and counting
clipped pixels in every block of every frame would cost as much again as the block means.

So only the cells flagged *darker* than predicted are looked at, in the frame's pixels (a
few hundred blocks, not the frame): a cell is clipped light when its shortfall is within
what its clipped pixels can explain, ``CLIP_RANGE`` levels for each (the prediction for a
clipped pixel exceeds the ceiling by at most that: a gain of 1.25 on white). It is un-flagged
and its background follows the frame at the speed of light changes (``kernels.grid``). A
person in front of a clipped wall replaces clipped pixels by their own: the cells they cover
hold few of them and fall far short of the prediction, so they stay flagged.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

from privastead.media.kernels.blocks import flat_plane, grid_shape
from privastead.media.kernels.grid import (
    BG,
    CHANGED,
    EXCESS,
    LIGHT,
    PERSIST,
    PREV_CHANGED,
    SATURATED,
)

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

#: Pixels at or above this are clipped (coding noise keeps a clipped area a few levels under
#: 255).
CEILING = 250
#: How far above the ceiling the brightness model may have predicted a clipped pixel.
CLIP_RANGE = 64.0


@numba.njit(
    "int64(uint8[::1], int64, int64, float32[:, ::1], float32[:, :, ::1], uint8[:, :, ::1])",
    nogil=True,
    cache=True,
    boundscheck=False,
)
def _clipped_kernel(flat, stride, block, m, f, u):  # type: ignore[no-untyped-def]  # noqa: PLR0917
    rows, cols = m.shape
    area = block * block
    found = 0
    for r in range(rows):
        for c in range(cols):
            if u[CHANGED, r, c] == 0:
                continue
            short = min(np.float64(f[BG, r, c]), SATURATED) - np.float64(m[r, c])
            # Enough clipped pixels to explain the shortfall make the mean at least this
            # bright: a dark cell is not read (rain on a dark street flags thousands).
            if short <= 0.0 or m[r, c] < CEILING * short / CLIP_RANGE:
                continue
            clipped = 0
            for i in range(block):
                start = (r * block + i) * stride + c * block
                for j in range(block):
                    clipped += flat[start + j] >= CEILING
            if clipped == 0 or short > clipped * CLIP_RANGE / area:
                continue
            u[LIGHT, r, c] = 1
            u[CHANGED, r, c] = 0
            u[PERSIST, r, c] = 0
            u[PREV_CHANGED, r, c] = 0
            f[EXCESS, r, c] = 0.0
            found += 1
    return found


def clipped_cells(y: U8, block: int, m: F32, f: F32, u: U8) -> int:
    """Un-flag the flagged cells of ``m`` (the block means of ``y``) that are clipped light and
    mark them light (in place, after ``compare_grid`` and ``light_cells``); returns how many."""
    if grid_shape(y.shape[0], y.shape[1], block) != m.shape:
        raise ValueError("the grid does not match the plane and block")
    flat, stride = flat_plane(y)
    return int(_clipped_kernel(flat, stride, block, m, f, u))


def clipped_cells_reference(y: U8, block: int, m: F32, f: F32, u: U8) -> int:
    """NumPy reference for ``clipped_cells`` (same in-place contract)."""
    rows, cols = m.shape
    tiles = y[: rows * block, : cols * block].reshape(rows, block, cols, block)
    share = (tiles >= CEILING).mean(axis=(1, 3))
    short = np.minimum(f[BG].astype(np.float64), SATURATED) - m
    hit = (u[CHANGED] != 0) & (short > 0) & (share > 0) & (short <= share * CLIP_RANGE)
    u[LIGHT][hit] = 1
    for plane in (CHANGED, PERSIST, PREV_CHANGED):
        u[plane][hit] = 0
    f[EXCESS][hit] = 0.0
    return int(hit.sum())


__all__ = ["CEILING", "CLIP_RANGE", "clipped_cells", "clipped_cells_reference"]
