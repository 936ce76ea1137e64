"""Compare decoded pictures with what camsim drew: 8x8 block means of the luma plane.

Block means average the sensor noise away (the encoder does too), so the right frame matches
within a level or two while a neighbouring frame of a moving person differs by tens of levels.
"""

from __future__ import annotations

import av
import numpy as np


def luma(frame: av.VideoFrame) -> np.ndarray:
    plane = frame.planes[0]
    view = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return view[:, : plane.width].astype(np.float64)


def block_error(a: np.ndarray, b: np.ndarray, block: int = 8) -> float:
    """Largest difference between the 8x8 block means of two luma planes."""
    h, w = (a.shape[0] // block) * block, (a.shape[1] // block) * block

    def means(y: np.ndarray) -> np.ndarray:
        return y[:h, :w].reshape(h // block, block, w // block, block).mean(axis=(1, 3))

    return float(np.abs(means(a.astype(np.float64)) - means(b.astype(np.float64))).max())
