"""Decoding to luma: PyAV frames in, zero-copy Y-plane views out, full rate or keyframes only.

Motion detection needs brightness only, so the decoder hands out the Y plane as a numpy view
of the decoder's own buffer (no copy, no RGB, and never ``to_ndarray('gray')``, which is the
slowest option and range-expanded; media-measurements.md §3).

Two modes:

``full``       every frame, decoded with ``thread_type="AUTO"`` (frame threads: ~1.5x on 2
               cores for single-slice camera streams; PyAV's default SLICE gives nothing).
``keyframes``  idle mode: only keyframes are decoded, on a separate single-threaded context
               with ``skip_frame="NONKEY"`` (frame threading only adds latency there).
               Non-key packets are not even handed to FFmpeg, so idle costs about one
               keyframe decode per GOP.

Switching keyframes -> full by setting ``mode`` waits for the next keyframe; ``replay`` makes
it take effect at once: the caller hands back the packets since an earlier keyframe (it keeps
them: ``media.analysis`` holds the previous and the current GOP) and they are decoded again in
a fresh full-rate context, so the detector catches up on the frames it skipped. Switching
full -> keyframes drains the frame-threaded context so no stale frame appears later.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import av
import numpy as np
import numpy.typing as npt

from privastead.errors import CorruptMediaError
from privastead.media.codec_threads import open_in_background

log = logging.getLogger(__name__)

DecodeMode = Literal["full", "keyframes"]


@dataclass(frozen=True)
class LumaFrame:
    """One decoded frame's luma."""

    y: npt.NDArray[np.uint8]  # (H, W) zero-copy view of the Y plane (honours line_size)
    pts: float  # seconds (stream time base), strictly increasing per decoder
    keyframe: bool


def luma_view(frame: av.VideoFrame) -> npt.NDArray[np.uint8]:
    """The Y plane of ``frame`` as a (H, W) uint8 view of its buffer (no copy)."""
    plane = frame.planes[0]
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
    view: npt.NDArray[np.uint8] = rows[:, : plane.width]
    return view


class LumaDecoder:
    """Decode packets of one video stream into ``LumaFrame`` objects."""

    def __init__(self, stream: Any, mode: DecodeMode = "full") -> None:
        template = getattr(stream, "codec_context", stream)
        self._codec_name: str = template.codec.name
        self._extradata: bytes | None = template.extradata
        base = getattr(stream, "time_base", None) or template.time_base
        self._time_base: Fraction | None = Fraction(base) if base is not None else None
        rate = getattr(stream, "average_rate", None) or getattr(template, "framerate", None)
        self._frame_step = 1.0 / float(rate) if rate else 1.0 / 30.0
        self.mode: DecodeMode = mode
        self._active: DecodeMode | None = None
        self._ctx: Any = None
        self._last_pts = -float("inf")
        self._replaying = False
        self.frames_decoded = 0
        self.packets_seen = 0

    # -- contexts -------------------------------------------------------------------------------
    def _open(self, mode: DecodeMode) -> Any:
        ctx = av.CodecContext.create(self._codec_name, "r")
        if self._extradata:
            ctx.extradata = self._extradata
        if mode == "full":
            ctx.thread_type = "AUTO"
        else:
            ctx.thread_type = "SLICE"
            ctx.skip_frame = "NONKEY"
        open_in_background(ctx)  # FFmpeg's worker threads yield the cores to the event loop
        return ctx

    def _drain(self) -> list[LumaFrame]:
        """Flush the current context (returns its delayed frames) and drop it."""
        if self._ctx is None:
            return []
        frames = self._run(None)
        self._ctx = None
        self._active = None
        return frames

    def _run(self, packet: Any) -> list[LumaFrame]:
        try:
            decoded = self._ctx.decode(packet)
        except av.error.InvalidDataError as exc:
            # One corrupt packet must not stop the camera: log, drop, continue.
            log.warning("dropping undecodable packet: %s", exc)
            return []
        except av.error.FFmpegError as exc:
            raise CorruptMediaError(f"decoder failed: {exc}") from exc
        out = []
        for frame in decoded:
            luma = self._luma(frame)
            if luma is not None:
                out.append(luma)
        return out

    def _luma(self, frame: av.VideoFrame) -> LumaFrame | None:
        pts: float | None = None
        if frame.pts is not None and self._time_base is not None:
            pts = float(frame.pts * self._time_base)
        elif frame.time is not None:
            pts = float(frame.time)
        if self._replaying and pts is not None and pts <= self._last_pts:
            return None  # catch-up replay: this frame was already delivered
        if pts is None or pts <= self._last_pts:
            # Missing or repeated timestamps (raw Annex-B, first RTSP frame): one frame on.
            pts = self._last_pts + self._frame_step if self._last_pts > -float("inf") else 0.0
        self._last_pts = pts
        self.frames_decoded += 1
        return LumaFrame(y=luma_view(frame), pts=pts, keyframe=bool(frame.key_frame))

    # -- public -----------------------------------------------------------------------------------
    def decode(self, packet: Any) -> list[LumaFrame]:
        """Frames that ``packet`` completes (none, one, or the delayed frames of a drain)."""
        if packet.size == 0:
            return []
        self.packets_seen += 1
        frames: list[LumaFrame] = []
        if self.mode == "keyframes":
            if self._active == "full":
                frames += self._drain()
            if not packet.is_keyframe:
                return frames
            if self._active is None:
                self._ctx = self._open("keyframes")
                self._active = "keyframes"
            return frames + self._run(packet)
        # full rate
        if self._active != "full":
            frames += self._drain()
            if not packet.is_keyframe:
                return frames  # no reference frame: wait for a keyframe (or ``replay``)
            self._ctx = self._open("full")
            self._active = "full"
        return frames + self._run(packet)

    def replay(self, packets: list[Any], after: float) -> Iterator[LumaFrame]:
        """Switch to full rate at once: decode ``packets`` (starting with a keyframe) again in
        a fresh full-rate context and yield the frames later than ``after`` seconds.

        Frames are handed out again even if they were delivered before (the caller rewound
        its analysis to ``after``); from then on the decoder runs at full rate. Frames come
        one at a time, each to be analysed before the next is decoded: a list of them would
        pin every decoded picture of two GOPs at once (at 4K30 with a 2 s GOP, 120 frames
        of 12 MB). Consume the iterator before feeding the decoder again.
        """
        if not packets or not packets[0].is_keyframe:
            raise ValueError("a replay starts with a keyframe")
        self._drain()
        self.mode = "full"
        self._ctx = self._open("full")
        self._active = "full"
        self._last_pts = after
        return self._replay(packets)

    def _replay(self, packets: list[Any]) -> Iterator[LumaFrame]:
        self._replaying = True
        try:
            for packet in packets:
                if packet.size:
                    yield from self._run(packet)
        finally:
            self._replaying = False

    def flush(self) -> list[LumaFrame]:
        """At end of stream: the frames still inside the decoder."""
        return self._drain()


__all__ = ["DecodeMode", "LumaDecoder", "LumaFrame", "luma_view"]
