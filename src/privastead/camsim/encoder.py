"""Encode a generated scene once into H.264/H.265 access units, cached on disk.

Rendering a 4K scene and encoding it costs tens of seconds, so camsim does it once per set of
parameters and loops the encoded units forever. The encoder is configured like a camera: fixed
GOP, no B-frames, a capped bitrate, one encoder thread (pinned, so the bitstream does not depend
on the machine: x264's slice count follows its thread count) and parameter sets repeated before
every keyframe, so a client may start at any keyframe.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import typing
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import numpy as np
from av.video.codeccontext import VideoCodecContext

from privastead.camsim.rtp import Codec, join_annexb, nal_type, parameter_set_types, split_annexb
from privastead.errors import MediaError

log = logging.getLogger(__name__)

# Bits per pixel per frame of a camera-like stream: 4K30 -> ~17 Mbit/s, 1080p15 -> ~2 Mbit/s.
CAMERA_BPP = 0.07
_CACHE_MAGIC = b"PVCSIM1\n"


class FrameSource(Protocol):
    """What the encoder needs from a scene (see ``privastead.camsim.scene.Scene``)."""

    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def fps(self) -> float: ...
    @property
    def duration(self) -> float: ...
    def render(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class AccessUnit:
    """One encoded picture in Annex-B form. ``pts`` counts frame periods from the loop start."""

    data: bytes
    keyframe: bool
    pts: int


@dataclass(frozen=True)
class EncodedStream:
    """A loopable stream: starts with a keyframe, parameter sets before every keyframe."""

    codec: Codec
    width: int
    height: int
    fps: Fraction
    units: tuple[AccessUnit, ...]
    parameter_sets: tuple[bytes, ...]  # NAL units (no start code), in VPS/SPS/PPS order

    @property
    def frame_count(self) -> int:
        return len(self.units)

    @property
    def bitrate(self) -> float:
        """Average bits per second."""
        seconds = len(self.units) / float(self.fps)
        return sum(len(u.data) for u in self.units) * 8 / seconds if seconds else 0.0


def camera_bitrate(width: int, height: int, fps: float) -> int:
    return max(200_000, int(width * height * fps * CAMERA_BPP))


def encoder_options(codec: Codec, gop: int, bitrate: int) -> tuple[str, dict[str, str]]:
    kbps = bitrate // 1000
    if codec == "h264":
        params = (
            f"threads=1:keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:repeat-headers=1"
            f":vbv-maxrate={kbps}:vbv-bufsize={kbps}"
        )
        return "libx264", {"preset": "veryfast", "x264-params": params}
    params = (
        f"pools=none:frame-threads=1:keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0"
        f":repeat-headers=1:vbv-maxrate={kbps}:vbv-bufsize={kbps}:log-level=error"
    )
    return "libx265", {"preset": "ultrafast", "x265-params": params}


def encode(
    source: FrameSource,
    codec: Codec = "h264",
    *,
    gop_seconds: float = 1.0,
    bitrate: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EncodedStream:
    """Render and encode every frame of one loop of ``source``."""
    fps = Fraction(source.fps).limit_denominator(1001)
    frames = max(1, round(source.duration * float(fps)))
    gop = max(1, round(gop_seconds * float(fps)))
    rate = bitrate or camera_bitrate(source.width, source.height, float(fps))
    name, options = encoder_options(codec, gop, rate)
    ctx = typing.cast("VideoCodecContext", av.CodecContext.create(name, "w"))
    ctx.width, ctx.height = source.width, source.height
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = 1 / fps
    ctx.framerate = fps
    ctx.bit_rate = rate
    ctx.thread_count = 1
    ctx.options = options
    packets: list[tuple[bytes, bool, int]] = []
    for index in range(frames):
        y, u, v = source.render(index)
        stacked = np.concatenate((y.ravel(), u.ravel(), v.ravel()))
        frame = av.VideoFrame.from_ndarray(
            stacked.reshape(source.height * 3 // 2, source.width), format="yuv420p"
        )
        frame.pts = index
        packets.extend((bytes(p), p.is_keyframe, int(p.pts or 0)) for p in ctx.encode(frame))
        if progress:
            progress(index + 1, frames)
    packets.extend((bytes(p), p.is_keyframe, int(p.pts or 0)) for p in ctx.encode(None))
    return assemble(codec, source.width, source.height, fps, packets)


def assemble(
    codec: Codec, width: int, height: int, fps: Fraction, packets: list[tuple[bytes, bool, int]]
) -> EncodedStream:
    """Build an ``EncodedStream`` from Annex-B packets: starts at a keyframe, and every keyframe
    carries the parameter sets (some encoders and files put them in the first one only)."""
    first_key = next((i for i, p in enumerate(packets) if p[1]), None)
    if first_key is None:
        raise MediaError("no keyframe in the encoded stream")
    packets = packets[first_key:]
    kinds = parameter_set_types(codec)
    found: dict[int, bytes] = {}
    for data, key, _ in packets:
        if key:
            for nal in split_annexb(data):
                kind = nal_type(codec, nal)
                if kind in kinds:
                    found.setdefault(kind, nal)
            if len(found) == len(kinds):
                break
    if len(found) != len(kinds):
        raise MediaError(f"{codec} stream has no parameter sets before its keyframes")
    parameter_sets = tuple(found[k] for k in kinds)
    base = packets[0][2]
    units = []
    for data, key, pts in packets:
        lacks_sets = key and not any(nal_type(codec, n) in kinds for n in split_annexb(data))
        prefix = join_annexb(list(parameter_sets)) if lacks_sets else b""
        units.append(AccessUnit(prefix + data, key, pts - base))
    return EncodedStream(codec, width, height, fps, tuple(units), parameter_sets)


def encoder_build() -> str:
    """The PyAV build (its FFmpeg, libx264 and libx265) that encodes and decodes generated
    scenes. A scene's drawing is pinned (``privastead.camsim.scene.RENDER_DIGEST``); its
    encoding is not: another build gives other bytes, and a fresh install can change the
    result of a crossing near the detector's limits. Encoded files are cached per build, and
    figures name it."""
    codec = ".".join(str(part) for part in av.library_versions["libavcodec"])
    return f"PyAV {av.__version__} (libavcodec {codec})"


def cache_key(**params: object) -> str:
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def save(stream: EncodedStream, path: Path) -> None:
    """Write ``stream`` to ``path`` atomically (tmp + rename)."""
    header = {
        "codec": stream.codec,
        "width": stream.width,
        "height": stream.height,
        "fps": [stream.fps.numerator, stream.fps.denominator],
        "units": [[len(u.data), u.keyframe, u.pts] for u in stream.units],
        "parameter_sets": [p.hex() for p in stream.parameter_sets],
    }
    blob = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with tmp.open("wb") as f:
        f.write(_CACHE_MAGIC + struct.pack("!I", len(blob)) + blob)
        for unit in stream.units:
            f.write(unit.data)
    tmp.replace(path)


def load(path: Path) -> EncodedStream:
    data = path.read_bytes()
    if not data.startswith(_CACHE_MAGIC):
        raise MediaError(f"{path}: not a camsim cache file")
    offset = len(_CACHE_MAGIC)
    (size,) = struct.unpack_from("!I", data, offset)
    header = json.loads(data[offset + 4 : offset + 4 + size])
    offset += 4 + size
    units = []
    for length, key, pts in header["units"]:
        units.append(AccessUnit(data[offset : offset + length], bool(key), int(pts)))
        offset += length
    if offset != len(data):
        raise MediaError(f"{path}: truncated camsim cache file")
    return EncodedStream(
        header["codec"],
        int(header["width"]),
        int(header["height"]),
        Fraction(*header["fps"]),
        tuple(units),
        tuple(bytes.fromhex(p) for p in header["parameter_sets"]),
    )


def encode_cached(
    source: FrameSource,
    codec: Codec,
    cache_dir: Path | None,
    key_params: dict[str, object],
    *,
    gop_seconds: float = 1.0,
    bitrate: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EncodedStream:
    """``encode`` unless a cache file for ``key_params`` (the scene's parameters) exists."""
    if cache_dir is None:
        return encode(source, codec, gop_seconds=gop_seconds, bitrate=bitrate, progress=progress)
    key = cache_key(
        codec=codec, gop=gop_seconds, bitrate=bitrate, encoder=encoder_build(), **key_params
    )
    path = cache_dir / f"{key}.bin"
    if path.exists():
        try:
            return load(path)
        except (MediaError, ValueError, KeyError) as exc:
            log.warning("ignoring broken cache file %s: %s", path, exc)
    stream = encode(source, codec, gop_seconds=gop_seconds, bitrate=bitrate, progress=progress)
    save(stream, path)
    return stream


__all__ = [
    "AccessUnit",
    "EncodedStream",
    "FrameSource",
    "assemble",
    "camera_bitrate",
    "encode",
    "encode_cached",
    "encoder_build",
    "load",
    "save",
]
