"""Make a large camera-like H.264 file from a small one, for benchmarks that need 4K cameras.

Rendering a camsim scene at 4K takes longer than a benchmark can wait on a shared 2-core
machine; scaling an already encoded scene up and encoding it once (x264 ``ultrafast``, a
camera-like bitrate and a 1 s GOP) gives a file ``privastead-camsim --file`` loops without
re-encoding. The picture is the small scene's, so detection sees the same motion; packet
sizes and rates are those of a 4K camera at the chosen bitrate.

``IN`` is a video file or a camsim cache file (``.cache/camsim/*.bin``, what a benchmark run
rendered and encoded before).

    python bench/upscale.py IN.mp4 OUT.mp4 [--size 3840x2160] [--fps 30] [--bitrate 16000000]
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av

from privastead.camsim.encoder import load


def _frames(src: Path) -> Iterator[av.VideoFrame]:
    """Decoded frames of a video file, or of a camsim cache file (``.bin``: access units)."""
    if src.suffix == ".bin":
        stream = load(src)
        decoder = av.CodecContext.create({"h264": "h264", "h265": "hevc"}[stream.codec], "r")
        for unit in stream.units:
            yield from decoder.decode(av.Packet(unit.data))  # type: ignore[misc]
        yield from decoder.decode(None)  # type: ignore[misc]
        return
    with av.open(str(src)) as inp:
        yield from inp.decode(video=0)


def upscale(src: Path, dst: Path, width: int, height: int, fps: int, bitrate: int) -> int:
    frames = 0
    with av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = bitrate
        stream.time_base = Fraction(1, fps)
        stream.options = {"preset": "ultrafast", "g": str(fps), "keyint_min": str(fps)}
        for frame in _frames(src):
            big = frame.reformat(width=width, height=height, format="yuv420p")
            big.pts, big.time_base = frames, Fraction(1, fps)
            for packet in stream.encode(big):
                out.mux(packet)
            frames += 1
        for packet in stream.encode():
            out.mux(packet)
    return frames


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    p.add_argument("--size", default="3840x2160")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--bitrate", type=int, default=16_000_000, help="bits/s (default 16 Mbit/s)")
    args = p.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    n = upscale(args.src, args.dst, width, height, args.fps, args.bitrate)
    print(f"{args.dst}: {n} frames {width}x{height} @ {args.fps} fps")


if __name__ == "__main__":
    main()
