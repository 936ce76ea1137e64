"""Build the streams camsim serves: a generated scene (encoded once, cached) or a looped file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from privastead.camsim.encoder import EncodedStream, encode_cached
from privastead.camsim.rtp import Codec
from privastead.camsim.scene import code_hash, make_scene


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "privastead" / "camsim"


def parse_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT``, both even (YUV 4:2:0), at most 3840x2160."""
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size must look like 1920x1080, not {text!r}") from None
    if w <= 0 or h <= 0 or w % 2 or h % 2:
        raise ValueError(f"size {text}: width and height must be positive and even")
    if w * h > 3840 * 2160:
        raise ValueError(f"size {text}: at most 3840x2160")
    return w, h


def scene_stream(
    scene: str,
    *,
    width: int,
    height: int,
    fps: float,
    codec: Codec = "h264",
    seed: int = 0,
    duration: float | None = None,
    gop_seconds: float = 1.0,
    bitrate: int | None = None,
    cache_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EncodedStream:
    """Scene ``scene`` from ``privastead.camsim.scene`` encoded (or loaded from the cache)."""
    source = make_scene(scene, width=width, height=height, fps=fps, seed=seed, duration=duration)
    params: dict[str, object] = {
        "scene": scene,
        "width": width,
        "height": height,
        "fps": fps,
        "seed": seed,
        "duration": source.duration,
        "scene_code": code_hash(),  # a changed renderer must not serve stale video
    }
    return encode_cached(
        source,
        codec,
        cache_dir,
        params,
        gop_seconds=gop_seconds,
        bitrate=bitrate,
        progress=progress,
    )


__all__ = ["default_cache_dir", "parse_size", "scene_stream"]
