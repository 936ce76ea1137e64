"""One continuous timeline per camera across reconnects.

Every connection's timestamps start wherever the camera's clock is; the ingest rebases them so
the camera's packets keep increasing across reconnects (with the outage's real gap), audio stays
in sync with video, packets without timestamps are interpolated and ``dts`` is strictly
increasing per stream, as muxers need.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av


class Timeline:
    """Rebases one connection's timestamps onto the camera's continuous timeline."""

    def __init__(self, start: float) -> None:
        self.start = start  # timeline seconds at this connection's first keyframe
        self.origin: dict[int, float] = {}  # stream index -> its first pts in seconds
        self.last: dict[int, tuple[int, int]] = {}  # stream index -> (pts, dts) ticks emitted
        self.step: dict[int, int] = {}  # typical tick step, to fill in a missing pts

    def place(
        self, packet: av.Packet[Any], index: int, tb: Fraction, video_origin: float
    ) -> float | None:
        """Rewrite ``packet``'s pts/dts onto the timeline; its time in seconds (None: drop)."""
        last = self.last.get(index)
        raw = packet.pts if packet.pts is not None else packet.dts
        if raw is None:
            if last is None:
                return None
            pts = dts = last[1] + self.step.get(index, 1)
        else:
            if index not in self.origin:
                # Audio starts relative to the video's origin so the two stay in sync.
                self.origin[index] = float(raw * tb) if not self.origin else video_origin
            base = self.start - self.origin[index]
            pts = round((base + float(raw * tb)) / tb)
            raw_dts = packet.dts if packet.dts is not None else raw
            dts = round((base + float(raw_dts * tb)) / tb)
        if last is not None:
            if raw is not None and dts > last[1]:
                self.step[index] = dts - last[1]
            if dts <= last[1]:  # muxers need strictly increasing dts
                dts = last[1] + 1
        pts = max(pts, dts)
        packet.pts, packet.dts = pts, dts
        self.last[index] = (pts, dts)
        return float(pts * tb)


__all__ = ["Timeline"]
