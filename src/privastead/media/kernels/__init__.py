"""Numba frame kernels, each with a NumPy reference implementation that tests compare against.

Kernels are serial (``parallel=False``): on a 2-core hub, OpenMP workers spinning next to
FFmpeg's decoder threads cost more than they save (media-measurements.md §4). They release the
GIL (``nogil=True``), are compiled eagerly for the exact layouts we pass (so a non-contiguous
Y view never triggers a second compilation), and cache their machine code on disk
(``NUMBA_CACHE_DIR``). Every variant is its own Python function: Numba keys its cache on the
function, and two dispatchers built from one function would share (and clobber) an entry.
"""

from privastead.media.kernels.blocks import block_means, block_means_reference
from privastead.media.kernels.clipping import clipped_cells, clipped_cells_reference
from privastead.media.kernels.grid import (
    compare_grid,
    compare_grid_reference,
    global_fit,
    global_fit_reference,
    learn_grid,
    learn_grid_reference,
    light_cells,
    light_cells_reference,
)
from privastead.media.kernels.labels import label_cells, label_cells_reference
from privastead.media.kernels.order import median, median_reference
from privastead.media.kernels.rows import row_gains, row_gains_reference

__all__ = [
    "block_means",
    "block_means_reference",
    "clipped_cells",
    "clipped_cells_reference",
    "compare_grid",
    "compare_grid_reference",
    "global_fit",
    "global_fit_reference",
    "label_cells",
    "label_cells_reference",
    "learn_grid",
    "learn_grid_reference",
    "light_cells",
    "light_cells_reference",
    "median",
    "median_reference",
    "row_gains",
    "row_gains_reference",
]
