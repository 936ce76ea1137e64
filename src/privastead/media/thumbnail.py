"""Event thumbnails: a small JPEG of the frame that triggered the event.

The frame is decoded again from the ring's compressed packets (from the keyframe before the
trigger up to it) with a private decoder, so the detection path never keeps frames alive and
never converts to RGB: swscale shrinks the YUV planes straight to ``yuvj420p`` and PyAV's mjpeg
encoder writes the JPEG.
"""

from __future__ import annotations

import typing
from fractions import Fraction

import av
from av.video.codeccontext import VideoCodecContext

from privastead.errors import CorruptMediaError
from privastead.media.ingest import MediaPacket, StreamInfo

DEFAULT_WIDTH = 320


def encode_jpeg(frame: av.VideoFrame, width: int = DEFAULT_WIDTH, quality: int = 5) -> bytes:
    """``frame`` scaled to ``width`` (aspect kept, even height) as JPEG bytes.

    ``quality`` is the mjpeg quantiser scale: 2 (best) .. 31 (smallest).
    """
    width = min(width, frame.width) // 2 * 2
    height = max(2, round(frame.height * width / frame.width) // 2 * 2)
    small = frame.reformat(width=width, height=height, format="yuvj420p")
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuvj420p"
    ctx.time_base = Fraction(1, 1)
    ctx.qmin = ctx.qmax = quality
    small.pts = 0
    data = b"".join(bytes(p) for p in ctx.encode(small))
    data += b"".join(bytes(p) for p in ctx.encode(None))
    return data


def thumbnail_from_packets(
    info: StreamInfo, packets: list[MediaPacket], at: float, width: int = DEFAULT_WIDTH
) -> bytes:
    """JPEG of the first frame at or after timeline second ``at`` (or the last one decoded)."""
    decoder = typing.cast("VideoCodecContext", av.CodecContext.create(info.codec, "r"))
    if info.decoder.extradata:
        decoder.extradata = info.decoder.extradata
    chosen: av.VideoFrame | None = None
    started = False
    for media in packets:
        if media.kind != "video":
            continue
        started = started or media.keyframe
        if not started:
            continue
        src = media.packet
        packet = av.Packet(bytes(src))
        packet.pts, packet.dts, packet.time_base = src.pts, src.dts, src.time_base
        try:
            frames = decoder.decode(packet)
        except av.FFmpegError:
            continue  # a damaged packet: keep going, a later frame will do
        for frame in frames:
            chosen = frame
            if frame.time is not None and frame.time >= at - 1e-6:
                return encode_jpeg(frame, width)
    try:
        for frame in decoder.decode(None):
            chosen = frame
    except av.FFmpegError:
        pass
    if chosen is None:
        raise CorruptMediaError("no decodable frame for the thumbnail")
    return encode_jpeg(chosen, width)


__all__ = ["DEFAULT_WIDTH", "encode_jpeg", "thumbnail_from_packets"]
