"""H.265 to H.264 for browsers that cannot play H.265 (Chromium without hardware HEVC).

Two uses, both in the client (the hub always sends the camera's own stream, and saved clips
keep it):

- ``transcode_clip``: a whole clip (MP4 or fMP4 file) to an H.264 fMP4, on demand.
- ``FragmentTranscoder`` / ``LiveTranscoder``: a live stream of H.265 fMP4 fragments (init
  segment first) to H.264 fMP4 fragments, on the fly at a bounded cost: optional downscale,
  x264 ``ultrafast``/``zerolatency`` with a pinned thread count and no B-frames, output
  keyframes exactly where the camera's are (so the browser side can skip to them too), and a
  bounded input queue that, when the encoder cannot keep up, drops everything queued and
  resumes at the next keyframe.

H.264 input passes through untouched (the same bytes). Audio (AAC or Opus, as the hub
records it) is copied beside the new video in both, on the same timeline: nothing is lost by
watching an H.265 camera in a browser.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import typing
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.video.frame import PictureType

from privastead.errors import CorruptMediaError, MediaError
from privastead.media.fmp4 import PER_PACKET_FRAGMENTS, BoxSplitter, starts_with_sync_sample

log = logging.getLogger(__name__)

BROWSER_CODECS = frozenset({"h264"})


@dataclass(frozen=True)
class TranscodeSettings:
    max_height: int | None = None  # downscale taller pictures to this height (aspect kept)
    crf: int = 26
    threads: int = 1  # encoder and decoder threads each: a fixed, predictable cost
    max_queued: int = 8  # live input fragments waiting before dropping to a keyframe

    def __post_init__(self) -> None:
        if self.threads < 1 or self.max_queued < 1 or (self.max_height or 16) < 16:
            raise ValueError("transcode needs >= 1 thread, a queue, and a height of >= 16")


def _size(width: int, height: int, max_height: int | None) -> tuple[int, int]:
    if max_height is None or height <= max_height:
        return width, height
    scaled = round(width * max_height / height)
    return scaled - scaled % 2, max_height - max_height % 2


class _Encoder:
    """x264 into an fMP4 muxer, frames in, pieces (init first) out."""

    def __init__(
        self,
        width: int,
        height: int,
        time_base: Fraction,
        rate: Fraction | None,
        s: TranscodeSettings,
    ) -> None:
        self.pieces: list[bytes] = []
        self.splitter = BoxSplitter(lambda data, _init: self.pieces.append(data))
        self.out = av.open(self.splitter, "w", format="mp4", options=dict(PER_PACKET_FRAGMENTS))
        self.width, self.height = _size(width, height, s.max_height)
        stream: Any = self.out.add_stream("libx264", rate=rate or Fraction(30))
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        stream.thread_count = s.threads
        stream.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "crf": str(s.crf),
            # keyframes only where the camera has them (forced), none of x264's own
            "x264-params": f"threads={s.threads}:bframes=0:keyint=infinite:scenecut=0:forced-idr=1",
        }
        self.stream = stream
        self.audio: Any = None
        self._audio_dts: int | None = None
        self.frames = 0

    def add_audio(self, template: Any) -> None:
        """Copy an audio stream like ``template`` (before the first packet is muxed)."""
        self.audio = self.out.add_stream_from_template(template)

    def copy_audio(self, packet: av.Packet[Any], shift: float = 0.0) -> None:
        """Mux one audio packet as it is, ``shift`` seconds earlier (after dropped video)."""
        if self.audio is None or packet.pts is None or packet.size == 0:
            return
        tb = packet.time_base
        ticks = round(shift / tb) if tb else 0
        dts = (packet.dts if packet.dts is not None else packet.pts) - ticks
        if dts < 0 or (self._audio_dts is not None and dts <= self._audio_dts):
            return  # before the start, or overlapping a drop: the muxer needs rising dts
        self._audio_dts = dts
        out = av.Packet(bytes(packet))
        out.pts, out.dts, out.time_base = packet.pts - ticks, dts, tb
        out.duration = packet.duration
        out.stream = self.audio
        self.out.mux(out)

    def encode(self, frame: av.VideoFrame | None) -> None:
        if frame is not None and (frame.width, frame.height) != (self.width, self.height):
            pts, key = frame.pts, frame.key_frame
            frame = frame.reformat(width=self.width, height=self.height, format="yuv420p")
            frame.pts = pts
            frame.pict_type = PictureType.I if key else PictureType.NONE
        elif frame is not None:
            frame.pict_type = PictureType.I if frame.key_frame else PictureType.NONE
        for packet in self.stream.encode(frame):
            self.out.mux(packet)
            self.frames += 1

    def close(self) -> None:
        self.encode(None)
        self.out.close()
        self.splitter.finish()

    def take(self) -> list[bytes]:
        pieces, self.pieces = self.pieces, []
        return pieces


@dataclass(frozen=True)
class ClipTranscode:
    passthrough: bool
    frames_in: int
    frames_out: int
    bytes: int


def _private(path: Path) -> typing.BinaryIO:
    """``path`` opened for writing, 0600: a decoded clip is plaintext video of someone's home."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")


def transcode_clip(
    src: Path, dst: Path, settings: TranscodeSettings | None = None
) -> ClipTranscode:
    """Write ``src`` (MP4/fMP4) as an H.264 fMP4 to ``dst``; H.264 is copied byte for byte."""
    s = settings or TranscodeSettings()
    try:
        container = av.open(str(src))
    except av.FFmpegError as exc:
        raise CorruptMediaError(f"cannot open clip {src.name}: {exc}") from exc
    with container:
        if not container.streams.video:
            raise CorruptMediaError(f"clip {src.name} has no video")
        video = container.streams.video[0]
        if video.codec_context.name in BROWSER_CODECS:
            data = src.read_bytes()
            with _private(dst) as out:
                out.write(data)
            return ClipTranscode(True, 0, 0, len(data))
        video.thread_type = "AUTO"  # on demand: use the cores, a person is waiting
        encoder = _Encoder(
            video.codec_context.width,
            video.codec_context.height,
            video.time_base or Fraction(1, 90_000),
            video.average_rate,
            s,
        )
        audio = container.streams.audio[0] if container.streams.audio else None
        if audio is not None:
            encoder.add_audio(audio)
        streams = [video] if audio is None else [video, audio]
        frames_in = 0
        try:
            with _private(dst) as out:
                for packet in container.demux(streams):
                    if audio is not None and packet.stream.index == audio.index:
                        encoder.copy_audio(packet)
                        continue
                    for frame in packet.decode():
                        encoder.encode(typing.cast("av.VideoFrame", frame))
                        frames_in += 1
                    for piece in encoder.take():
                        out.write(piece)
                encoder.close()
                for piece in encoder.take():
                    out.write(piece)
        except av.FFmpegError as exc:
            dst.unlink(missing_ok=True)
            raise CorruptMediaError(f"cannot transcode clip {src.name}: {exc}") from exc
    return ClipTranscode(False, frames_in, encoder.frames, dst.stat().st_size)


class FragmentTranscoder:
    """Synchronous core of the live transcoder: ``push(piece)`` returns output pieces.

    The first piece must be the init segment. Each media fragment is demuxed together with it
    (the MP4 demuxer needs the ``moov``), decoded with a persistent decoder, and encoded.
    """

    def __init__(self, settings: TranscodeSettings | None = None) -> None:
        self.settings = settings or TranscodeSettings()
        self.init: bytes | None = None
        self.passthrough = False
        self._decoder: Any = None
        self._encoder: _Encoder | None = None
        self._need_keyframe = True
        self._offset = 0  # ticks removed from the timeline by drops
        self._last_pts: int | None = None
        self._step = 0
        self._video_tb = Fraction(1, 90_000)
        self.frames_in = 0
        self.dropped_frames = 0

    def _start(self, init: bytes) -> None:
        self.init = init
        try:
            with av.open(io.BytesIO(init)) as probe:
                video = probe.streams.video[0]
                self.passthrough = video.codec_context.name in BROWSER_CODECS
                if self.passthrough:
                    return
                ctx: Any = av.CodecContext.create(video.codec_context.name, "r")
                ctx.extradata = video.codec_context.extradata
                ctx.thread_type = "SLICE"  # frame threads would add frames of delay
                ctx.thread_count = self.settings.threads
                self._decoder = ctx
                self._encoder = _Encoder(
                    video.codec_context.width,
                    video.codec_context.height,
                    video.time_base or Fraction(1, 90_000),
                    video.average_rate or video.guessed_rate,
                    self.settings,
                )
                self._video_tb = video.time_base or Fraction(1, 90_000)
                if probe.streams.audio:
                    self._encoder.add_audio(probe.streams.audio[0])
        except (av.FFmpegError, IndexError) as exc:
            raise CorruptMediaError(f"live init segment is not a video MP4: {exc}") from exc

    def skip_to_keyframe(self) -> None:
        """Input was lost: decode nothing until the next keyframe."""
        self._need_keyframe = True

    def push(self, piece: bytes) -> list[bytes]:
        if self.init is None:
            self._start(piece)
            return [piece] if self.passthrough else []
        if self.passthrough:
            return [piece]
        assert self._encoder is not None
        try:
            with av.open(io.BytesIO(self.init + piece), "r") as container:
                video = container.streams.video[0]
                for packet in container.demux():
                    if packet.stream.index == video.index:
                        self._decode(packet)
                    elif packet.stream.type == "audio" and not self._need_keyframe:
                        # audio follows the video: dropped with it, moved back like it
                        self._encoder.copy_audio(packet, float(self._offset * self._video_tb))
        except av.FFmpegError as exc:
            raise CorruptMediaError(f"undecodable live fragment: {exc}") from exc
        return self._encoder.take()

    def _decode(self, packet: av.Packet[Any]) -> None:
        if packet.size == 0 or packet.pts is None:
            return
        if self._need_keyframe:
            if not packet.is_keyframe:
                self.dropped_frames += 1
                return
            self._need_keyframe = False
            if self._last_pts is not None:
                # Keep the output timeline continuous across a drop (no hole to stall on).
                self._offset = packet.pts - self._last_pts - self._step
        assert self._encoder is not None
        self.frames_in += 1
        for frame in self._decoder.decode(packet):
            pts = (frame.pts if frame.pts is not None else packet.pts) - self._offset
            if self._last_pts is not None and pts > self._last_pts:
                self._step = pts - self._last_pts
            if self._last_pts is not None and pts <= self._last_pts:
                continue  # never feed the encoder a timestamp twice
            self._last_pts = pts
            frame.pts = pts
            self._encoder.encode(frame)

    def close(self) -> list[bytes]:
        if self._encoder is None:
            return []
        for frame in self._decoder.decode(None):
            frame.pts = (frame.pts or 0) - self._offset
            if self._last_pts is None or frame.pts > self._last_pts:
                self._last_pts = frame.pts
                self._encoder.encode(frame)
        self._encoder.close()
        return self._encoder.take()


OutputCallback = Callable[[bytes], None]


class LiveTranscoder:
    """``FragmentTranscoder`` in its own thread behind a bounded queue.

    ``feed`` never blocks: when ``max_queued`` fragments wait, they are all dropped, and so is
    every later one up to a fragment that starts with a keyframe (the viewer sees a jump, not
    a growing delay).
    Output pieces go to ``on_output`` from the worker thread.
    """

    def __init__(
        self, on_output: OutputCallback, settings: TranscodeSettings | None = None
    ) -> None:
        self.settings = settings or TranscodeSettings()
        self.core = FragmentTranscoder(self.settings)
        self.on_output = on_output
        self._queue: deque[bytes] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._init: bytes | None = None
        self._skipping = False
        self.drops = 0
        self.error: MediaError | None = None
        self._thread = threading.Thread(target=self._run, name="live-transcode", daemon=True)
        self._thread.start()

    def feed(self, piece: bytes) -> None:
        with self._cond:
            if self._closing:
                raise MediaError("live transcoder is closed")
            if self.error is not None:
                raise self.error  # the worker stopped: the caller should end the live view
            if self._init is None:
                self._init = piece  # the first piece is the init segment: never dropped
            elif len(self._queue) >= self.settings.max_queued:
                # Behind: drop what waits and everything up to the next keyframe.
                self.drops += 1
                init_waiting = bool(self._queue) and self._queue[0] is self._init
                self._queue.clear()
                if init_waiting:
                    self._queue.append(self._init)
                self._skipping = True
            if self._skipping and piece is not self._init:
                if not starts_with_sync_sample(piece):
                    return
                self._skipping = False
                self.core.skip_to_keyframe()  # keeps its output timeline continuous
            self._queue.append(piece)
            self._cond.notify()

    @property
    def queued(self) -> int:
        with self._cond:
            return len(self._queue)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    break
                piece = self._queue.popleft()
            try:
                for out in self.core.push(piece):
                    self.on_output(out)
            except MediaError as exc:
                log.warning("live transcode stopped: %s", exc)
                self.error = exc
                return
        try:
            for out in self.core.close():
                self.on_output(out)
        except (MediaError, av.FFmpegError) as exc:
            self.error = MediaError(str(exc))

    def close(self, timeout: float | None = 10.0) -> None:
        """Transcode what is queued, flush the encoder, and stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)


__all__ = [
    "BROWSER_CODECS",
    "ClipTranscode",
    "FragmentTranscoder",
    "LiveTranscoder",
    "TranscodeSettings",
    "transcode_clip",
]
