"""A tiny stand-in frame source for tests: a bright box crossing a noisy background.

Tests of camsim, ingest and recording need video, not a realistic scene; this keeps them fast
and independent of the scene generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BoxSource:
    width: int = 320
    height: int = 240
    fps: float = 15.0
    duration: float = 2.0
    seed: int = 0
    motion: tuple[float, float] = (0.0, 0.0)  # seconds of each loop during which the box moves

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed * 100_003 + index)
        y = np.full((self.height, self.width), 90, np.uint8)
        y += rng.integers(0, 6, y.shape, dtype=np.uint8)
        t = index / self.fps
        start, end = self.motion
        if start <= t < end:
            frac = (t - start) / max(end - start, 1e-6)
            bw, bh = self.width // 8, self.height // 4
            x = int(frac * (self.width - bw))
            y0 = self.height // 3
            y[y0 : y0 + bh, x : x + bw] = 230
        u = np.full((self.height // 2, self.width // 2), 128, np.uint8)
        return y, u, u.copy()
