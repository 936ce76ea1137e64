"""Connected blobs of changed cells (8-connectivity) with their size, box and strength.

Spatial coherence is what separates a person (one blob of many cells) from rain and snow
(scattered single cells); the blob statistics feed the detector's size filter and tracker.
Labels are numbered 1.. in raster order of each blob's first cell, so the Numba kernel and
the NumPy reference (a different algorithm: iterative min-label propagation) agree exactly.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: Per-blob statistics columns: cells, row0, col0, row1 (exclusive), col1 (exclusive), excess.
STATS = 6


@numba.njit(
    "int64(uint8[:, ::1], float32[:, ::1], int32[:, ::1], float64[:, ::1], int32[::1])",
    nogil=True,
    cache=True,
)
def _label_kernel(mask, excess, labels, stats, stack):  # type: ignore[no-untyped-def]
    rows, cols = mask.shape
    labels[:, :] = 0
    n = 0
    for r0 in range(rows):
        for c0 in range(cols):
            if mask[r0, c0] == 0 or labels[r0, c0] != 0:
                continue
            if n >= stats.shape[0]:
                return -1
            n += 1
            labels[r0, c0] = n
            top = 0
            stack[top] = r0 * cols + c0
            top += 1
            cells = 0
            rmin, cmin, rmax, cmax = r0, c0, r0, c0
            strength = 0.0
            while top > 0:
                top -= 1
                p = stack[top]
                r = p // cols
                c = p - r * cols
                cells += 1
                strength += excess[r, c]
                rmin = min(rmin, r)
                rmax = max(rmax, r)
                cmin = min(cmin, c)
                cmax = max(cmax, c)
                for dr in range(-1, 2):
                    rr = r + dr
                    if rr < 0 or rr >= rows:
                        continue
                    for dc in range(-1, 2):
                        cc = c + dc
                        if cc < 0 or cc >= cols:
                            continue
                        if mask[rr, cc] != 0 and labels[rr, cc] == 0:
                            labels[rr, cc] = n
                            stack[top] = rr * cols + cc
                            top += 1
            stats[n - 1, 0] = cells
            stats[n - 1, 1] = rmin
            stats[n - 1, 2] = cmin
            stats[n - 1, 3] = rmax + 1
            stats[n - 1, 4] = cmax + 1
            stats[n - 1, 5] = strength
    return n


def label_cells(mask: U8, excess: F32, max_blobs: int = 4096) -> tuple[I32, F64]:
    """Label blobs of ``mask``; returns (labels, stats[n, STATS]). Extra blobs beyond
    ``max_blobs`` (pathological noise) are dropped, largest-first order is not guaranteed."""
    labels = np.empty(mask.shape, np.int32)
    stats = np.empty((max_blobs, STATS), np.float64)
    stack = np.empty(mask.size, np.int32)
    n = int(_label_kernel(mask, excess, labels, stats, stack))
    if n < 0:
        n = max_blobs
    return labels, stats[:n]


def label_cells_reference(mask: U8, excess: F32) -> tuple[I32, F64]:
    """NumPy reference for ``label_cells`` (min-label propagation until stable)."""
    rows, cols = mask.shape
    on = mask != 0
    big = np.iinfo(np.int64).max
    lab = np.where(on, np.arange(rows * cols).reshape(rows, cols), big)
    while True:
        padded = np.pad(lab, 1, constant_values=big)
        best = lab.copy()
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                best = np.minimum(best, padded[1 + dr : 1 + dr + rows, 1 + dc : 1 + dc + cols])
        best = np.where(on, best, big)
        if np.array_equal(best, lab):
            break
        lab = best
    roots = np.unique(lab[on])  # each blob's smallest raster index = its first cell
    labels = np.zeros((rows, cols), np.int32)
    stats = np.zeros((len(roots), STATS), np.float64)
    for i, root in enumerate(roots):
        sel = lab == root
        labels[sel] = i + 1
        rr, cc = np.nonzero(sel)
        stats[i] = (
            sel.sum(),
            rr.min(),
            cc.min(),
            rr.max() + 1,
            cc.max() + 1,
            float(excess[sel].astype(np.float64).sum()),
        )
    return labels, stats


__all__ = ["STATS", "label_cells", "label_cells_reference"]
