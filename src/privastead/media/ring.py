"""The pre-roll: a ring of compressed packets, whole GOPs, bounded by time and bytes.

A clip must start on a keyframe at or before ``trigger - pre_roll``, so the ring keeps whole
groups of pictures (a video keyframe and everything after it, audio included) and drops the
oldest group only when the next one still covers the pre-roll. It therefore holds between
``keep_seconds`` and ``keep_seconds`` + one GOP, and never more than ``max_bytes`` (at the cost
of a shorter pre-roll, if a camera's bitrate or GOP is absurd). Packets stay compressed: 7 s of
a 4K camera at 16 Mbit/s is 14 MB.
"""

from __future__ import annotations

from collections import deque

from privastead.media.ingest import MediaPacket


class PacketRing:
    def __init__(self, keep_seconds: float = 5.0, max_bytes: int = 64 * 1024 * 1024) -> None:
        if keep_seconds < 0 or max_bytes <= 0:
            raise ValueError("keep_seconds must be >= 0 and max_bytes > 0")
        self.keep_seconds = keep_seconds
        self.max_bytes = max_bytes
        self._gops: deque[list[MediaPacket]] = deque()
        self._bytes = 0
        self._epoch: int | None = None

    def push(self, packet: MediaPacket) -> None:
        if packet.epoch != self._epoch:
            # A new connection: its codec parameters may differ, old packets cannot be muxed
            # with the new ones into one clip.
            self.clear()
            self._epoch = packet.epoch
        if packet.kind == "video" and packet.keyframe:
            self._gops.append([])
        if not self._gops:
            return  # nothing before the first keyframe is usable
        self._gops[-1].append(packet)
        self._bytes += packet.size
        self._trim(packet.pts)

    def _trim(self, newest: float) -> None:
        while len(self._gops) >= 2 and self._gops[1][0].pts <= newest - self.keep_seconds:
            self._drop_oldest()
        while len(self._gops) >= 2 and self._bytes > self.max_bytes:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        gop = self._gops.popleft()
        self._bytes -= sum(p.size for p in gop)

    def since(self, at: float) -> list[MediaPacket]:
        """Packets from the last keyframe at or before ``at`` (else the oldest one) onwards."""
        start = 0
        for i, gop in enumerate(self._gops):
            if gop[0].pts <= at:
                start = i
        return [p for gop in list(self._gops)[start:] for p in gop]

    def clear(self) -> None:
        self._gops.clear()
        self._bytes = 0

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def span(self) -> float:
        """Seconds from the oldest keyframe to the newest packet (0 when empty)."""
        if not self._gops:
            return 0.0
        return self._gops[-1][-1].pts - self._gops[0][0].pts

    @property
    def oldest(self) -> float | None:
        return self._gops[0][0].pts if self._gops else None

    def __len__(self) -> int:
        return sum(len(g) for g in self._gops)


__all__ = ["PacketRing"]
