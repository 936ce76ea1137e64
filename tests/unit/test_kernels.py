"""Each Numba kernel agrees with its NumPy reference, including on non-contiguous views."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from privastead.camsim.lens import soften
from privastead.media import kernels as k
from privastead.media.kernels import clipping, order
from privastead.media.kernels import grid as G


def _plane(rng: np.random.Generator, h: int, w: int, pad: int) -> np.ndarray:
    """A (h, w) uint8 view with row padding, like a decoder's Y plane with line_size > w."""
    return rng.integers(0, 256, (h, w + pad), dtype=np.uint8)[:, :w]


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 70),
    w=st.integers(1, 90),
    pad=st.integers(0, 40),
    block=st.integers(1, 20),
    seed=st.integers(0, 2**32 - 1),
)
def test_block_means_matches_reference(h: int, w: int, pad: int, block: int, seed: int) -> None:
    y = _plane(np.random.default_rng(seed), h, w, pad)
    got = k.block_means(y, block)
    want = k.block_means_reference(y, block)
    assert got.shape == want.shape == (h // block, w // block)
    np.testing.assert_allclose(got, want, atol=1e-3)


def test_block_means_on_odd_strides_and_4k_shape() -> None:
    rng = np.random.default_rng(1)
    y = _plane(rng, 2160, 3840, 64)
    np.testing.assert_allclose(k.block_means(y, 18), k.block_means_reference(y, 18), atol=1e-3)
    strided = rng.integers(0, 256, (100, 200), dtype=np.uint8)[::2, ::3]  # inner stride != 1
    np.testing.assert_allclose(
        k.block_means(strided, 4), k.block_means_reference(strided, 4), atol=1e-3
    )
    saturated = np.full((256 * 2, 256 * 2), 255, np.uint8)
    assert np.all(k.block_means(saturated, 256) == 255)  # accumulators cannot overflow


def test_block_means_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        k.block_means(np.zeros((8, 8), np.float32), 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="block"):
        k.block_means(np.zeros((8, 8), np.uint8), 0)


def _grid(rng: np.random.Generator, rows: int, cols: int) -> dict[str, np.ndarray]:
    bg = rng.uniform(0, 255, (rows, cols)).astype(np.float32)
    m = np.clip(bg * rng.uniform(0.7, 1.3) + rng.normal(0, 8, bg.shape), 0, 255).astype(np.float32)
    return {
        "m": m,
        "bg": bg,
        "prev": np.clip(m + rng.normal(0, 3, m.shape), 0, 255).astype(np.float32),
        "var": rng.uniform(0, 30, m.shape).astype(np.float32),
        "weight": (rng.random(m.shape) > 0.2).astype(np.uint8),
    }


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(4, 40),
    cols=st.integers(4, 40),
    seed=st.integers(0, 2**32 - 1),
    step=st.integers(1, 5),
)
def test_global_fit_matches_reference(rows: int, cols: int, seed: int, step: int) -> None:
    g = _grid(np.random.default_rng(seed), rows, cols)
    got = k.global_fit(g["m"], g["bg"], g["weight"], step)
    want = k.global_fit_reference(g["m"], g["bg"], g["weight"], step)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-4)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), levels=st.sampled_from([2, 16, 256]))
def test_global_fit_matches_reference_on_tied_values(seed: int, levels: int) -> None:
    """Block means come in steps (a flat wall, a clipped sky): thirds and medians with ties."""
    rng = np.random.default_rng(seed)
    bg = (20 + np.floor(rng.uniform(0, levels, (120, 213))) * (220 / levels)).astype(np.float32)
    m = (bg * 1.1 + np.round(rng.normal(0, 2, bg.shape))).astype(np.float32)
    weight = np.ones(bg.shape, np.uint8)
    assert k.global_fit(m, bg, weight) == k.global_fit_reference(m, bg, weight)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 3000),
    kind=st.sampled_from(["uniform", "ties", "cluster", "constant", "spread"]),
    at=st.floats(0, 1),
    seed=st.integers(0, 2**32 - 1),
)
def test_order_statistics_match_numpy(n: int, kind: str, at: float, seed: int) -> None:
    """The binned selection gives NumPy's exact values: ties, a tight cluster among outliers
    (several passes of bins), all equal, values spanning many orders of magnitude."""
    rng = np.random.default_rng(seed)
    a = {
        "uniform": lambda: rng.uniform(-50, 300, n),
        "ties": lambda: rng.integers(0, 5, n).astype(np.float64),
        "cluster": lambda: np.where(
            rng.random(n) < 0.05, rng.uniform(-1e6, 1e6, n), 7 + rng.uniform(0, 1e-9, n)
        ),
        "constant": lambda: np.full(n, 3.25),
        "spread": lambda: rng.standard_normal(n) * 10.0 ** rng.integers(-8, 8, n),
    }[kind]()
    kth = min(n - 1, int(at * n))
    before = a.copy()
    work = np.empty(n, np.float64)
    assert order.select_pair(a, n, kth, work) == order.select_pair_reference(a, n, kth)
    np.testing.assert_array_equal(a, before)  # read only, when it is not the scratch
    assert order.median(a, n, work) == order.median_reference(a, n)
    assert order.median(a, n, a) == order.median_reference(before, n)  # in place


def test_global_fit_recovers_an_exposure_change() -> None:
    rng = np.random.default_rng(0)
    bg = rng.uniform(20, 200, (60, 80)).astype(np.float32)
    m = (1.2 * bg + 5).astype(np.float32)
    m[:10, :10] = 0  # an object: the medians ignore it
    g, o = k.global_fit(m, bg, np.ones_like(bg, np.uint8), 1)
    assert g == pytest.approx(1.2, abs=0.01) and o == pytest.approx(5, abs=1.0)


def _rows_state(bg: np.ndarray) -> np.ndarray:
    """Byte planes for ``row_gains``: every cell watched, nothing flagged before, no blob."""
    u = np.zeros((G.U_PLANES, *bg.shape), np.uint8)
    u[G.WEIGHT] = 1
    return u


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 40),
    cols=st.integers(1, 60),
    depth=st.sampled_from([0.2, 0.02, 0.008]),
    seed=st.integers(0, 2**32 - 1),
)
def test_row_gains_match_reference(rows: int, cols: int, depth: float, seed: int) -> None:
    """Deep bands, and shallow ones whose rows straddle ``LEAST_BAND`` (where the kernel
    decides from counts which rows need no median)."""
    rng = np.random.default_rng(seed)
    bg = rng.uniform(0, 255, (rows, cols)).astype(np.float32)
    phase = rng.uniform(0, 1)
    band = 1.0 + depth * np.cos(2 * np.pi * (np.arange(rows) / rng.uniform(8, 30) + phase))
    band[rng.random(rows) < 0.1] = 1.0 + rng.uniform(-0.3, 0.3)  # a few rows off the bands
    noise = rng.normal(0, 3 if depth > 0.1 else 0.5, bg.shape)
    m = np.clip(bg * band[:, None] + noise, 0, 255).astype(np.float32)
    u = (rng.random((G.U_PLANES, rows, cols)) < 0.1).astype(np.uint8)
    u[G.WEIGHT] = rng.random((rows, cols)) > 0.1
    got_h, want_h = np.zeros(rows, np.float32), np.zeros(rows, np.float32)
    got = k.row_gains(m, bg, u, 1.02, -1.0, got_h)
    want = k.row_gains_reference(m, bg, u, 1.02, -1.0, want_h)
    assert got == want
    np.testing.assert_allclose(got_h, want_h, rtol=1e-6)


def test_row_gains_find_the_bands_of_a_mains_light() -> None:
    rng = np.random.default_rng(1)
    bg = rng.uniform(30, 200, (120, 213)).astype(np.float32)
    band = 1.0 + 0.15 * np.cos(2 * np.pi * (np.arange(120) / 40 + 0.3))
    m = (bg * band[:, None] + rng.normal(0, 1.5, bg.shape)).astype(np.float32)
    m[40:70, 100:130] = 20.0  # a person: the rows' medians ignore them
    gains = np.zeros(120, np.float32)
    banded = k.row_gains(m, bg, _rows_state(bg), 1.0, 0.0, gains)
    deep = np.abs(band - 1) > 0.03  # shallower rows are within the noise: left alone
    assert banded >= deep.sum()
    np.testing.assert_allclose(gains[deep], band[deep], atol=0.01)
    rest = np.ones(bg.shape, bool)
    rest[40:70, 100:130] = False
    # The background brought to each row's light is the frame, up to the noise.
    assert np.abs(m - gains[:, None] * bg)[rest].mean() < 2.0


def test_row_gains_ignore_a_knocked_walls_courses() -> None:
    """A brick wall moved a pixel up changes short runs of rows, alternately brighter and
    darker, as a whole: not a light's smooth bands."""
    rng = np.random.default_rng(4)
    courses = np.where((np.arange(120) // 3) % 2 == 0, 150.0, 90.0)
    bg = (courses[:, None] + rng.normal(0, 4, (120, 213))).astype(np.float32)
    m = (np.roll(bg, -1, axis=0) + rng.normal(0, 1.5, bg.shape)).astype(np.float32)
    gains = np.zeros(120, np.float32)
    assert k.row_gains(m, bg, _rows_state(bg), 1.0, 0.0, gains) == 0
    assert (gains == 1.0).all()


def test_row_gains_leave_a_beam_that_lights_a_few_rows() -> None:
    """A car's headlights light a few rows of the road as a whole at night: smooth, but no
    mains light, whose bands run through the whole frame."""
    rng = np.random.default_rng(5)
    bg = rng.uniform(30, 120, (120, 213)).astype(np.float32)
    m = (bg + rng.normal(0, 1.5, bg.shape)).astype(np.float32)
    m[90:98] *= 1.0 + 0.5 * np.sin(np.linspace(0.2, np.pi - 0.2, 8))[:, None]
    gains = np.zeros(120, np.float32)
    assert k.row_gains(m, bg, _rows_state(bg), 1.0, 0.0, gains) == 0
    assert (gains == 1.0).all()


def test_row_gains_leave_a_pool_of_light_over_part_of_the_rows() -> None:
    """A headlight's pool brightening 45 % of some rows pulls their medians but leaves the
    rest of each row where it was: no row light (the light test judges the pool)."""
    rng = np.random.default_rng(2)
    bg = rng.uniform(30, 200, (60, 100)).astype(np.float32)
    m = (bg + rng.normal(0, 1.5, bg.shape)).astype(np.float32)
    m[30:50, 10:55] *= 1.8
    gains = np.zeros(60, np.float32)
    assert k.row_gains(m, bg, _rows_state(bg), 1.0, 0.0, gains) == 0
    assert (gains == 1.0).all()


def test_row_gains_count_the_dark_cells_of_a_night_row() -> None:
    """At night a row's only cells above the dark limit can all be in a headlight's pool:
    the dark rest of the row, unchanged, says the row is not lit as a whole."""
    rng = np.random.default_rng(3)
    bg = rng.uniform(3, 10, (40, 200)).astype(np.float32)
    bg[:, :30] = rng.uniform(14, 20, (40, 30))  # the only cells the ratio can use
    m = (bg + rng.normal(0, 1.0, bg.shape)).astype(np.float32)
    m[:, :30] *= 1.9  # all of them lit
    gains = np.zeros(40, np.float32)
    assert k.row_gains(m, bg, _rows_state(bg), 1.0, 0.0, gains) == 0


def _state(rng: np.random.Generator, rows: int, cols: int) -> tuple[np.ndarray, ...]:
    """A frame and a plausible detector state (float and byte planes of kernels.grid)."""
    g = _grid(rng, rows, cols)
    f = np.zeros((G.F_PLANES, rows, cols), np.float32)
    f[G.BG], f[G.PREV], f[G.NOISE] = g["bg"], g["prev"], g["var"]
    f[G.REACH] = rng.uniform(0, 20, (rows, cols))
    f[G.ACTIVITY] = rng.uniform(0, 1, (rows, cols))
    u = (rng.random((G.U_PLANES, rows, cols)) > 0.5).astype(np.uint8)
    u[G.WEIGHT] = g["weight"]
    return g["m"], f, u


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
def test_compare_light_and_learn_match_reference(rows: int, cols: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    m, f, u = _state(rng, rows, cols)
    # a lamp's pool over part of the grid: texture kept, brighter
    f[G.BG] = np.clip(f[G.BG], 20, 200)
    m[: rows // 2] = np.clip(
        1.4 * f[G.BG][: rows // 2] + rng.normal(0, 1, (rows // 2, cols)), 0, 255
    )
    gain, off = float(rng.uniform(0.8, 1.2)), float(rng.uniform(-5, 5))
    fa, ua, fb, ub = f.copy(), u.copy(), f.copy(), u.copy()
    n1 = k.compare_grid(m, fa, ua, gain, off, 4.0, 1.2, 6.0)
    n2 = k.compare_grid_reference(m, fb, ub, gain, off, 4.0, 1.2, 6.0)
    assert n1 == n2
    np.testing.assert_array_equal(ua, ub)
    np.testing.assert_allclose(fa, fb, rtol=1e-5, atol=1e-3)
    lit1 = k.light_cells(m, fa, ua, 4.0, 6.0)
    lit2 = k.light_cells_reference(m, fb, ub, 4.0, 6.0)
    assert lit1 == lit2
    np.testing.assert_array_equal(ua, ub)
    np.testing.assert_allclose(fa, fb, rtol=1e-5, atol=1e-3)
    rates = rng.uniform(0.0, 0.5, G.RATES)
    rates[G.KAPPA], rates[G.FLOOR] = 4.0, 6.0
    k.learn_grid(m, fa, ua, rates)
    k.learn_grid_reference(m, fb, ub, rates)
    np.testing.assert_allclose(fa, fb, rtol=1e-4, atol=1e-3)


def test_compare_flags_persistent_cells_and_light_spares_objects() -> None:
    rng = np.random.default_rng(3)
    m, f, u = _state(rng, 30, 30)
    f[G.BG] = rng.uniform(60, 160, (30, 30)).astype(np.float32)  # textured
    f[G.NOISE], f[G.REACH] = 1.0, 1.0
    u[G.WEIGHT], u[G.PREV_CHANGED] = 1, 0
    u[G.PREV_CHANGED, 5:9, 5:9] = 1  # an object was here in the previous frame
    m = f[G.BG].copy()
    m[6:10, 6:10] = 20  # ...and has moved a cell on: it overlaps itself
    m[20:22, 20:22] = 240  # a new speck: not persistent
    assert k.compare_grid(m, f, u, 1.0, 0.0, 4.0, 1.2, 6.0) == 20
    assert u[G.PERSIST].sum() == 16 and u[G.PERSIST, 20:22, 20:22].sum() == 0
    # an object replaces the texture: not light; the whole grid 1.5x brighter: all light
    assert k.light_cells(m, f, u, 4.0, 6.0) == 0
    m2 = (1.5 * f[G.BG]).astype(np.float32)
    k.compare_grid(m2, f, u, 1.0, 0.0, 4.0, 1.2, 6.0)
    changed = int(u[G.CHANGED].sum())
    assert changed > 800 and k.light_cells(m2, f, u, 4.0, 6.0) == changed
    assert u[G.CHANGED].sum() == 0 and u[G.LIGHT].sum() == changed


def _pixels(rng: np.random.Generator, patch: int) -> np.ndarray:
    """A 360x640 view of flat patches ``patch`` pixels wide (sharp edges a block apart)."""
    coarse = rng.uniform(40, 200, (360 // patch + 1, 640 // patch + 1))
    return np.kron(coarse, np.ones((patch, patch)))[:360, :640].astype(np.float32)


def _blocks(pixels: np.ndarray) -> np.ndarray:
    """The analysis grid (3x3-pixel blocks) of a float picture."""
    plane = np.clip(pixels + 0.5, 0, 255).astype(np.uint8)
    return k.block_means(plane, 3, np.zeros((120, 213), np.float32)).copy()


def _calm(bg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Detector state over background ``bg``: low noise and reach, watched everywhere."""
    f = np.zeros((G.F_PLANES, *bg.shape), np.float32)
    u = np.zeros((G.U_PLANES, *bg.shape), np.uint8)
    f[G.BG], f[G.PREV], f[G.NOISE], f[G.REACH] = bg, bg, 1.0, 1.0
    u[G.WEIGHT] = 1
    return f, u


@settings(max_examples=20, deadline=None)
@given(
    patch=st.integers(6, 40),
    blur=st.floats(1.5, 9.0),
    sharpen=st.booleans(),
    person=st.integers(0, 2),
    seed=st.integers(0, 2**32 - 1),
)
# a tie that NumPy 1.26 with Numba 0.60 broke the other way (one cell of 8,638)
@example(patch=17, blur=7.0, sharpen=False, person=0, seed=2)
def test_light_matches_reference_as_the_focus_changes(
    patch: int, blur: float, sharpen: bool, person: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    pixels = _pixels(rng, patch)
    sharp, soft = pixels, soften(pixels, blur)
    before, after = (soft, sharp) if sharpen else (sharp, soft)
    after = after.copy()
    for _ in range(person):  # people in the view, replacing what is behind them
        top, left = rng.integers(0, 300), rng.integers(0, 600)
        after[top : top + 60, left : left + 24] = rng.uniform(20, 230)
    m = _blocks(after + rng.normal(0, 2, after.shape))
    fa, ua = _calm(_blocks(before))
    fb, ub = fa.copy(), ua.copy()
    k.compare_grid(m, fa, ua, 1.0, 0.0, 4.0, 1.2, 6.0)
    k.compare_grid_reference(m, fb, ub, 1.0, 0.0, 4.0, 1.2, 6.0)
    f0, u0 = fb.copy(), ub.copy()
    lit = k.light_cells(m, fa, ua, 4.0, 6.0)
    lit_reference = k.light_cells_reference(m, fb, ub, 4.0, 6.0)
    ties = _ties(m, f0, u0, ua[G.LIGHT] != ub[G.LIGHT])
    assert lit - lit_reference == int(ua[G.LIGHT][ties].sum()) - int(ub[G.LIGHT][ties].sum())
    np.testing.assert_array_equal(ua[:, ~ties], ub[:, ~ties])


def _ties(m: np.ndarray, f: np.ndarray, u: np.ndarray, differ: np.ndarray) -> np.ndarray:
    """The cells of ``differ`` (where ``light_cells`` and its reference decided otherwise)
    that are floating-point ties, or fail the test: on flat patches of whole grey levels a
    cell's distance from the light model can come out equal to half its change, and the
    kernel (fastmath, its own order of sums) and the reference break such a tie either way.
    A cell is a tie when the reference itself decides it both ways with the frame or the
    background nudged there by a thousandth of a grey level down and up."""
    for r, c in np.argwhere(differ):
        decided = set()
        for plane, nudge in ((None, -1e-3), (None, 1e-3), (G.BG, -1e-3), (G.BG, 1e-3)):
            mn, fn, un = m.copy(), f.copy(), u.copy()
            (mn if plane is None else fn[plane])[r, c] += nudge
            k.light_cells_reference(mn, fn, un, 4.0, 6.0)
            decided.add(int(un[G.LIGHT, r, c]))
        assert len(decided) == 2, f"cell ({r}, {c}) differs from the reference and is no tie"
    return differ


def test_focus_explains_a_view_gone_soft_or_sharp_again_not_a_person() -> None:
    rng = np.random.default_rng(4)
    pixels = _pixels(rng, 24)
    sharp, soft = _blocks(pixels), _blocks(soften(pixels, 4.0))
    # The lens goes soft: every edge's cells change, and all of it is focus.
    f, u = _calm(sharp)
    changed = k.compare_grid(soft, f, u, 1.0, 0.0, 4.0, 1.2, 6.0)
    assert changed > 5000 and k.light_cells(soft, f, u, 4.0, 6.0) == changed
    # ...and sharp again over the background learned while it was soft: focus too.
    f, u = _calm(soft)
    changed = k.compare_grid(sharp, f, u, 1.0, 0.0, 4.0, 1.2, 6.0)
    assert changed > 5000 and k.light_cells(sharp, f, u, 4.0, 6.0) == changed
    # A person across the patches' edges replaces what is behind them: not focus, sharp
    # view or soft.
    for picture in (pixels, soften(pixels, 4.0)):
        person = picture.copy()
        person[130:220, 300:324] = 40 + rng.normal(0, 3, (90, 24))
        m = _blocks(person)
        f, u = _calm(_blocks(picture))
        changed = k.compare_grid(m, f, u, 1.0, 0.0, 4.0, 1.2, 6.0)
        assert changed > 200
        k.light_cells(m, f, u, 4.0, 6.0)
        assert u[G.CHANGED, 44:73, 101:107].mean() > 0.9


def test_reach_learns_fluctuation_and_glints_not_a_standing_object() -> None:
    rows = cols = 8
    f = np.zeros((G.F_PLANES, rows, cols), np.float32)
    u = np.zeros((G.U_PLANES, rows, cols), np.uint8)
    f[G.BG] = f[G.PREV] = 100.0
    f[G.PREV][:, :3] = 130.0  # the standing object arrived before
    rates = np.zeros(G.RATES)
    rates[G.A_REACH_UP], rates[G.A_REACH_DOWN], rates[G.KAPPA], rates[G.FLOOR] = 0.2, 0.005, 4, 6
    u[G.PERSIST] = 0
    for i in range(100):
        m = np.full((rows, cols), 100.0, np.float32)
        m[:, :3] = 130.0  # standing: far from the background, steady
        m[:, 3:6] = 100.0 + (25.0 if i % 2 else -25.0)  # swaying: far and changing
        m[:, 6:] = 180.0 if i % 10 == 0 else 100.0  # a glint one frame in ten
        f[G.DD] = m - f[G.PREV]
        f[G.PREV] = m
        k.learn_grid(m, f, u, rates)
        f[G.BG] = 100.0
    assert f[G.REACH][:, :3].max() < 2.0
    assert f[G.REACH][:, 3:6].min() > 20.0
    assert f[G.REACH][:, 6:].min() > 60.0


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 30),
    cols=st.integers(1, 30),
    density=st.floats(0, 1),
    seed=st.integers(0, 2**32 - 1),
)
def test_label_cells_matches_reference(rows: int, cols: int, density: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    mask = (rng.random((rows, cols)) < density).astype(np.uint8)
    persist = mask & (rng.random((rows, cols)) < 0.5).astype(np.uint8)
    planes = [rng.uniform(0, 255, (rows, cols)).astype(np.float32) for _ in range(7)]
    planes[0] *= mask  # excess
    labels, stats = k.label_cells(mask, persist, *planes)
    ref_labels, ref_stats = k.label_cells_reference(mask, persist, *planes)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(stats, ref_stats, rtol=1e-5, atol=1e-3)


def test_label_cells_counts_blobs_with_8_connectivity() -> None:
    mask = np.array([[1, 0, 0, 1], [0, 1, 0, 1], [0, 0, 0, 0], [1, 1, 0, 1]], np.uint8)
    z = np.zeros(mask.shape, np.float32)
    _, stats = k.label_cells(mask, mask, mask.astype(np.float32), z, z, z, z, z, z)
    assert sorted(stats[:, 0].tolist()) == [1, 2, 2, 2]


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 12),
    cols=st.integers(1, 12),
    block=st.integers(1, 9),
    pad=st.integers(0, 16),
    seed=st.integers(0, 2**32 - 1),
)
def test_clipped_cells_match_reference(
    rows: int, cols: int, block: int, pad: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    # highlights: a third of the pixels at the ceiling or above, the rest anywhere
    y = _plane(rng, rows * block, cols * block, pad)
    y[rng.random(y.shape) < 0.3] = 255
    m = k.block_means(y, block)
    _, f, u = _state(rng, rows, cols)
    f[G.BG] = m + rng.uniform(-20, 20, m.shape).astype(np.float32)
    fa, ua, fb, ub = f.copy(), u.copy(), f.copy(), u.copy()
    n1 = clipping.clipped_cells(y, block, m, fa, ua)
    n2 = clipping.clipped_cells_reference(y, block, m, fb, ub)
    assert n1 == n2
    np.testing.assert_array_equal(ua, ub)
    np.testing.assert_array_equal(fa, fb)


def test_clipping_explains_a_wall_that_brightens_less_than_predicted_not_a_person() -> None:
    block, rng = 8, np.random.default_rng(5)
    # after an exposure step, a bright wall (the top 5 rows of cells) would be 200-300: about
    # half of its pixels clip at 255, so its blocks are darker than the brightness model says
    scene = rng.integers(120, 200, (80, 80))
    scene[:40] = rng.integers(200, 300, (40, 80))
    predicted = scene.reshape(10, block, 10, block).mean(axis=(1, 3)).astype(np.float32)
    y = np.minimum(scene, 255).astype(np.uint8)
    y[8:32, 32:48] = 60  # a person in dark clothes in front of the wall: cells 1-3, 4-5
    person = np.zeros((10, 10), bool)
    person[1:4, 4:6] = True
    m = k.block_means(y, block)
    f = np.zeros((G.F_PLANES, 10, 10), np.float32)
    u = np.zeros((G.U_PLANES, 10, 10), np.uint8)
    f[G.BG], u[G.WEIGHT] = predicted, 1
    u[G.CHANGED] = np.abs(m - np.minimum(predicted, G.SATURATED)) > 6.0
    assert u[G.CHANGED][:5].sum() == 50  # the whole wall is flagged by its block means
    assert clipping.clipped_cells(y, block, m, f, u) == 50 - 6
    assert u[G.CHANGED][person].all() and not u[G.LIGHT][person].any()  # the person is not
    assert u[G.CHANGED].sum() == 6
