"""Per-frame work on the analysis grid: global exposure fit, change test, learning.

All arrays here are small (about 120 x 213 cells) and C-contiguous. The detector's per-cell
state lives in two stacks of planes (``F`` float32, ``U`` uint8, indices below), so that a
kernel takes a handful of arguments and a snapshot is two array copies. The kernels fuse what
would be a dozen NumPy passes (and a dozen temporaries) into one loop each.

``global_fit``   robust brightness model ``m ~ g * bg + o`` (medians over a subsample), so that
                 exposure drift and auto-exposure steps are explained away instead of firing.
``compare_grid`` re-bases background and previous frame by ``(g, o)``, flags cells whose change
                 exceeds ``max(floor, k * noise, kb * reach)``, marks the flagged cells that
                 were (next to) flagged cells in the previous analysed frame too (*persistent*:
                 an object overlaps itself from frame to frame, rain and snow do not), and
                 keeps the frame-to-frame differences for learning.
``light_cells``  un-flags cells whose change is light, not an object: over the textured
                 neighbourhood of the cell the frame still correlates with the background
                 with a plausible local gain, and that local model explains the cell (a
                 lamp's pool, headlights, a cloud's shadow keep the texture underneath; an
                 object replaces it). Or whose change is focus: the lens went soft (the IR
                 switch refocusing, a varifocal lens hunting, dew) or sharp again, and over
                 the neighbourhood each cell moved by one share of how far it stood from its
                 neighbours' mean (towards it, or away), which explains the cell. Blocks
                 average fine texture out, so a blur shows only along edges a block or more
                 apart, in cells that stand still; an object's change does not follow the
                 background's edges.
``learn_grid``   updates the background (slowly under objects), the frame-to-frame noise, the
                 *reach* (how far the cell strays from its background while it fluctuates:
                 an envelope that rises within half a second and falls over half a minute,
                 so foliage, waves and sun glints on water, rare as a glint may be, raise
                 their own thresholds; a cell flagged in two frames running, a thing that
                 stays, teaches it nothing) and the cell's *activity* (share of time it
                 strays from its background by more than ``STRAY`` times the floor, whatever
                 its noise and reach: chronic motion stays chronic even once its reach keeps
                 it from being flagged); the noise is not learned under confirmed objects,
                 reach and activity not under anything that may still become one either.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt

from privastead.media.kernels.order import median, select_pair

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]

#: Cells darker than this (in the background) carry no usable ratio for the gain fit.
DARK = 12.0
#: Block means above this are (nearly) saturated: the sensor clips, so the brightness model
#: predicts at most this much, and the background is not learned from clipped cells.
SATURATED = 250.0
#: Gain and offset are clamped: a change beyond this is a global change anyway.
GAIN_RANGE = (0.2, 5.0)
#: Below this brightness spread (levels) the slope is unreliable: fit a pure gain instead.
MIN_SPREAD = 10.0

# Float planes of the state stack.
BG, PREV, NOISE, REACH, ACTIVITY, DD, EXCESS = range(7)
F_PLANES = 7
# Byte planes: watched cells, flagged now, flagged in the previous analysed frame, flagged
# and persistent, under an object-sized blob (slow background), under a confirmed object,
# changed by light or focus (re-based at once).
WEIGHT, CHANGED, PREV_CHANGED, PERSIST, ACTIVE, CONFIRMED, LIGHT = range(7)
U_PLANES = 7

#: Light test: neighbourhood radius (cells), least texture (block-mean levels, standard
#: deviation of the background over the neighbourhood), least correlation, plausible gains.
LIGHT_RADIUS, TEXTURE, LIGHT_CORR = 2, 2.5, 0.75
LIGHT_GAIN = (0.3, 3.0)
#: Focus test: softening a view moves each cell by at most this share of how far it stands
#: from the mean of its eight neighbours (1: it becomes that mean).
SOFTEN_MOST = 1.0

# Learning rates passed to learn_grid, as one float64 vector.
(A_BG, A_ABSORB, A_NOISE_UP, A_NOISE_DOWN, A_REACH_UP, A_REACH_DOWN, A_ACTIVITY,
 A_LIGHT, KAPPA, FLOOR) = range(10)  # fmt: skip
RATES = 10
#: A cell is active while it strays more than this many floors (and at least MIN_STRAY
#: levels) from its background: well beyond sensor noise in block means.
STRAY, MIN_STRAY = 1.5, 6.0


@numba.njit(
    "float64(float64[::1], float64[::1], int64, float64, float64, float64[::1])",
    nogil=True,
    cache=True,
)
def _median_where(v, key, count, low, high, work):  # type: ignore[no-untyped-def]  # noqa: PLR0917
    """The median of ``v[i]`` over the ``i < count`` with ``low <= key[i] <= high``."""
    n = 0
    for i in range(count):
        if low <= key[i] <= high:
            work[n] = v[i]
            n += 1
    return median(work, n, work)


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
    # Order statistics by bins, not by quickselect (``kernels.order``): on a frame it has not
    # seen, a quickselect's branches are mostly mispredicted.
    work = np.empty(count, np.float64)
    third = count // 3
    # Thirds by value: cells at or below the lower cut, at or above the upper cut.
    x_lo, _ = select_pair(xs, count, third, work)
    x_hi, _ = select_pair(xs, count, count - 1 - third, work)
    xlo = _median_where(xs, xs, count, -np.inf, x_lo, work)
    xhi = _median_where(xs, xs, count, x_hi, np.inf, work)
    if xhi - xlo > MIN_SPREAD:
        yhi = _median_where(ys, xs, count, x_hi, np.inf, work)
        ylo = _median_where(ys, xs, count, -np.inf, x_lo, work)
        g = (yhi - ylo) / (xhi - xlo)
    else:
        for i in range(count):
            work[i] = ys[i] / xs[i]
        g = median(work, count, work)
    g = min(max(g, GAIN_RANGE[0]), GAIN_RANGE[1])
    for i in range(count):
        work[i] = ys[i] - g * xs[i]
    o = median(work, count, work)
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
    "int64(float32[:, ::1], float32[:, :, ::1], uint8[:, :, ::1],"
    " float64, float64, float64, float64, float64)",
    nogil=True,
    cache=True,
    fastmath=True,
)
def _compare_kernel(m, f, u, g, o, k, kb, floor):  # type: ignore[no-untyped-def]  # noqa: PLR0917
    rows, cols = m.shape
    # Flat views of the planes: one simple loop, no 3-D index arithmetic per cell.
    x = m.ravel()
    bg, prev, noise, reach = f[BG].ravel(), f[PREV].ravel(), f[NOISE].ravel(), f[REACH].ravel()
    dd, excess = f[DD].ravel(), f[EXCESS].ravel()
    weight, changed, persist = u[WEIGHT].ravel(), u[CHANGED].ravel(), u[PERSIST].ravel()
    count = 0
    for i in range(x.size):
        b = g * bg[i] + o
        bg[i] = b
        dd[i] = x[i] - (g * prev[i] + o)
        prev[i] = x[i]
        d = abs(x[i] - min(b, SATURATED))
        thr = max(floor, k * np.sqrt(noise[i]), kb * reach[i])
        hit = weight[i] != 0 and d > thr
        changed[i] = hit
        persist[i] = 0
        excess[i] = d / thr if hit else 0.0
        count += hit
    if count:
        # Persistent: flagged now and (next to) flagged in the previous analysed frame.
        was = u[PREV_CHANGED]
        now = u[CHANGED]
        for r in range(rows):
            for c in range(cols):
                if now[r, c] == 0:
                    continue
                near = 0
                for rr in range(max(0, r - 1), min(rows, r + 2)):
                    for cc in range(max(0, c - 1), min(cols, c + 2)):
                        near |= was[rr, cc]
                u[PERSIST, r, c] = near
    u[PREV_CHANGED] = u[CHANGED]
    return count


def compare_grid(  # noqa: PLR0917 -- mirrors the kernel's signature
    m: F32, f: F32, u: U8, g: float, o: float, k: float, kb: float, floor: float
) -> int:
    """Flag changed and persistent cells (in place, see the module doc); re-base the
    background and the previous frame, set ``PREV = m``. Returns the number of flagged cells."""
    return int(_compare_kernel(m, f, u, g, o, k, kb, floor))


def thresholds(f: F32, k: float, kb: float, floor: float) -> F32:
    """Each cell's flag threshold, ``max(floor, k * noise, kb * reach)`` (``compare_grid``)."""
    thr: F32 = np.maximum(np.maximum(floor, k * np.sqrt(f[NOISE])), kb * f[REACH])
    return thr


def compare_grid_reference(  # noqa: PLR0917 -- mirrors the kernel's signature
    m: F32, f: F32, u: U8, g: float, o: float, k: float, kb: float, floor: float
) -> int:
    """NumPy reference for ``compare_grid`` (same in-place contract)."""
    b = (g * f[BG] + o).astype(np.float32)
    f[DD] = m - (g * f[PREV] + o)
    f[BG] = b
    f[PREV] = m
    d = np.abs(m - np.minimum(b, SATURATED))
    thr = thresholds(f, k, kb, floor)
    hit = (u[WEIGHT] != 0) & (d > thr)
    prev = np.pad(u[PREV_CHANGED] != 0, 1)
    rows, cols = m.shape
    near = np.zeros((rows, cols), bool)
    for dr in range(3):
        for dc in range(3):
            near |= prev[dr : dr + rows, dc : dc + cols]
    u[CHANGED] = hit
    u[PERSIST] = hit & near
    u[PREV_CHANGED] = hit
    f[EXCESS] = np.where(hit, d / thr, 0.0)
    return int(hit.sum())


# Inlined into its caller: called twice per cell looked at, a call costs more than the work.
@numba.njit(nogil=True, cache=True, fastmath=True, inline="always")
def _edges(plane, known, edges, rows, cols):  # type: ignore[no-untyped-def]
    """How far the mean of each cell's neighbours (those in the grid) lies above it, for the
    cells in ``rows`` x ``cols`` (ranges), worked out once per frame: ``edges`` keeps it
    where ``known`` says so."""
    height, width = plane.shape
    for r in rows:
        for c in cols:
            if known[r, c]:
                continue
            total = 0.0
            count = 0
            for rr in range(max(0, r - 1), min(height, r + 2)):
                for cc in range(max(0, c - 1), min(width, c + 2)):
                    total += np.float64(plane[rr, cc])
                    count += 1
            centre = np.float64(plane[r, c])
            edges[r, c] = (total - centre) / (count - 1) - centre if count > 1 else 0.0
            known[r, c] = 1


@numba.njit(nogil=True, cache=True, fastmath=True)
def _focus(m, bg, known, edges, at):  # type: ignore[no-untyped-def]
    """How far cell ``at`` is from the view softened or sharpened, or infinity if its
    neighbourhood is neither (``known``, ``edges``: the background's and the frame's edges,
    ``_edges``). Softened: ``m - bg ~ s * edge(bg)`` with one share ``0 < s <= SOFTEN_MOST``
    that correlates (``LIGHT_CORR``, through the origin: the light is taken out already)
    over edges of at least ``TEXTURE``; sharpened: ``bg - m ~ s * edge(m)`` alike (the
    background was learned soft)."""
    r, c = at
    d = np.float64(m[r, c]) - np.float64(bg[r, c])
    # The cell itself must be able to pass: off <= |d| / 2 needs s * edge on d's side, at
    # least half of it (most flagged cells fail here, without their neighbourhood's sums).
    _edges(bg, known[0], edges[0], range(r, r + 1), range(c, c + 1))
    _edges(m, known[1], edges[1], range(r, r + 1), range(c, c + 1))
    eb, em = edges[0, r, c], edges[1, r, c]
    soft = d * eb > 0.0 and 2.0 * abs(eb) * SOFTEN_MOST >= abs(d)
    sharp = -d * em > 0.0 and 2.0 * abs(em) * SOFTEN_MOST >= abs(d)
    if not (soft or sharp):
        return np.inf
    height, width = m.shape
    rad = LIGHT_RADIUS
    rows = range(max(0, r - rad), min(height, r + rad + 1))
    cols = range(max(0, c - rad), min(width, c + rad + 1))
    _edges(bg, known[0], edges[0], rows, cols)
    _edges(m, known[1], edges[1], rows, cols)
    n = 0.0
    sbb = smm = sdd = sdb = sdm = 0.0
    for rr in rows:
        for cc in cols:
            b = edges[0, rr, cc]
            e = edges[1, rr, cc]
            x = np.float64(m[rr, cc]) - np.float64(bg[rr, cc])
            n += 1.0
            sbb += b * b
            smm += e * e
            sdd += x * x
            sdb += x * b
            sdm += x * e
    least = n * TEXTURE * TEXTURE
    off = np.inf
    if soft and sbb >= least and LIGHT_CORR * np.sqrt(sbb * sdd) < sdb <= SOFTEN_MOST * sbb:
        off = abs(d - sdb / sbb * eb)
    if sharp and smm >= least and LIGHT_CORR * np.sqrt(smm * sdd) < -sdm <= SOFTEN_MOST * smm:
        off = min(off, abs(d - sdm / smm * em))
    return off


@numba.njit(nogil=True, cache=True)
def _unflag_light(f, u):  # type: ignore[no-untyped-def]
    """The cells marked ``LIGHT`` are not flagged (nor persistent, nor excessive)."""
    rows, cols = u.shape[1], u.shape[2]
    for r in range(rows):
        for c in range(cols):
            if u[LIGHT, r, c] != 0:
                u[CHANGED, r, c] = 0
                u[PERSIST, r, c] = 0
                u[PREV_CHANGED, r, c] = 0
                f[EXCESS, r, c] = 0.0


@numba.njit(
    "int64(float32[:, ::1], float32[:, :, ::1], uint8[:, :, ::1], float64, float64)",
    nogil=True,
    cache=True,
    fastmath=True,
)
def _light_kernel(m, f, u, k, floor):  # type: ignore[no-untyped-def]
    rows, cols = m.shape
    lit = 0
    rad = LIGHT_RADIUS
    # The background's and the frame's edges, worked out where the focus test needs them
    # (a few cells around what the light test leaves; every cell once would cost more).
    edges = np.empty((2, rows, cols))
    known = np.zeros((2, rows, cols), np.uint8)
    bg = f[BG]
    for r in range(rows):
        for c in range(cols):
            u[LIGHT, r, c] = 0
            if u[CHANGED, r, c] == 0:
                continue
            n = 0.0
            sx = sy = sxx = syy = sxy = 0.0
            for rr in range(max(0, r - rad), min(rows, r + rad + 1)):
                for cc in range(max(0, c - rad), min(cols, c + rad + 1)):
                    x = np.float64(f[BG, rr, cc])
                    y = np.float64(m[rr, cc])
                    n += 1.0
                    sx += x
                    sy += y
                    sxx += x * x
                    syy += y * y
                    sxy += x * y
            mx = sx / n
            my = sy / n
            vx = sxx / n - mx * mx
            vy = syy / n - my * my
            cxy = sxy / n - mx * my
            if vx < TEXTURE * TEXTURE:
                continue
            thr = max(floor, k * np.sqrt(f[NOISE, r, c]))
            change = abs(np.float64(m[r, c]) - np.float64(f[BG, r, c]))
            if vy > 0.0:
                corr = cxy / np.sqrt(vx * vy)
                gain = cxy / vx
                if corr >= LIGHT_CORR and LIGHT_GAIN[0] <= gain <= LIGHT_GAIN[1]:
                    # The local model must explain this cell, not only its neighbours (a
                    # small object in an unchanged neighbourhood leaves the fit at gain 1
                    # and stands out).
                    predicted = my + gain * (f[BG, r, c] - mx)
                    off = abs(m[r, c] - predicted)
                    if off <= thr and off <= 0.5 * change:
                        u[LIGHT, r, c] = 1
                        lit += 1
                        continue
            # The view went soft (the frame is the background softened) or sharp again
            # (the background, learned while it was soft, is the frame softened).
            off = _focus(m, bg, known, edges, (r, c))
            if off <= thr and off <= 0.5 * change:
                u[LIGHT, r, c] = 1
                lit += 1
    _unflag_light(f, u)
    return lit


def light_cells(m: F32, f: F32, u: U8, k: float, floor: float) -> int:
    """Un-flag the flagged cells whose change is light (see the module doc) and mark them in
    the ``LIGHT`` plane. Returns how many."""
    return int(_light_kernel(m, f, u, k, floor))


def _edges_reference(plane: F64) -> F64:
    """How far the mean of each cell's neighbours (those in the grid) lies above the cell."""
    rows, cols = plane.shape
    padded = np.pad(plane, 1)
    inside = np.pad(np.ones_like(plane), 1)
    total, count = np.zeros_like(plane), np.zeros_like(plane)
    for dr in range(3):
        for dc in range(3):
            if dr != 1 or dc != 1:
                total += padded[dr : dr + rows, dc : dc + cols]
                count += inside[dr : dr + rows, dc : dc + cols]
    edges: F64 = np.divide(total, count, out=plane.copy(), where=count > 0) - plane
    return edges


def _focus_reference(change: F64, bg_edges: F64, m_edges: F64, at: tuple[int, int]) -> float:
    """How far cell ``at`` of the window ``change`` (frame minus background) is from the
    view softened or sharpened, or infinity if it is neither (``_focus``)."""
    d, eb, em = float(change[at]), float(bg_edges[at]), float(m_edges[at])
    soft = d * eb > 0.0 and 2.0 * abs(eb) * SOFTEN_MOST >= abs(d)
    sharp = -d * em > 0.0 and 2.0 * abs(em) * SOFTEN_MOST >= abs(d)
    if not (soft or sharp):
        return math.inf
    x, b, e = change.ravel(), bg_edges.ravel(), m_edges.ravel()
    least, sdd = x.size * TEXTURE * TEXTURE, float(x @ x)
    sbb, smm, sdb, sdm = float(b @ b), float(e @ e), float(x @ b), float(x @ e)
    off = math.inf
    if soft and sbb >= least and LIGHT_CORR * math.sqrt(sbb * sdd) < sdb <= SOFTEN_MOST * sbb:
        off = abs(d - sdb / sbb * eb)
    if sharp and smm >= least and LIGHT_CORR * math.sqrt(smm * sdd) < -sdm <= SOFTEN_MOST * smm:
        off = min(off, abs(d - sdm / smm * em))
    return off


def light_cells_reference(m: F32, f: F32, u: U8, k: float, floor: float) -> int:
    """NumPy reference for ``light_cells``."""
    rows, cols = m.shape
    rad = LIGHT_RADIUS
    lit = np.zeros((rows, cols), bool)
    bg = f[BG].astype(np.float64)
    frame = m.astype(np.float64)
    bg_edges, m_edges = _edges_reference(bg), _edges_reference(frame)
    for r, c in zip(*np.nonzero(u[CHANGED]), strict=True):
        win = np.s_[max(0, r - rad) : r + rad + 1, max(0, c - rad) : c + rad + 1]
        x, y = bg[win].ravel(), frame[win].ravel()
        vx, vy = x.var(), y.var()
        if vx < TEXTURE * TEXTURE:
            continue
        thr = max(floor, k * np.sqrt(f[NOISE, r, c]))
        change = abs(frame[r, c] - bg[r, c])
        if vy > 0.0:
            cxy = float(((x - x.mean()) * (y - y.mean())).mean())
            corr, gain = cxy / np.sqrt(vx * vy), cxy / vx
            if corr >= LIGHT_CORR and LIGHT_GAIN[0] <= gain <= LIGHT_GAIN[1]:
                predicted = y.mean() + gain * (bg[r, c] - x.mean())
                off = abs(frame[r, c] - predicted)
                if off <= thr and off <= 0.5 * change:
                    lit[r, c] = True
                    continue
        at = (r - win[0].start, c - win[1].start)
        off = _focus_reference(frame[win] - bg[win], bg_edges[win], m_edges[win], at)
        lit[r, c] = off <= thr and off <= 0.5 * change
    u[LIGHT] = lit
    for plane in (CHANGED, PERSIST, PREV_CHANGED):
        u[plane][lit] = 0
    f[EXCESS][lit] = 0.0
    return int(lit.sum())


@numba.njit(
    "void(float32[:, ::1], float32[:, :, ::1], uint8[:, :, ::1], float64[::1])",
    nogil=True,
    cache=True,
    fastmath=True,
)
def _learn_kernel(m, f, u, rates):  # type: ignore[no-untyped-def]
    floor = rates[FLOOR]
    kappa = rates[KAPPA]
    stray = max(MIN_STRAY, STRAY * floor)
    a_bg, a_absorb, a_light = rates[A_BG], rates[A_ABSORB], rates[A_LIGHT]
    n_up, n_down = rates[A_NOISE_UP], rates[A_NOISE_DOWN]
    r_up, r_down, a_act = rates[A_REACH_UP], rates[A_REACH_DOWN], rates[A_ACTIVITY]
    # Flat views of the planes: one simple loop, no 3-D index arithmetic per cell.
    xs = m.ravel()
    bgs, noise, reach, act, dds = (
        f[BG].ravel(),
        f[NOISE].ravel(),
        f[REACH].ravel(),
        f[ACTIVITY].ravel(),
        f[DD].ravel(),
    )
    active, confirmed, light = u[ACTIVE].ravel(), u[CONFIRMED].ravel(), u[LIGHT].ravel()
    persist = u[PERSIST].ravel()
    for i in range(xs.size):
        x = xs[i]
        bg = bgs[i]
        dev = x - min(bg, SATURATED)
        a = a_absorb if active[i] != 0 else a_bg
        if light[i] != 0:
            a = a_light  # light changed: follow it quickly
        if x < SATURATED:  # a clipped cell says nothing about the true level
            bgs[i] = bg + a * (x - bg)
        if confirmed[i] != 0:
            continue  # nothing is learned under objects: their motion is not the cell's
        dd = dds[i]
        v = noise[i]
        s = dd * dd
        if s > v:
            cap = 3.0 * np.sqrt(v) + floor
            noise[i] = v + n_up * (min(s, cap * cap) - v)
        else:
            noise[i] = v + n_down * (s - v)
        if active[i] != 0:
            continue  # ...nor reach and activity under what may still become one
        # Reach: how far the cell strays from its background *while it fluctuates*. A
        # standing person is far from the background but steady (small dd), so it teaches
        # nothing; swaying leaves are far and changing, so they do.
        w = reach[i]
        y = min(abs(dev), kappa * abs(dd))
        if y > w:
            if persist[i] == 0:
                reach[i] = w + r_up * (y - w)
        else:
            reach[i] = w - r_down * w
        # (a cell changed by light is not moving)
        strays = 1.0 if abs(dev) > stray and light[i] == 0 else 0.0
        act[i] = act[i] + a_act * (strays - act[i])


def learn_grid(m: F32, f: F32, u: U8, rates: F64) -> None:
    """Learn background, noise, reach and activity from ``m`` (in place; ``rates`` indexed
    by ``A_BG`` .. ``FLOOR``)."""
    _learn_kernel(m, f, u, rates)


def learn_grid_reference(m: F32, f: F32, u: U8, rates: F64) -> None:
    """NumPy reference for ``learn_grid``."""
    floor, kappa = rates[FLOOR], rates[KAPPA]
    bg = f[BG].copy()
    dev = m - np.minimum(bg, SATURATED)
    a = np.where(u[ACTIVE] != 0, rates[A_ABSORB], rates[A_BG])
    a = np.where(u[LIGHT] != 0, rates[A_LIGHT], a)
    f[BG] = np.where(m < SATURATED, bg + a * (m - bg), bg)
    dd = f[DD]
    free = u[CONFIRMED] == 0
    idle = free & (u[ACTIVE] == 0)
    v = f[NOISE].copy()
    cap = 3.0 * np.sqrt(v) + floor
    s = np.minimum(dd * dd, cap * cap)
    rate = np.where(s > v, rates[A_NOISE_UP], rates[A_NOISE_DOWN])
    f[NOISE] = np.where(free, v + rate * (s - v), v)
    w = f[REACH].copy()
    x = np.minimum(np.abs(dev), kappa * np.abs(dd))
    grown = np.where(x > w, w + rates[A_REACH_UP] * (x - w), w - rates[A_REACH_DOWN] * w)
    grown = np.where((x > w) & (u[PERSIST] != 0), w, grown)
    f[REACH] = np.where(idle, grown, w)
    strays = ((np.abs(dev) > max(MIN_STRAY, STRAY * floor)) & (u[LIGHT] == 0)).astype(np.float32)
    act = f[ACTIVITY].copy()
    f[ACTIVITY] = np.where(idle, act + rates[A_ACTIVITY] * (strays - act), act)


__all__ = [
    "ACTIVE",
    "ACTIVITY",
    "BG",
    "CHANGED",
    "CONFIRMED",
    "DD",
    "EXCESS",
    "F_PLANES",
    "LIGHT",
    "NOISE",
    "PERSIST",
    "PREV",
    "PREV_CHANGED",
    "RATES",
    "REACH",
    "U_PLANES",
    "WEIGHT",
    "compare_grid",
    "compare_grid_reference",
    "global_fit",
    "global_fit_reference",
    "learn_grid",
    "learn_grid_reference",
    "light_cells",
    "light_cells_reference",
    "thresholds",
]
