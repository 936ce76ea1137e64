"""Rasterise zone and mask polygons (normalised coordinates) onto the analysis grid."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from privastead.media.settings import Polygon


def inside(
    polygon: Polygon, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    """Even-odd rule: which points ``(x, y)`` lie inside ``polygon`` (vectorised)."""
    result = np.zeros(x.shape, bool)
    count = len(polygon)
    for i in range(count):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % count]
        if y1 == y2:
            continue
        crosses = (y1 > y) != (y2 > y)
        at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        result ^= crosses & (x < at)
    return result


def cell_weights(  # noqa: PLR0917
    rows: int,
    cols: int,
    cell_w: float,
    cell_h: float,
    zones: tuple[Polygon, ...],
    masks: tuple[Polygon, ...],
) -> npt.NDArray[np.uint8]:
    """1 for cells whose centre is in a zone (or anywhere without zones) and in no mask.

    ``cell_w`` and ``cell_h`` are one cell's size as a fraction of the frame.
    """
    cy, cx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    x = (cx + 0.5) * cell_w
    y = (cy + 0.5) * cell_h
    keep = np.ones((rows, cols), bool)
    if zones:
        keep = np.zeros((rows, cols), bool)
        for zone in zones:
            keep |= inside(zone, x, y)
    for mask in masks:
        keep &= ~inside(mask, x, y)
    return np.ascontiguousarray(keep.astype(np.uint8))


__all__ = ["cell_weights", "inside"]
