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


def capture(
    stream: EncodedStream,
    seconds: float,
    *,
    settings: Any = None,
    **server_options: Any,
) -> tuple[Any, list[Any]]:
    """Serve ``stream`` from an in-process camsim (its own loop, in a thread) and read
    ``seconds`` of it with the hub's ``Ingest``: ``(StreamInfo, MediaPackets)`` of the first
    connection. ``server_options`` go to ``RtspServer`` (``audio=``, ``auth=``...)."""
    import asyncio
    import threading

    from privastead.camsim.server import RtspServer
    from privastead.media.ingest import Ingest, IngestEvent, MediaPacket, StreamInfo

    def read(url: str) -> tuple[StreamInfo, list[MediaPacket]]:
        events: list[IngestEvent] = []
        ingest = Ingest(url, events.append, settings)
        ingest.start()
        deadline = time.monotonic() + 20 + seconds
        while time.monotonic() < deadline:
            packets = [e for e in events if isinstance(e, MediaPacket) and e.kind == "video"]
            if packets and packets[-1].pts - packets[0].pts >= seconds:
                break
            time.sleep(0.05)
        ingest.stop()
        info = next(e for e in events if isinstance(e, StreamInfo))
        return info, [e for e in events if isinstance(e, MediaPacket) and e.epoch == info.epoch]

    result: dict[str, tuple[StreamInfo, list[MediaPacket]]] = {}

    async def serve() -> None:
        server = RtspServer({"/main": stream}, port=0, **server_options)
        await server.start()
        try:
            result["v"] = await asyncio.to_thread(read, server.urls()[0])
        finally:
            await server.close()

    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    thread.join()
    return result["v"]
