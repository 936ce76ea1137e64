"""Connected blobs of changed cells (8-connectivity) with the statistics the detector judges.

Spatial coherence is what separates a person (one blob of many cells) from rain and snow
(scattered single cells). Per blob: size and box; summed excess over the threshold; how many
of its cells are *persistent* (flagged in the previous frame too, nearby); how far its cells
are from the background and how much they changed since the previous frame (a thing that
appears does so at once; a slow drift in the light builds up over many frames); and the summed
activity and reach (how often its cells were flagged lately, how far they stray while they
fluctuate: chronic motion such as foliage and water); and the contrast across its border in
the frame and in the background (an object has its edges in the frame; a *ghost*, where the
background went wrong and the frame is right, has them in the background); and how many *sharp
steps* it has: pairs of a cell and a 4-neighbour (inside the blob or across its border) whose
brightness ratio to the background differs by more than ``STEP`` times the cell's own
detection threshold. Light and shadow multiply the scene by a field that is smooth from cell
to cell (a cloud's shadow, a headlight pool, an exposure ramp: the ratio ``m / bg`` barely
changes between neighbours); an object replaces the scene, so its outline, and its inside
wherever the ground behind it has texture, is made of such steps.
Labels are numbered 1.. in raster order of each blob's first cell, so the Numba kernel and the
NumPy reference (a different algorithm: iterative min-label propagation) agree exactly.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: Per-blob statistics columns.
CELLS, ROW0, COL0, ROW1, COL1, EXCESS, PERSISTENT = range(7)  # box ends exclusive
# sums of |m - bg|, |m - prev|, activity, reach beyond what sensor noise explains; contrast
# across the border in the frame and in the background
DEVIATION, CHANGE, ACTIVITY, REACH, EDGE_M, EDGE_BG, BORDER, BRIGHTER, SHARP = range(7, 16)
STATS = 16
#: Backgrounds darker than this give no usable ratio: the ratio test clamps them here.
DARK = 12.0
#: A sharp step: the neighbour misses the prediction from this cell's ratio by more than STEP
#: detection thresholds (noise and the gradient of a soft shadow stay well under it).
STEP = 2.0


@numba.njit("boolean(float32, float32, float32, float32, float64)", nogil=True, cache=True)
def _sharp(m, bg, m_nb, bg_nb, thr):  # type: ignore[no-untyped-def]
    # The neighbour predicted from this cell's ratio to the background: light keeps the
    # ratio from cell to cell, an object's edge does not.
    ratio = np.float64(m) / max(np.float64(bg), DARK)
    return abs(np.float64(m_nb) - ratio * max(np.float64(bg_nb), DARK)) > STEP * thr


@numba.njit(
    "int64(uint8[:, ::1], uint8[:, ::1], float32[:, ::1], float32[:, ::1], float32[:, ::1],"
    " float32[:, ::1], float32[:, ::1], float32[:, ::1], float32[:, ::1], int32[:, ::1],"
    " float64[:, ::1], int32[::1])",
    nogil=True,
    cache=True,
)
def _label_kernel(mask, persist, excess, m, bg, dd, act, reach, noise, labels, stats, stack):  # type: ignore[no-untyped-def]  # noqa: PLR0912, PLR0915, PLR0917
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
            kept = 0
            dev = change = busy = stray = edge_m = edge_bg = border = brighter = sharp = 0.0
            while top > 0:
                top -= 1
                p = stack[top]
                r = p // cols
                c = p - r * cols
                cells += 1
                strength += excess[r, c]
                kept += persist[r, c]
                d = abs(np.float64(m[r, c]) - np.float64(bg[r, c]))
                dev += d
                thr = d / max(np.float64(excess[r, c]), 1e-6)  # the cell's threshold
                if m[r, c] > bg[r, c]:
                    brighter += 1.0
                change += abs(np.float64(dd[r, c]))
                busy += act[r, c]
                # noise is the variance of frame-to-frame changes (twice the sensor's); noise
                # alone reaches about 3 sensor deviations
                stray += max(0.0, reach[r, c] - 3.0 * np.sqrt(0.5 * noise[r, c]))
                for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                    if not (0 <= rr < rows and 0 <= cc < cols):
                        continue
                    if _sharp(m[r, c], bg[r, c], m[rr, cc], bg[rr, cc], thr):
                        sharp += 1.0
                    if mask[rr, cc] == 0:
                        border += 1.0
                        edge_m += abs(np.float64(m[r, c]) - np.float64(m[rr, cc]))
                        edge_bg += abs(np.float64(bg[r, c]) - np.float64(bg[rr, cc]))
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
            stats[n - 1, 6] = kept
            stats[n - 1, 7] = dev
            stats[n - 1, 8] = change
            stats[n - 1, 9] = busy
            stats[n - 1, 10] = stray
            stats[n - 1, 11] = edge_m
            stats[n - 1, 12] = edge_bg
            stats[n - 1, 13] = border
            stats[n - 1, 14] = brighter
            stats[n - 1, 15] = sharp
    return n


def label_cells(  # noqa: PLR0917 -- the planes the statistics need
    mask: U8,
    persist: U8,
    excess: F32,
    m: F32,
    bg: F32,
    dd: F32,
    act: F32,
    reach: F32,
    noise: F32,
    *,
    max_blobs: int = 4096,
) -> tuple[I32, F64]:
    """Label blobs of ``mask``; returns (labels, stats[n, STATS]). Extra blobs beyond
    ``max_blobs`` (pathological noise) are dropped, largest-first order is not guaranteed."""
    labels = np.empty(mask.shape, np.int32)
    stats = np.empty((max_blobs, STATS), np.float64)
    stack = np.empty(mask.size, np.int32)
    n = int(
        _label_kernel(mask, persist, excess, m, bg, dd, act, reach, noise, labels, stats, stack)
    )
    if n < 0:
        n = max_blobs
    return labels, stats[:n]


def label_cells_reference(  # noqa: PLR0917 -- mirrors label_cells
    mask: U8,
    persist: U8,
    excess: F32,
    m: F32,
    bg: F32,
    dd: F32,
    act: F32,
    reach: F32,
    noise: F32,
) -> tuple[I32, F64]:
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
        x, y = bg[sel].astype(np.float64), m[sel].astype(np.float64)
        change = np.abs(dd[sel].astype(np.float64))
        edge_m = edge_bg = border = sharp = 0.0
        for r, c in zip(rr, cc, strict=True):
            thr = abs(float(m[r, c]) - float(bg[r, c])) / max(float(excess[r, c]), 1e-6)
            ratio = float(m[r, c]) / max(float(bg[r, c]), DARK)
            for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                if 0 <= nr < rows and 0 <= nc < cols:
                    sharp += (
                        abs(float(m[nr, nc]) - ratio * max(float(bg[nr, nc]), DARK)) > STEP * thr
                    )
                if 0 <= nr < rows and 0 <= nc < cols and not on[nr, nc]:
                    border += 1.0
                    edge_m += abs(float(m[r, c]) - float(m[nr, nc]))
                    edge_bg += abs(float(bg[r, c]) - float(bg[nr, nc]))
        stats[i] = (
            sel.sum(),
            rr.min(),
            cc.min(),
            rr.max() + 1,
            cc.max() + 1,
            float(excess[sel].astype(np.float64).sum()),
            float(persist[sel].astype(np.float64).sum()),
            np.abs(y - x).sum(),
            change.sum(),
            float(act[sel].astype(np.float64).sum()),
            float(
                np.maximum(
                    0.0, reach[sel].astype(np.float64) - 3.0 * np.sqrt(0.5 * noise[sel])
                ).sum()
            ),
            edge_m,
            edge_bg,
            border,
            float((y > x).sum()),
            sharp,
        )
    return labels, stats


__all__ = [
    "ACTIVITY",
    "BORDER",
    "BRIGHTER",
    "CELLS",
    "CHANGE",
    "COL0",
    "COL1",
    "DEVIATION",
    "EDGE_BG",
    "EDGE_M",
    "EXCESS",
    "PERSISTENT",
    "REACH",
    "ROW0",
    "ROW1",
    "SHARP",
    "STATS",
    "label_cells",
    "label_cells_reference",
]
