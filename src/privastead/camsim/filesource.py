"""Load a video file (MP4, MKV, raw .h264/.h265) as a loopable stream of Annex-B access units.

No re-encoding: packets are converted from length-prefixed (MP4) to Annex-B with FFmpeg's
``*_mp4toannexb`` bitstream filter, which also puts the parameter sets in front of keyframes.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

from privastead.camsim.encoder import EncodedStream, assemble
from privastead.camsim.rtp import Codec
from privastead.errors import MediaError

_CODECS: dict[str, Codec] = {"h264": "h264", "hevc": "h265"}


def load_file(path: Path, fps: float | None = None) -> EncodedStream:
    """Every video packet of ``path`` from its first keyframe on. ``fps`` overrides the file's
    frame rate (raw Annex-B files often do not know theirs)."""
    try:
        container = av.open(str(path))
    except (OSError, av.FFmpegError) as exc:
        raise MediaError(f"{path}: cannot open video file: {exc}") from exc
    with container:
        if not container.streams.video:
            raise MediaError(f"{path}: no video stream")
        stream = container.streams.video[0]
        codec = _CODECS.get(stream.codec_context.name)
        if codec is None:
            raise MediaError(
                f"{path}: {stream.codec_context.name} video; camsim serves H.264/H.265"
            )
        rate = Fraction(fps).limit_denominator(1001) if fps else stream.guessed_rate
        rate = rate or stream.average_rate or Fraction(25)
        bsf_name = "h264_mp4toannexb" if codec == "h264" else "hevc_mp4toannexb"
        bsf = av.bitstream.BitStreamFilterContext(bsf_name, stream)
        raw: list[tuple[bytes, bool, int | None]] = []
        time_base = stream.time_base
        for packet in container.demux(stream):
            for out in bsf.filter(packet):
                raw.append((bytes(out), out.is_keyframe, out.pts))
        for out in bsf.filter(None):
            raw.append((bytes(out), out.is_keyframe, out.pts))
    packets: list[tuple[bytes, bool, int]] = []
    for index, (data, key, pts) in enumerate(raw):
        # Raw Annex-B has no timestamps: decode order is display order then.
        timed = pts is not None and time_base is not None
        frame = round(float(pts * time_base * rate)) if timed else index  # type: ignore[operator]
        packets.append((data, key, frame))
    if not packets:
        raise MediaError(f"{path}: no video packets")
    width = stream.codec_context.width
    height = stream.codec_context.height
    return assemble(codec, width, height, Fraction(rate), packets)


__all__ = ["load_file"]
