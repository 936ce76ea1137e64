"""Each Numba kernel agrees with its NumPy reference, including on non-contiguous views."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privastead.media import kernels as k


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


def test_global_fit_recovers_an_exposure_change() -> None:
    rng = np.random.default_rng(0)
    bg = rng.uniform(20, 200, (60, 80)).astype(np.float32)
    m = (1.2 * bg + 5).astype(np.float32)
    m[:10, :10] = 0  # an object: the medians ignore it
    g, o = k.global_fit(m, bg, np.ones_like(bg, np.uint8), 1)
    assert g == pytest.approx(1.2, abs=0.01) and o == pytest.approx(5, abs=1.0)


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
def test_compare_and_learn_match_reference(rows: int, cols: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    g = _grid(rng, rows, cols)
    gain, off = float(rng.uniform(0.8, 1.2)), float(rng.uniform(-5, 5))
    a = {n: v.copy() for n, v in g.items()}
    b = {n: v.copy() for n, v in g.items()}
    outs = [
        (
            np.zeros((rows, cols), np.uint8),
            np.zeros((rows, cols), np.float32),
            np.zeros((rows, cols), np.float32),
        )
        for _ in range(2)
    ]
    n1 = k.compare_grid(
        a["m"], a["bg"], a["prev"], a["var"], a["weight"], gain, off, 4.0, 6.0, *outs[0]
    )
    n2 = k.compare_grid_reference(
        b["m"], b["bg"], b["prev"], b["var"], b["weight"], gain, off, 4.0, 6.0, *outs[1]
    )
    assert n1 == n2
    for x, y in zip(outs[0], outs[1], strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-3)
    for name in ("bg", "prev"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-3)
    active = (rng.random((rows, cols)) > 0.5).astype(np.uint8)
    k.learn_grid(a["m"], a["bg"], a["var"], outs[0][2], active, 0.1, 0.01, 0.3, 0.02, 6.0)
    k.learn_grid_reference(b["m"], b["bg"], b["var"], outs[1][2], active, 0.1, 0.01, 0.3, 0.02, 6.0)
    np.testing.assert_allclose(a["bg"], b["bg"], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(a["var"], b["var"], rtol=1e-4, atol=1e-3)


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
    excess = (rng.random((rows, cols)) * mask).astype(np.float32)
    labels, stats = k.label_cells(mask, excess)
    ref_labels, ref_stats = k.label_cells_reference(mask, excess)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(stats, ref_stats, rtol=1e-5, atol=1e-5)


def test_label_cells_counts_blobs_with_8_connectivity() -> None:
    mask = np.array([[1, 0, 0, 1], [0, 1, 0, 1], [0, 0, 0, 0], [1, 1, 0, 1]], np.uint8)
    _, stats = k.label_cells(mask, mask.astype(np.float32))
    assert sorted(stats[:, 0].tolist()) == [1, 2, 2, 2]
