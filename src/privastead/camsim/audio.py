"""A camera microphone for camsim: a tone in the codecs cameras send, encoded once and looped.

Real cameras send AAC, G.711 (mu-law or A-law, 8 kHz) or Opus beside the video; the hub must
bring each into clips and livestreams. The tone's pitch steps every second (440, 550, 660,
770 Hz) so a listener, or a test, can tell it is not silence and where it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, cast

import av
import numpy as np
from av.audio.codeccontext import AudioCodecContext

AudioCodec = Literal["aac", "pcmu", "pcma", "opus"]
AUDIO_CODECS: tuple[AudioCodec, ...] = ("aac", "pcmu", "pcma", "opus")

SAMPLES_PER_FRAME = 1024  # AAC-LC
_G711_PACKET = 160  # samples: 20 ms at 8 kHz, what cameras put in one RTP packet
_OPUS_FRAME = 960  # samples: 20 ms at 48 kHz
_DEFAULT_RATE: dict[AudioCodec, int] = {"aac": 16_000, "pcmu": 8_000, "pcma": 8_000, "opus": 48_000}
# RTP payload types: G.711 has static ones (RFC 3551), the others take dynamic numbers.
_PAYLOAD_TYPE: dict[AudioCodec, int] = {"aac": 97, "pcmu": 0, "pcma": 8, "opus": 111}


@dataclass(frozen=True)
class EncodedAudio:
    sample_rate: int  # the RTP clock rate too
    channels: int
    config: bytes  # AAC: AudioSpecificConfig (the SDP's config=, the MP4's esds); else empty
    frames: tuple[bytes, ...]  # one RTP payload's worth each (raw AAC frame, G.711 bytes, Opus)
    codec: AudioCodec = "aac"
    frame_samples: int = SAMPLES_PER_FRAME  # samples per frame at sample_rate

    @property
    def payload_type(self) -> int:
        return _PAYLOAD_TYPE[self.codec]

    def sdp(self, control: str) -> list[str]:
        """The SDP lines of this track (media line, rtpmap, fmtp, control)."""
        pt = self.payload_type
        lines = [f"m=audio 0 RTP/AVP {pt}"]
        if self.codec == "aac":
            lines += [
                f"a=rtpmap:{pt} MPEG4-GENERIC/{self.sample_rate}/{self.channels}",
                f"a=fmtp:{pt} streamtype=5;profile-level-id=15;mode=AAC-hbr;"
                f"sizelength=13;indexlength=3;indexdeltalength=3;config={self.config.hex()}",
            ]
        elif self.codec == "opus":
            # RFC 7587: always "opus/48000/2" whatever is sent; mono is a receiver hint.
            lines += [f"a=rtpmap:{pt} opus/48000/2", f"a=fmtp:{pt} sprop-stereo=0"]
        else:
            lines.append(f"a=rtpmap:{pt} {self.codec.upper()}/{self.sample_rate}")
        lines.append(f"a=control:{control}")
        return lines


def _wave(seconds: float, sample_rate: int, multiple: int) -> np.ndarray:
    total = int(seconds * sample_rate) // multiple * multiple
    t = np.arange(total) / sample_rate
    pitch = 440.0 * (1 + (np.floor(t) % 4) / 4)
    return (0.2 * np.sin(2 * np.pi * pitch * t)).astype(np.float32)


def _encoder(name: str, sample_rate: int, fmt: str, bit_rate: int = 0) -> AudioCodecContext:
    ctx = cast("AudioCodecContext", av.CodecContext.create(name, "w"))
    ctx.sample_rate = sample_rate
    ctx.layout = "mono"
    ctx.format = fmt
    if bit_rate:
        ctx.bit_rate = bit_rate
    ctx.time_base = Fraction(1, sample_rate)
    ctx.open()
    return ctx


def _encode(ctx: AudioCodecContext, wave: np.ndarray, fmt: str, step: int) -> list[bytes]:
    out: list[bytes] = []
    for i in range(0, len(wave), step):
        chunk = wave[i : i + step]
        data = chunk[None] if fmt != "s16" else (chunk * 32767).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
        frame.sample_rate = ctx.sample_rate
        frame.pts = i
        out.extend(bytes(p) for p in ctx.encode(frame))
    out.extend(bytes(p) for p in ctx.encode(None))
    return out


def tone(
    seconds: float = 4.0, sample_rate: int | None = None, codec: AudioCodec = "aac"
) -> EncodedAudio:
    """``seconds`` of the stepping tone in ``codec`` (mono), split into RTP-sized frames."""
    rate = sample_rate or _DEFAULT_RATE[codec]
    if codec == "aac":
        ctx = _encoder("aac", rate, "fltp", 32_000)
        frames = _encode(ctx, _wave(seconds, rate, SAMPLES_PER_FRAME), "fltp", SAMPLES_PER_FRAME)
        return EncodedAudio(rate, 1, bytes(ctx.extradata or b""), tuple(frames))
    if codec == "opus":
        if rate != 48_000:
            raise ValueError("camsim sends Opus at 48 kHz (the RTP clock of RFC 7587)")
        ctx = _encoder("libopus", rate, "s16", 32_000)
        frames = _encode(ctx, _wave(seconds, rate, _OPUS_FRAME), "s16", _OPUS_FRAME)
        return EncodedAudio(rate, 1, b"", tuple(frames), "opus", _OPUS_FRAME)
    if rate != 8_000:
        raise ValueError("G.711 is 8 kHz")
    ctx = _encoder("pcm_mulaw" if codec == "pcmu" else "pcm_alaw", rate, "s16")
    data = b"".join(_encode(ctx, _wave(seconds, rate, _G711_PACKET), "s16", _G711_PACKET))
    chunks = [data[i : i + _G711_PACKET] for i in range(0, len(data), _G711_PACKET)]
    return EncodedAudio(rate, 1, b"", tuple(chunks), codec, _G711_PACKET)


__all__ = ["AUDIO_CODECS", "SAMPLES_PER_FRAME", "AudioCodec", "EncodedAudio", "tone"]
