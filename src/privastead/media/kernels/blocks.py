"""Block means of a luma plane: the one pass over full-resolution pixels.

The frame is cut into ``b x b`` blocks and each block's mean brightness becomes one cell of
the analysis grid (4K with b=18 -> 213x120 cells). This is the only kernel that touches every
pixel, so it is written to run at memory speed: each image row is added into a row of uint16
column accumulators (a contiguous, vectorisable loop), and the accumulators are folded into
cells once per ``b`` rows.

The plane arrives as a zero-copy view of the decoder's buffer, whose rows are usually padded
(``line_size > width``), i.e. a non-contiguous 2-D array. Numba's layout-A arrays would hide
the unit inner stride from LLVM and block vectorisation, so the wrapper instead passes a 1-D
contiguous view spanning exactly the first to the last visible pixel, plus the row stride.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

#: Largest block side: uint16 column sums (255 * 256 < 65536) and exact float32 cell sums
#: (255 * 256 * 256 < 2**24).
MAX_BLOCK = 256


@numba.njit(
    "void(uint8[::1], int64, int64, float32[:, ::1])",
    nogil=True,
    cache=True,
    fastmath=True,
    boundscheck=False,
)
def _block_means_kernel(flat, stride, block, out):  # type: ignore[no-untyped-def]
    rows, cols = out.shape
    width = cols * block
    acc = np.empty(width, np.uint16)
    cell = np.empty(cols, np.float32)
    inv = np.float32(1.0 / (block * block))
    for r in range(rows):
        acc[:] = 0
        base = r * block * stride
        for i in range(block):
            start = base + i * stride
            # A slice, not flat[start + j]: LLVM can then prove the index non-negative,
            # drop Numba's wraparound check and vectorise the loop.
            row = flat[start : start + width]
            for j in range(width):
                acc[j] += row[j]
        # Fold columns into cells one block offset at a time: each pass is a vectorisable
        # loop over cells (a per-cell loop of `block` adds would not vectorise and costs as
        # much as the whole pass over the pixels).
        cell[:] = 0
        for k in range(block):
            column = acc[k:width:block]
            for c in range(cols):
                cell[c] += np.float32(column[c])
        for c in range(cols):
            out[r, c] = cell[c] * inv


def grid_shape(height: int, width: int, block: int) -> tuple[int, int]:
    """Cells of the analysis grid (edge pixels that do not fill a block are ignored)."""
    return height // block, width // block


def block_means(y: U8, block: int, out: F32 | None = None) -> F32:
    """Mean of each ``block x block`` tile of ``y`` (uint8, any row stride) as float32 cells."""
    if y.ndim != 2 or y.dtype != np.uint8:
        raise ValueError("block_means needs a 2-D uint8 plane")
    if not 1 <= block <= MAX_BLOCK:
        raise ValueError(f"block must be 1..{MAX_BLOCK}")
    height, width = y.shape
    shape = grid_shape(height, width, block)
    if out is None:
        out = np.empty(shape, np.float32)
    elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 array of shape {shape}")
    if shape[0] == 0 or shape[1] == 0:
        return out
    flat, stride = flat_plane(y)
    _block_means_kernel(flat, stride, block, out)
    return out


def flat_plane(y: U8) -> tuple[U8, int]:
    """``y`` as a 1-D contiguous view from its first to its last visible pixel, and its row
    stride: what the kernels take instead of a padded 2-D view (see the module doc)."""
    height, width = y.shape
    if y.strides[1] != 1 or y.strides[0] < width:
        y = np.ascontiguousarray(y)
    stride = int(y.strides[0])
    # 1-D view from y[0, 0] to y[-1, -1]: stays inside the buffer even for the last row.
    span = (height - 1) * stride + width
    flat: U8 = np.lib.stride_tricks.as_strided(y, shape=(span,), strides=(1,))
    return flat, stride


def block_means_reference(y: U8, block: int) -> F32:
    """NumPy reference for ``block_means``."""
    rows, cols = grid_shape(y.shape[0], y.shape[1], block)
    tiles = y[: rows * block, : cols * block].astype(np.float64)
    means = tiles.reshape(rows, block, cols, block).mean(axis=(1, 3))
    result: F32 = means.astype(np.float32)
    return result


__all__ = ["MAX_BLOCK", "block_means", "block_means_reference", "flat_plane", "grid_shape"]
