"""Per-frame work on the analysis grid: global exposure fit, change test, learning.

All arrays here are small (about 120 x 213 float32 cells) and C-contiguous; the kernels fuse
what would be a dozen NumPy passes (and a dozen temporaries) into one loop each.

``global_fit``  robust brightness model ``m ~ g * bg + o`` (medians over a subsample), so that
                exposure drift and auto-exposure steps are explained away instead of firing.
``compare_grid`` re-bases background and previous frame by ``(g, o)``, flags cells whose change
                exceeds ``max(floor, k * noise)`` and returns the frame-to-frame differences.
``learn_grid``  updates the background (slowly where something is, normally elsewhere) and the
                per-cell noise (fast attack, slow release, clipped so one passing object
                cannot blind a cell) from which the next thresholds come.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]

#: Cells darker than this (in the background) carry no usable ratio for the gain fit.
DARK = 12.0
#: Block means above this are (nearly) saturated: the sensor clips, so the brightness model
#: predicts at most this much, and the background is not learned from clipped cells.
SATURATED = 250.0
#: Gain and offset are clamped: a change beyond this is a global change anyway.
GAIN_RANGE = (0.2, 5.0)
#: Below this brightness spread (levels) the slope is unreliable: fit a pure gain instead.
MIN_SPREAD = 10.0


@numba.njit(
    "UniTuple(float64, 2)(float32[:, ::1], float32[:, ::1], uint8[:, ::1], int64)",
    nogil=True,
    cache=True,
)
def _global_fit_kernel(m, bg, weight, step):  # type: ignore[no-untyped-def]
    mf = m.ravel()
    bf = bg.ravel()
    wf = weight.ravel()
    n = (mf.size + step - 1) // step
    xs = np.empty(n, np.float64)
    ys = np.empty(n, np.float64)
    count = 0
    for i in range(0, mf.size, step):
        if wf[i] != 0 and DARK < bf[i] < SATURATED and mf[i] < SATURATED:
            xs[count] = bf[i]
            ys[count] = mf[i]
            count += 1
    if count < 16:
        return 1.0, 0.0
    xs = xs[:count]
    ys = ys[:count]
    third = count // 3
    # Thirds by value (quickselect, not a sort): cells at or below the lower cut, at or
    # above the upper cut.
    x_lo = np.partition(xs, third)[third]
    x_hi = np.partition(xs, count - 1 - third)[count - 1 - third]
    lo = xs <= x_lo
    hi = xs >= x_hi
    xlo = np.median(xs[lo])
    xhi = np.median(xs[hi])
    if xhi - xlo > MIN_SPREAD:
        g = (np.median(ys[hi]) - np.median(ys[lo])) / (xhi - xlo)
    else:
        g = np.median(ys / xs)
    g = min(max(g, GAIN_RANGE[0]), GAIN_RANGE[1])
    o = np.median(ys - g * xs)
    return g, o


def global_fit(m: F32, bg: F32, weight: U8, step: int = 8) -> tuple[float, float]:
    """Gain ``g`` and offset ``o`` such that ``m ~ g * bg + o`` for most cells.

    Tukey's resistant line: the slope joins the medians of the darkest and brightest thirds
    of the background, the offset is the median residual. Objects (a minority of cells) move
    neither; an affine exposure change is recovered exactly.
    """
    g, o = _global_fit_kernel(m, bg, weight, step)
    return float(g), float(o)


def global_fit_reference(m: F32, bg: F32, weight: U8, step: int = 8) -> tuple[float, float]:
    """NumPy reference for ``global_fit``."""
    mf, bf, wf = m.ravel()[::step], bg.ravel()[::step], weight.ravel()[::step]
    use = (wf != 0) & (bf > DARK) & (bf < SATURATED) & (mf < SATURATED)
    if use.sum() < 16:
        return 1.0, 0.0
    xs, ys = bf[use].astype(np.float64), mf[use].astype(np.float64)
    third = len(xs) // 3
    x_lo = np.sort(xs)[third]
    x_hi = np.sort(xs)[len(xs) - 1 - third]
    lo, hi = xs <= x_lo, xs >= x_hi
    xlo, xhi = np.median(xs[lo]), np.median(xs[hi])
    if xhi - xlo > MIN_SPREAD:
        g = float((np.median(ys[hi]) - np.median(ys[lo])) / (xhi - xlo))
    else:
        g = float(np.median(ys / xs))
    g = min(max(g, GAIN_RANGE[0]), GAIN_RANGE[1])
    o = float(np.median(ys - g * xs))
    return g, o


@numba.njit(
    "int64(float32[:, ::1], float32[:, ::1], float32[:, ::1], float32[:, ::1], uint8[:, ::1],"
    " float64, float64, float64, float64, uint8[:, ::1], float32[:, ::1], float32[:, ::1])",
    nogil=True,
    cache=True,
    fastmath=True,
)
def _compare_kernel(m, bg, prev, var, weight, g, o, k, floor, changed, excess, dd):  # type: ignore[no-untyped-def]  # noqa: PLR0917
    rows, cols = m.shape
    count = 0
    for r in range(rows):
        for c in range(cols):
            x = m[r, c]
            b = g * bg[r, c] + o
            bg[r, c] = b
            dd[r, c] = x - (g * prev[r, c] + o)
            prev[r, c] = x
            d = abs(x - min(b, SATURATED))
            thr = max(floor, k * np.sqrt(var[r, c]))
            if weight[r, c] != 0 and d > thr:
                changed[r, c] = 1
                excess[r, c] = d / thr
                count += 1
            else:
                changed[r, c] = 0
                excess[r, c] = 0.0
    return count


def compare_grid(  # noqa: PLR0917 -- mirrors the kernel's signature
    m: F32,
    bg: F32,
    prev: F32,
    var: F32,
    weight: U8,
    g: float,
    o: float,
    k: float,
    floor: float,
    changed: U8,
    excess: F32,
    dd: F32,
) -> int:
    """Flag changed cells (in place); re-base ``bg`` and set ``prev = m``. Returns the count."""
    return int(_compare_kernel(m, bg, prev, var, weight, g, o, k, floor, changed, excess, dd))


def compare_grid_reference(  # noqa: PLR0917 -- mirrors the kernel's signature
    m: F32,
    bg: F32,
    prev: F32,
    var: F32,
    weight: U8,
    g: float,
    o: float,
    k: float,
    floor: float,
    changed: U8,
    excess: F32,
    dd: F32,
) -> int:
    """NumPy reference for ``compare_grid`` (same in-place contract)."""
    b = (g * bg + o).astype(np.float32)
    dd[...] = m - (g * prev + o)
    bg[...] = b
    prev[...] = m
    d = np.abs(m - np.minimum(b, SATURATED))
    thr = np.maximum(floor, k * np.sqrt(var))
    hit = (weight != 0) & (d > thr)
    changed[...] = hit
    excess[...] = np.where(hit, d / thr, 0.0)
    return int(hit.sum())


@numba.njit(
    "void(float32[:, ::1], float32[:, ::1], float32[:, ::1], float32[:, ::1], uint8[:, ::1],"
    " float64, float64, float64, float64, float64)",
    nogil=True,
    cache=True,
    fastmath=True,
)
def _learn_kernel(m, bg, var, dd, active, a_bg, a_absorb, a_up, a_down, floor):  # type: ignore[no-untyped-def]  # noqa: PLR0917
    rows, cols = m.shape
    for r in range(rows):
        for c in range(cols):
            a = a_absorb if active[r, c] != 0 else a_bg
            if m[r, c] < SATURATED:  # a clipped cell says nothing about the true level
                bg[r, c] += a * (m[r, c] - bg[r, c])
            v = var[r, c]
            cap = 3.0 * np.sqrt(v) + floor
            x = min(dd[r, c] * dd[r, c], cap * cap)
            rate = a_up if x > v else a_down
            var[r, c] = v + rate * (x - v)


def learn_grid(  # noqa: PLR0917 -- mirrors the kernel's signature
    m: F32,
    bg: F32,
    var: F32,
    dd: F32,
    active: U8,
    a_bg: float,
    a_absorb: float,
    a_up: float,
    a_down: float,
    floor: float,
) -> None:
    """Blend ``m`` into ``bg`` and ``dd**2`` into ``var`` (both in place)."""
    _learn_kernel(m, bg, var, dd, active, a_bg, a_absorb, a_up, a_down, floor)


def learn_grid_reference(  # noqa: PLR0917 -- mirrors the kernel's signature
    m: F32,
    bg: F32,
    var: F32,
    dd: F32,
    active: U8,
    a_bg: float,
    a_absorb: float,
    a_up: float,
    a_down: float,
    floor: float,
) -> None:
    """NumPy reference for ``learn_grid``."""
    a = np.where(active != 0, a_absorb, a_bg)
    bg[...] = np.where(m < SATURATED, bg + a * (m - bg), bg)
    cap = 3.0 * np.sqrt(var) + floor
    x = np.minimum(dd * dd, cap * cap)
    rate = np.where(x > var, a_up, a_down)
    var[...] = var + rate * (x - var)


__all__ = [
    "compare_grid",
    "compare_grid_reference",
    "global_fit",
    "global_fit_reference",
    "learn_grid",
    "learn_grid_reference",
]
