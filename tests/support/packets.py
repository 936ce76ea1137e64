"""Camera-like packets without a camera: encode a frame source with PyAV into an in-memory
MP4 and demux it into ``MediaPacket``s plus a ``StreamInfo``, as the ingest would hand them on.
"""

from __future__ import annotations

import io
import itertools
import time
from fractions import Fraction
from typing import Any

import av
import numpy as np

from privastead.camsim.encoder import FrameSource, camera_bitrate, encoder_options
from privastead.media.ingest import MediaPacket, StreamInfo, _snapshot


def encode_mp4(source: FrameSource, codec: str = "h264", gop: int = 15, frames: int = 0) -> bytes:
    """An MP4 (moov at the end) of ``frames`` frames of ``source``, encoded like a camera."""
    fps = Fraction(source.fps).limit_denominator(1001)
    count = frames or round(source.duration * float(fps))
    name, options = encoder_options(codec, gop, camera_bitrate(source.width, source.height, 15))
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream: Any = out.add_stream(name, rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = source.width, source.height, "yuv420p"
        stream.thread_count = 1
        for index in range(count):
            y, u, v = source.render(index)
            planes = np.concatenate((y.ravel(), u.ravel(), v.ravel()))
            frame = av.VideoFrame.from_ndarray(
                planes.reshape(source.height * 3 // 2, source.width), format="yuv420p"
            )
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


def demux(data: bytes, epoch: int = 1) -> tuple[StreamInfo, list[MediaPacket]]:
    """StreamInfo and packets (video and audio) of an MP4, on a timeline starting at 0."""
    container = av.open(io.BytesIO(data))
    video = container.streams.video[0]
    audio = container.streams.audio[0] if container.streams.audio else None
    info = StreamInfo(
        epoch,
        _snapshot(video),
        _snapshot(audio) if audio is not None else None,
        video.codec_context,
        video.codec_context.name,
        video.codec_context.width,
        video.codec_context.height,
        video.time_base or Fraction(1, 90_000),
    )
    packets = []
    streams = [video] if audio is None else [video, audio]
    for packet in container.demux(streams):
        if packet.size == 0 or packet.pts is None or packet.time_base is None:
            continue
        kind = "video" if packet.stream.index == video.index else "audio"
        packets.append(
            MediaPacket(
                packet,
                kind,
                float(packet.pts * packet.time_base),
                packet.is_keyframe,
                packet.size,
                epoch,
                time.time(),
            )
        )
    return info, packets


def looped(
    info: StreamInfo, packets: list[MediaPacket], seconds: float, wall: float = 1.7e9
) -> list[MediaPacket]:
    """``packets`` repeated for ``seconds`` of stream on one rising timeline, each arriving at
    ``wall`` + its time: a long camera stream from a short clip."""
    span = max(p.pts for p in packets if p.kind == "video")
    step = min(b.pts - a.pts for a, b in itertools.pairwise(packets) if b.pts > a.pts)
    period = span + step
    out: list[MediaPacket] = []
    loop = 0
    while True:
        for p in packets:
            at = p.pts + loop * period
            if at >= seconds - 1e-6:
                return out
            src = p.packet
            tb = src.time_base
            shift = round(loop * period / tb)
            copy = av.Packet(bytes(src))
            copy.pts, copy.dts, copy.time_base = src.pts + shift, src.dts + shift, tb
            copy.duration = src.duration
            out.append(MediaPacket(copy, p.kind, at, p.keyframe, p.size, info.epoch, wall + at))
        loop += 1
