"""Camera audio for MP4 clips and browsers: copy what MP4 carries, transcode the rest to AAC.

Cameras send AAC, G.711 (mu-law or A-law, 8 kHz) or Opus. MP4 holds AAC and Opus as they are
(``mp4a``, ``Opus`` sample entries), and browsers play both from MP4 (Chromium, Firefox; Safari
plays AAC everywhere and Opus in MP4 only in recent versions). G.711 has no MP4 sample entry
a browser plays, so it is decoded and encoded to AAC-LC once, in the ingest, and every consumer
(clips, livestreams, continuous recording) sees AAC. Video is never touched.

Per camera, ``audio`` in ``hub.toml`` says what to do:

- ``auto`` (default): copy AAC and Opus, transcode anything else FFmpeg decodes to AAC;
- ``aac``: transcode everything that is not AAC (for players without Opus in MP4);
- ``off``: drop the camera's audio.

``AacTranscoder`` keeps the camera's timeline: each decoded frame keeps the timeline time of its
packet, the resampler re-chunks the samples into the encoder's 1024-sample frames with their
times carried along, and the AAC packets leave with timestamps in ``1/sample_rate`` on the same
timeline, so lip sync survives (the encoder's priming frame starts 1024 samples before the
first input sample, as in any AAC stream). A gap in the input (lost packets) stays a gap.
"""

from __future__ import annotations

import io
import typing
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import av
from av.audio.codeccontext import AudioCodecContext

from privastead.errors import CorruptMediaError

AudioPolicy = Literal["auto", "aac", "off"]
AUDIO_POLICIES: tuple[AudioPolicy, ...] = ("auto", "aac", "off")
MP4_AUDIO = frozenset({"aac", "opus"})  # copied into MP4 as they are under ``auto``
AAC_FRAME = 1024  # samples per AAC-LC frame
# AAC's sampling frequency table (ISO/IEC 14496-3 1.6.3.4): keep a camera's rate if listed.
_AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)


def audio_plan(codec: str, policy: AudioPolicy) -> Literal["copy", "aac", "drop"]:
    """What the ingest does with a camera audio stream of FFmpeg codec name ``codec``."""
    if policy == "off":
        return "drop"
    if codec == "aac" or (policy == "auto" and codec in MP4_AUDIO):
        return "copy"
    return "aac"


def _rate(rate: int) -> int:
    return rate if rate in _AAC_RATES else 48_000


def _bit_rate(rate: int, channels: int) -> int:
    # ~2 bits per sample and channel: 16 kbit/s for 8 kHz voice, 64 kbit/s cap for 48 kHz
    return min(64_000 * channels, max(16_000, 2 * rate * channels))


@dataclass(frozen=True)
class AacPacket:
    """One AAC packet on the camera timeline."""

    packet: av.Packet[Any]  # pts/dts in ``time_base`` (1/sample_rate) ticks
    at: float  # timeline seconds


class AacTranscoder:
    """Audio packets of one connection in, AAC-LC packets on the same timeline out.

    ``template`` describes the output stream (codec parameters, AudioSpecificConfig) for
    stream-copy muxers, like the ingest's snapshots of the camera's streams.
    """

    def __init__(self, source: AudioCodecContext) -> None:
        self.source_codec = source.name
        decoder = typing.cast("AudioCodecContext", av.CodecContext.create(source.name, "r"))
        decoder.sample_rate = source.sample_rate
        decoder.layout = source.layout
        if source.extradata:
            decoder.extradata = source.extradata
        self._decoder = decoder
        channels = min(max(source.channels, 1), 2)
        self.sample_rate = _rate(source.sample_rate)
        self.time_base = Fraction(1, self.sample_rate)
        # A never-written container holds the encoder, so its stream can serve as a template.
        self._holder = av.open(io.BytesIO(), "w", format="mp4")
        stream: Any = self._holder.add_stream("aac", rate=self.sample_rate)
        stream.layout = "stereo" if channels == 2 else "mono"
        stream.format = "fltp"
        stream.bit_rate = _bit_rate(self.sample_rate, channels)
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        # Writing the (in-memory) header opens the encoder and fills the stream's codec
        # parameters, AudioSpecificConfig included, which templates are copied from.
        self._holder.start_encoding()
        self.template: av.audio.stream.AudioStream = stream
        self._encoder: AudioCodecContext = stream.codec_context
        self._resampler = av.AudioResampler(
            format="fltp", layout=stream.layout.name, rate=self.sample_rate, frame_size=AAC_FRAME
        )
        self._last_dts: int | None = None
        self.packets_in = 0
        self.packets_out = 0

    def push(self, packet: av.Packet[Any], at: float) -> list[AacPacket]:
        """Transcode one camera packet whose first sample is at timeline second ``at``."""
        copy = av.Packet(bytes(packet))
        self.packets_in += 1
        try:
            frames = self._decoder.decode(copy)
        except av.FFmpegError as exc:
            raise CorruptMediaError(f"undecodable {self.source_codec} audio: {exc}") from exc
        out: list[AacPacket] = []
        for i, frame in enumerate(frames):
            # Samples before this frame in the same packet (rare: one frame per packet).
            offset = sum(f.samples for f in frames[:i]) / max(frame.sample_rate, 1)
            frame.pts = round((at + offset) * frame.sample_rate)
            frame.time_base = Fraction(1, frame.sample_rate)
            for chunk in self._resampler.resample(frame):
                out.extend(self._encode(chunk))
        return out

    def flush(self) -> list[AacPacket]:
        """The encoder's last packets (at the end of a connection)."""
        out: list[AacPacket] = []
        for chunk in self._resampler.resample(None):
            out.extend(self._encode(chunk))
        out.extend(self._encode(None))
        return out

    def _encode(self, frame: av.AudioFrame | None) -> list[AacPacket]:
        out = []
        try:
            packets = self._encoder.encode(frame)
        except av.FFmpegError as exc:
            raise CorruptMediaError(f"AAC encoder failed: {exc}") from exc
        for packet in packets:
            if packet.pts is None:
                continue
            dts = packet.dts if packet.dts is not None else packet.pts
            if self._last_dts is not None and dts <= self._last_dts:
                continue  # never hand a muxer a timestamp twice (a resampler rounding step)
            self._last_dts = dts
            packet.time_base = self.time_base
            packet.duration = packet.duration or AAC_FRAME
            self.packets_out += 1
            out.append(AacPacket(packet, float(packet.pts * self.time_base)))
        return out


__all__ = [
    "AAC_FRAME",
    "AUDIO_POLICIES",
    "MP4_AUDIO",
    "AacPacket",
    "AacTranscoder",
    "AudioPolicy",
    "audio_plan",
]
