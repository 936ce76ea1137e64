"""Helpers for tests that talk RTSP: an in-process camsim server and a PyAV reader."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from privastead.camsim.encoder import EncodedStream, encode
from support.frames import BoxSource

READ_OPTIONS = {
    "rtsp_transport": "tcp",
    "timeout": "3000000",
    "analyzeduration": "0",
    "probesize": "32",
}

_CACHE: dict[tuple[Any, ...], EncodedStream] = {}


def box_stream(codec: str = "h264", **kwargs: Any) -> EncodedStream:
    """An encoded BoxSource, memoised per test session (encoding is the slow part)."""
    key = (codec, tuple(sorted(kwargs.items())))
    if key not in _CACHE:
        _CACHE[key] = encode(BoxSource(**kwargs), codec)  # type: ignore[arg-type]
    return _CACHE[key]


@dataclass
class ReadResult:
    codec: str
    width: int
    height: int
    frames: int = 0
    keyframe_first: bool = False
    pts: list[int | None] = field(default_factory=list)
    seconds: float = 0.0


def read_frames(url: str, count: int) -> ReadResult:
    """Decode ``count`` frames from ``url`` over RTSP/TCP (blocking; run it in a thread)."""
    start = time.monotonic()
    with av.open(url, options=READ_OPTIONS, timeout=(5.0, 3.0)) as container:
        stream = container.streams.video[0]
        result = ReadResult(
            stream.codec_context.name, stream.codec_context.width, stream.codec_context.height
        )
        for packet in container.demux(stream):
            if packet.size and not result.pts:
                result.keyframe_first = packet.is_keyframe
            for frame in packet.decode():
                result.frames += 1
                result.pts.append(frame.pts)
            if result.frames >= count:
                break
    result.seconds = time.monotonic() - start
    return result


def write_mp4(stream: EncodedStream, path: Path) -> None:
    """Mux an encoded stream into an MP4 file (a clip for camsim's --file)."""
    from fractions import Fraction

    with av.open(str(path), "w", format="mp4") as out:
        ost = out.add_mux_stream(
            "h264" if stream.codec == "h264" else "hevc", width=stream.width, height=stream.height
        )
        ost.time_base = Fraction(1, 90000)
        step = round(90000 / float(stream.fps))
        for unit in stream.units:
            packet = av.Packet(unit.data)
            packet.pts = packet.dts = unit.pts * step
            packet.duration = step
            packet.time_base = Fraction(1, 90000)
            packet.is_keyframe = unit.keyframe
            packet.stream = ost
            out.mux(packet)
