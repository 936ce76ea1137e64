"""Light that differs from row to row: the bands of a mains-powered light.

A light on mains power pulses at 100 or 120 Hz, and a rolling shutter exposes each row of the
sensor a little later than the one above it, so under such a light the frame is banded: the
gain swings by a few to 20 % along the rows, and the bands jump or roll from frame to frame.
The whole-view model (``grid.global_fit``: one gain and offset) averages them out; what is
left is a change of every cell in a band, as large as the band is deep, and at ±15 % the
start-up took it for chronic motion everywhere and the detector went blind.

``row_gains`` fits each grid row's own gain over the whole-view model, ``m ~ h_r * (g * bg + o)``
(the median ratio over the row's cells that are not dark), and takes a row's gain only where
it explains the row: in levels, the cells' median distance from ``h_r`` times the model must
be under ``EXPLAINS`` of their median distance from the model, over all the row's cells, dark
ones too. A band changes every cell of its rows alike, so it passes; a pool of light or a car
that covers part of a row pulls the row's median but leaves the rest of the row where it was,
so it fails, and the rows stay as they are (the light test and the tracker judge them as
before). Counting the dark cells in the test matters at night: there a row's few lit cells
can all be a headlight's pool, and only the dark rest of the row says the row is not lit as a
whole. Cells flagged in the previous analysed frame or under an object-sized blob do not
count: an object does not teach the rows its brightness. A row with too few cells that are
not dark (or clipped, or masked) keeps a gain of 1. And the gains together must be smooth
along the rows, as a light's bands are: a knocked camera moves the horizontal edges of the
view a pixel up or down, which also changes some rows as a whole, alternately brighter and
darker; taking those for light put the background out of step with the view test
(``media.view``), and it no longer recognised the knock. Nor is a light that lights a few
rows a mains light's bands, which run through the whole frame: at least a third of the rows
that can tell must be banded (a car's headlight beam across the road at night lit 6-8 rows
of 120 as a whole).

The detector brings the background (and the previous frame) of each banded row to the row's
light, as it brings them to the whole view's by ``(g, o)``: the background follows the
bands, and the frame stays as the camera sent it (the clipping and view tests read its
pixels). A row lit differently for good (the sky darkening as the exposure changes) is
learned that way in one frame, instead of being re-lit in every frame after.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

from privastead.media.kernels.grid import ACTIVE, DARK, PREV_CHANGED, SATURATED, WEIGHT
from privastead.media.kernels.order import median

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]

#: A row's gain is taken where it leaves under this share of the row's median deviation.
EXPLAINS = 0.5
#: The gains must be smooth along the rows: over the banded rows whose neighbours are banded
#: too (at least LEAST_RUNS of them and RUN_SHARE of the banded rows), the bend (each row's
#: distance from the mean of its neighbours) at most SMOOTH of the depth (distance from 1).
#: A band six rows from crest to trough bends by about a seventh of its depth; the courses of
#: a brick wall moved a pixel up change short runs of rows that alternate. Rows between bands
#: (gains near 1) and dark rows are not banded, so runs end there.
SMOOTH, LEAST_RUNS, RUN_SHARE = 0.5, 3, 0.25
#: A mains light bands the whole frame: at least this share of the rows with enough cells to
#: tell must be banded. A car's headlights light a few rows of the road as a whole (6-8 of
#: 120 at night), and re-basing them put the background out of step under the next car.
WHOLE = 1 / 3
#: Least usable cells in a row for a gain of its own; a row is sampled at every STEP-th cell
#: (a checkerboard: a band spans the row, and half the cells tell it as well as all of them
#: at half the cost). A row within LEAST_BAND of the model keeps a gain of 1 unexamined: a
#: band that shallow is a level or two, within the noise floor. Most rows are, every frame
#: on a quiet camera, so the kernel tells them without sorting: where fewer than half of a
#: row's ratios lie at or beyond LEAST_BAND on either side, the middle ones, and so the
#: median, lie within it (the same answer as the median's, from two counts).
LEAST_CELLS, STEP, LEAST_BAND = 16, 2, 0.01
#: Row gains beyond these are no mains light (a band swings the light by a few tens of %).
ROW_GAIN = (0.5, 2.0)


@numba.njit(
    "boolean(uint8[:, :, ::1], int64, int64, float64, float32)",
    nogil=True,
    cache=True,
    inline="always",
)
def _counts(u, r, c, b, x):  # type: ignore[no-untyped-def]
    """Whether cell ``(r, c)`` (model ``b``, frame ``x``) tells about its row's light."""
    return (
        u[WEIGHT, r, c] != 0
        and u[PREV_CHANGED, r, c] == 0
        and u[ACTIVE, r, c] == 0
        and b < SATURATED
        and x < SATURATED
    )


@numba.njit(
    "int64(float32[:, ::1], float32[:, ::1], uint8[:, :, ::1], float64, float64, float32[::1])",
    nogil=True,
    cache=True,
)
def _row_gains_kernel(m, bg, u, g, o, gains):  # type: ignore[no-untyped-def]  # noqa: PLR0917
    rows, cols = m.shape
    ratio = np.empty(cols, np.float64)
    dev = np.empty(cols, np.float64)
    banded = 0
    tested = 0
    for r in range(rows):
        gains[r] = 1.0
        n = 0
        low = 0
        high = 0
        for c in range(r % STEP, cols, STEP):
            b = g * bg[r, c] + o
            if _counts(u, r, c, b, m[r, c]) and b > DARK:
                ratio[n] = m[r, c] / b
                low += ratio[n] - 1.0 <= -LEAST_BAND
                high += ratio[n] - 1.0 >= LEAST_BAND
                n += 1
        if n < LEAST_CELLS:
            continue
        tested += 1
        if 2 * low < n and 2 * high < n:
            continue  # the median is within LEAST_BAND (see the constant): no sort
        h = median(ratio, n, ratio)
        if abs(h - 1.0) < LEAST_BAND or not ROW_GAIN[0] <= h <= ROW_GAIN[1]:
            continue
        n = 0
        for c in range(r % STEP, cols, STEP):
            b = g * bg[r, c] + o
            if _counts(u, r, c, b, m[r, c]):
                ratio[n] = abs(m[r, c] - h * b)
                dev[n] = abs(m[r, c] - b)
                n += 1
        if median(ratio, n, ratio) >= EXPLAINS * median(dev, n, dev):
            continue
        gains[r] = h
        banded += 1
    # Bands are smooth along the rows; a knocked camera's horizontal edges are not.
    bend = 0.0
    depth = 0.0
    runs = 0
    for r in range(1, rows - 1):
        if gains[r - 1] != 1.0 and gains[r] != 1.0 and gains[r + 1] != 1.0:
            runs += 1
            depth += abs(gains[r] - 1.0)
            bend += abs(gains[r] - 0.5 * (gains[r - 1] + gains[r + 1]))
    if banded and (
        banded < WHOLE * tested
        or runs < max(LEAST_RUNS, RUN_SHARE * banded)
        or bend > SMOOTH * depth
    ):
        gains[:] = 1.0
        banded = 0
    return banded


def row_gains(m: F32, bg: F32, u: U8, g: float, o: float, gains: F32) -> int:  # noqa: PLR0917
    """Each row's gain over the whole-view model into ``gains`` (1 where the row is not
    banded, see the module doc). Returns how many rows are banded."""
    return int(_row_gains_kernel(m, bg, u, g, o, gains))


def row_gains_reference(  # noqa: PLR0917 -- mirrors the kernel's signature
    m: F32, bg: F32, u: U8, g: float, o: float, gains: F32
) -> int:
    """NumPy reference for ``row_gains``."""
    b = g * bg.astype(np.float64) + o
    counts = (
        (u[WEIGHT] != 0)
        & (u[PREV_CHANGED] == 0)
        & (u[ACTIVE] == 0)
        & (b < SATURATED)
        & (m < SATURATED)
    )
    gains.fill(1.0)
    banded = tested = 0
    for r in range(m.shape[0]):
        cells = np.zeros(m.shape[1], bool)
        cells[r % STEP :: STEP] = True
        use = counts[r] & cells
        lit = use & (b[r] > DARK)
        if lit.sum() < LEAST_CELLS:
            continue
        tested += 1
        h = float(np.median(m[r, lit] / b[r, lit]))
        if abs(h - 1.0) < LEAST_BAND or not ROW_GAIN[0] <= h <= ROW_GAIN[1]:
            continue
        x, model = m[r, use], b[r, use]
        if np.median(np.abs(x - h * model)) >= EXPLAINS * np.median(np.abs(x - model)):
            continue
        gains[r] = h
        banded += 1
    d = gains.astype(np.float64) - 1.0
    inner = (d[:-2] != 0) & (d[1:-1] != 0) & (d[2:] != 0)
    bend = np.abs(d[1:-1] - 0.5 * (d[:-2] + d[2:]))[inner].sum()
    runs = int(inner.sum())
    if banded and (
        banded < WHOLE * tested
        or runs < max(LEAST_RUNS, RUN_SHARE * banded)
        or bend > SMOOTH * np.abs(d[1:-1][inner]).sum()
    ):
        gains.fill(1.0)
        banded = 0
    return banded


__all__ = ["EXPLAINS", "row_gains", "row_gains_reference"]
