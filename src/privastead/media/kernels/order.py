"""Order statistics (the k-th smallest, the median) for the kernels that take medians every
analysed frame.

The light fits (``grid.global_fit``, ``rows.row_gains``) take half a dozen medians of a few
thousand values a frame (and three per grid row under a mains light). A quickselect's
comparisons depend on the data, so on a frame it has not seen most of them are mispredicted
branches: about 35 us for the k-th of 3,200 values on this machine's cores, against 4 us
for the same call repeated on the same values, which is what a micro-benchmark measures.
Here the values are first counted into ``BINS`` equal bins between their least and greatest
(an index computed, not a branch taken), the bin that holds the k-th is kept and binned again
while it is large, and only the few values left are quickselected: about 6 us on fresh data.

The result is exact, the same value NumPy's partition and median give: the bin index is a
monotone function of the value (a subtraction and a multiplication by a positive number,
each rounded monotonically), so every value in an earlier bin is at most every value in a
later one, and the k-th smallest is the (k - below)-th of its bin. ``median`` is the middle
value, or the mean ``(a + b) / 2`` of the two middle ones, as NumPy's and Numba's are.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

#: Bins per pass, and the count at or under which the values left are quickselected (fewer
#: than that and a pass over 256 bins costs more than the mispredicted branches it saves).
BINS, SMALL = 256, 48


@numba.njit("float64(float64[::1], int64, int64, int64)", nogil=True, cache=True)
def _quickselect(a, lo, hi, k):  # type: ignore[no-untyped-def]
    """The k-th smallest of ``a[lo:hi + 1]``, left at ``a[k]`` with nothing larger before it
    and nothing smaller after it within ``lo..hi`` (Hoare's partition, median-of-3 pivot)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        x, y, z = a[lo], a[mid], a[hi]
        pivot = max(min(x, y), min(max(x, y), z))
        i, j = lo, hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        # Now a[lo..j] <= pivot <= a[i..hi], and whatever lies between equals the pivot.
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return a[k]
    return a[k]


@numba.njit("int64(float64, float64, float64)", nogil=True, cache=True, inline="always")
def _bin(v, lo, scale):  # type: ignore[no-untyped-def]
    """The bin of ``v``: monotone in ``v``, within ``0..BINS - 1``."""
    return min(int((v - lo) * scale), BINS - 1)


@numba.njit(
    "UniTuple(float64, 2)(float64[::1], int64, int64, float64, float64)",
    nogil=True,
    cache=True,
)
def _across(src, m, b, lo, scale):  # type: ignore[no-untyped-def]
    """The greatest value of bin ``b`` and the least of the bins after it."""
    first = -np.inf
    second = np.inf
    for i in range(m):
        j = _bin(src[i], lo, scale)
        if j == b:
            first = max(first, src[i])
        elif j > b:
            second = min(second, src[i])
    return first, second


@numba.njit("UniTuple(float64, 2)(float64[::1], int64, int64)", nogil=True, cache=True)
def _pair_by_quickselect(work, m, k):  # type: ignore[no-untyped-def]
    first = _quickselect(work, 0, m - 1, k)
    second = first
    if k + 1 < m:
        second = work[k + 1]
        for i in range(k + 2, m):  # all of work[k + 1:] are at least the k-th: the least
            second = min(second, work[i])
    return first, second


@numba.njit(
    "UniTuple(float64, 2)(float64[::1], int64, int64, float64[::1])", nogil=True, cache=True
)
def select_pair(a, n, k, work):  # type: ignore[no-untyped-def]
    """The k-th and (k + 1)-th smallest of ``a[:n]`` (``0 <= k < n``; the second is the
    first when ``k + 1 == n``). ``a`` is only read, unless it is ``work`` (at least ``n``
    long), which is scratch."""
    counts = np.empty(BINS, np.int64)
    src = a
    m = n
    while True:
        lo = src[:m].min()
        hi = src[:m].max()
        if lo == hi:
            return lo, lo
        if m <= SMALL:
            break
        scale = (BINS - 1) / (hi - lo)
        counts[:] = 0
        for i in range(m):
            counts[_bin(src[i], lo, scale)] += 1
        b = 0
        below = 0
        while below + counts[b] <= k:
            below += counts[b]
            b += 1
        if k + 1 < m and below + counts[b] == k + 1:
            # The k-th is the greatest of bin b, the next the least of the bins after it.
            return _across(src, m, b, lo, scale)
        kept = 0
        for i in range(m):  # in place when src is work: the write index never passes the read
            if _bin(src[i], lo, scale) == b:
                work[kept] = src[i]
                kept += 1
        src = work
        m = kept
        k -= below
    work[:m] = src[:m]
    return _pair_by_quickselect(work, m, k)


@numba.njit("float64(float64[::1], int64, float64[::1])", nogil=True, cache=True)
def median(a, n, work):  # type: ignore[no-untyped-def]
    """The median of ``a[:n]`` (``n >= 1``); ``work`` as for ``select_pair``."""
    half = n >> 1
    if n & 1:
        first, _ = select_pair(a, n, half, work)
        return first
    below, above = select_pair(a, n, half - 1, work)
    return (below + above) / 2


def select_pair_reference(a: F64, n: int, k: int) -> tuple[float, float]:
    """NumPy reference for ``select_pair``."""
    s = np.sort(a[:n])
    return float(s[k]), float(s[min(k + 1, n - 1)])


def median_reference(a: F64, n: int) -> float:
    """NumPy reference for ``median``."""
    return float(np.median(a[:n]))


__all__ = ["median", "median_reference", "select_pair", "select_pair_reference"]
