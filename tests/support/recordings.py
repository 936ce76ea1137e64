"""Continuous recording without a running camera: frames that show their own number, encoded
like a camera's and written with the hub's ``SegmentWriter``, so a playback test can tell
which moment of the recording each decoded picture is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from privastead.media.segment_index import Segment, SegmentIndex
from privastead.media.segments import SegmentSettings, SegmentWriter
from support.luma import luma
from support.packets import demux, encode_mp4, looped

LEVELS = 20  # distinct brightness steps per band (well apart after lossy coding)


@dataclass(frozen=True)
class NumberedSource:
    """Frame ``i`` shows ``i`` in base ``LEVELS`` as the brightness of three vertical bands."""

    width: int = 160
    height: int = 96
    fps: float = 10.0
    duration: float = 60.0

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y = np.empty((self.height, self.width), np.uint8)
        band = self.width // 3
        for b in range(3):
            digit = (index // LEVELS**b) % LEVELS
            y[:, b * band : (b + 1) * band] = 20 + digit * 10
        y[:, 3 * band :] = 128
        u = np.full((self.height // 2, self.width // 2), 128, np.uint8)
        return y, u, u.copy()


def frame_number(frame: av.VideoFrame, width: int = 160) -> int:
    """The number a ``NumberedSource`` frame shows."""
    y = luma(frame)
    band = width // 3
    number = 0
    for b in range(3):
        mean = float(y[8:-8, b * band + 8 : (b + 1) * band - 8].mean())
        number += round((mean - 20) / 10) * LEVELS**b
    return number


def record(
    root: Path,
    camera: str,
    wall: float,
    seconds: float,
    *,
    fps: float = 10.0,
    gop: int = 10,
    segment_seconds: float = 10.0,
    size: tuple[int, int] = (160, 96),
) -> list[Segment]:
    """``seconds`` of numbered frames recorded from wall-clock ``wall`` on into ``root``
    (segment files and ``root/index.sqlite``), as the hub's continuous recording does."""
    source = NumberedSource(size[0], size[1], fps=fps, duration=seconds)
    info, packets = demux(encode_mp4(source, gop=gop))
    index = SegmentIndex(root / "index.sqlite")
    try:
        writer = SegmentWriter(root, camera, index, SegmentSettings(seconds=segment_seconds))
        writer.start(info)
        done = [s for s in (writer.write(p) for p in looped(info, packets, seconds, wall)) if s]
        last = writer.close()
    finally:
        index.close()
    return done + ([last] if last else [])


__all__ = ["NumberedSource", "frame_number", "record"]
