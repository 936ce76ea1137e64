"""A camera microphone for camsim: an AAC-LC tone, encoded once and looped.

Real cameras send AAC (or G.711) beside the video; the hub must copy it into clips untouched.
The tone's pitch steps every second so a listener (or a test) can tell it is not silence.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

SAMPLES_PER_FRAME = 1024  # AAC-LC


@dataclass(frozen=True)
class EncodedAudio:
    sample_rate: int
    channels: int
    config: bytes  # AudioSpecificConfig (the SDP's config=, the MP4's esds)
    frames: tuple[bytes, ...]  # raw AAC frames (no ADTS), SAMPLES_PER_FRAME samples each


def tone(seconds: float = 4.0, sample_rate: int = 16_000) -> EncodedAudio:
    ctx = av.CodecContext.create("aac", "w")
    ctx.sample_rate = sample_rate
    ctx.layout = "mono"
    ctx.format = "fltp"
    ctx.bit_rate = 32_000
    ctx.time_base = Fraction(1, sample_rate)
    ctx.open()
    total = int(seconds * sample_rate) // SAMPLES_PER_FRAME * SAMPLES_PER_FRAME
    t = np.arange(total) / sample_rate
    pitch = 440.0 * (1 + (np.floor(t) % 4) / 4)
    wave = (0.2 * np.sin(2 * np.pi * pitch * t)).astype(np.float32)
    frames: list[bytes] = []
    for i in range(0, total, SAMPLES_PER_FRAME):
        frame = av.AudioFrame.from_ndarray(
            wave[None, i : i + SAMPLES_PER_FRAME], format="fltp", layout="mono"
        )
        frame.sample_rate = sample_rate
        frame.pts = i
        frames.extend(bytes(p) for p in ctx.encode(frame))
    frames.extend(bytes(p) for p in ctx.encode(None))
    return EncodedAudio(sample_rate, 1, bytes(ctx.extradata or b""), tuple(frames))


__all__ = ["SAMPLES_PER_FRAME", "EncodedAudio", "tone"]
