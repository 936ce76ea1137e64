"""RTSP ingest: one reader thread per camera that survives anything the camera does.

PyAV over RTSP/TCP with both FFmpeg's socket timeout and PyAV's interrupt timeouts (so a hung
camera raises within seconds instead of blocking forever), tiny probing (fast reconnects: the
SDP's parameter sets are enough), reconnects with exponential backoff and jitter, and a stream
end treated as a disconnect. Packets leave on one continuous timeline per camera: timestamps are
rebased at every connection so they keep increasing across reconnects (with the outage's real
gap), the first packets without ``pts`` are dropped until a keyframe, later ones are
interpolated. H.264/H.265 video and, when present, AAC audio go to ``sink``.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import random
import threading
import typing
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal, TypeVar

import av
from av.video.codeccontext import VideoCodecContext

from privastead.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)

_S = TypeVar("_S", av.video.stream.VideoStream, av.audio.stream.AudioStream)
State = Literal["connecting", "connected", "stalled", "reconnecting", "stopped"]


@dataclass(frozen=True)
class IngestSettings:
    open_timeout: float = 5.0  # seconds to connect and get the stream description
    read_timeout: float = 2.0  # seconds without data before the camera counts as hung
    stall_after: float = 1.5  # seconds without a packet before health says "stalled"
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    backoff_jitter: float = 0.25  # +-25 % so that many cameras do not reconnect in lockstep
    audio: bool = True


@dataclass(frozen=True)
class StreamInfo:
    """One connection's streams.

    ``video``/``audio`` are snapshots of the camera's streams (codec parameters, extradata,
    time base) that stay valid after the connection closes: templates for stream-copy muxing
    (``add_stream_from_template``). ``decoder`` is the connection's video codec context, for
    the decoder. The live input streams themselves never leave the reader thread, because
    closing the connection frees them.
    """

    epoch: int
    video: av.video.stream.VideoStream
    audio: av.audio.stream.AudioStream | None
    decoder: av.video.codeccontext.VideoCodecContext
    codec: str
    width: int
    height: int
    time_base: Fraction


@dataclass(frozen=True)
class MediaPacket:
    """A packet on the camera's continuous timeline. ``packet.pts``/``dts`` are rewritten to
    that timeline in ``packet.time_base`` (the stream's own). Never mutate ``packet``."""

    packet: av.Packet[Any]
    kind: Literal["video", "audio"]
    pts: float  # seconds on the continuous timeline
    keyframe: bool
    size: int
    epoch: int
    arrived: float = 0.0  # wall-clock seconds when the hub read it (livestream latency)


@dataclass(frozen=True)
class Disconnected:
    epoch: int
    reason: str


IngestEvent = StreamInfo | MediaPacket | Disconnected


class Backoff:
    """Exponential backoff with jitter; pure (no sleeping), random source injected."""

    def __init__(self, settings: IngestSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.attempt = 0

    def next_delay(self) -> float:
        s = self.settings
        base = float(min(s.backoff_max, s.backoff_initial * 2.0**self.attempt))
        self.attempt += 1
        return base * (1.0 + s.backoff_jitter * (2.0 * self.rng.random() - 1.0))

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class Health:
    """A snapshot of a camera's link, for status lines and tests."""

    state: State
    fps: float
    bitrate: float  # bits per second over the last few seconds
    last_packet_age: float | None
    reconnects: int
    last_error: str


@dataclass
class _Window:
    """Video packets of the last ``span`` seconds: (monotonic time, bytes)."""

    span: float = 5.0
    items: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, now: float, size: int) -> None:
        self.items.append((now, size))
        self.trim(now)

    def trim(self, now: float) -> None:
        while self.items and self.items[0][0] < now - self.span:
            self.items.popleft()

    def rates(self, now: float) -> tuple[float, float]:
        self.trim(now)
        if len(self.items) < 2:
            return 0.0, 0.0
        span = max(now - self.items[0][0], 1e-3)
        return (len(self.items) - 1) / span, sum(s for _, s in self.items) * 8 / span


class _Timeline:
    """Rebases one connection's timestamps onto the camera's continuous timeline."""

    def __init__(self, start: float) -> None:
        self.start = start  # timeline seconds at this connection's first keyframe
        self.origin: dict[int, float] = {}  # stream index -> its first pts in seconds
        self.last: dict[int, tuple[int, int]] = {}  # stream index -> (pts, dts) ticks emitted
        self.step: dict[int, int] = {}  # typical tick step, to fill in a missing pts

    def place(
        self, packet: av.Packet[Any], index: int, tb: Fraction, video_origin: float
    ) -> float | None:
        """Rewrite ``packet``'s pts/dts onto the timeline; its time in seconds (None: drop)."""
        last = self.last.get(index)
        raw = packet.pts if packet.pts is not None else packet.dts
        if raw is None:
            if last is None:
                return None
            pts = dts = last[1] + self.step.get(index, 1)
        else:
            if index not in self.origin:
                # Audio starts relative to the video's origin so the two stay in sync.
                self.origin[index] = float(raw * tb) if not self.origin else video_origin
            base = self.start - self.origin[index]
            pts = round((base + float(raw * tb)) / tb)
            raw_dts = packet.dts if packet.dts is not None else raw
            dts = round((base + float(raw_dts * tb)) / tb)
        if last is not None:
            if raw is not None and dts > last[1]:
                self.step[index] = dts - last[1]
            if dts <= last[1]:  # muxers need strictly increasing dts
                dts = last[1] + 1
        pts = max(pts, dts)
        packet.pts, packet.dts = pts, dts
        self.last[index] = (pts, dts)
        return float(pts * tb)


def _snapshot(stream: _S) -> _S:
    """A copy of ``stream``'s codec parameters in a never-written in-memory container."""
    holder = av.open(io.BytesIO(), "w", format="mp4")
    return holder.add_stream_from_template(stream)


def _with_dimensions(info: StreamInfo, keyframe: av.Packet[Any]) -> StreamInfo:
    """Tiny probing can leave the picture size unknown (e.g. when an audio packet arrives
    first); one decoded keyframe tells it."""
    ctx = typing.cast("VideoCodecContext", av.CodecContext.create(info.codec, "r"))
    if info.decoder.extradata:
        ctx.extradata = info.decoder.extradata
    copy = av.Packet(bytes(keyframe))
    try:
        frames = list(ctx.decode(copy)) + list(ctx.decode(None))
    except av.FFmpegError:
        return info
    for frame in frames:
        if isinstance(frame, av.VideoFrame):
            return dataclasses.replace(info, width=frame.width, height=frame.height)
    return info


class Ingest:
    """Reads ``url`` in a daemon thread and hands ``IngestEvent``s to ``sink`` (called in that
    thread; it may block for backpressure). ``start()``/``stop()``; ``health()`` from anywhere."""

    def __init__(
        self,
        url: str,
        sink: Callable[[IngestEvent], None],
        settings: IngestSettings | None = None,
        *,
        name: str = "camera",
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        self.url, self.sink, self.name, self.clock = url, sink, name, clock
        self.settings = settings or IngestSettings()
        self.backoff = Backoff(self.settings, rng)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._state: State = "connecting"
        self._window = _Window()
        self._last_packet: float | None = None
        self._reconnects = 0
        self._error = ""
        self._epoch = 0
        self._timeline_end = 0.0  # last timeline second emitted
        self._timeline_wall: float | None = None  # monotonic time of that packet

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"ingest-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the reader to stop; it notices within the read timeout."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout if timeout is not None else self.settings.read_timeout + 2)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def health(self) -> Health:
        now = self.clock.monotonic()
        with self._lock:
            fps, bitrate = self._window.rates(now)
            age = None if self._last_packet is None else now - self._last_packet
            state = self._state
            if state == "connected" and age is not None and age > self.settings.stall_after:
                state = "stalled"
            return Health(state, fps, bitrate, age, self._reconnects, self._error)

    def _set(self, state: State, error: str | None = None) -> None:
        with self._lock:
            self._state = state
            if error is not None:
                self._error = error

    def _run(self) -> None:
        while not self._stop.is_set():
            reason = "stream ended"
            try:
                self._set("connecting")
                self._read_once()
            except (av.FFmpegError, OSError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # a bug or an unexpected PyAV error must not kill the camera
                log.exception("%s: unexpected error while reading", self.name)
                reason = f"{type(exc).__name__}: {exc}"
            if self._stop.is_set():
                break
            with self._lock:
                self._reconnects += 1
            self._set("reconnecting", reason)
            self.sink(Disconnected(self._epoch, reason))
            delay = self.backoff.next_delay()
            log.warning("%s: disconnected (%s); reconnecting in %.1f s", self.name, reason, delay)
            self._stop.wait(delay)
        self._set("stopped")

    def _read_once(self) -> None:
        s = self.settings
        options = {
            "rtsp_transport": "tcp",
            "timeout": str(int(s.read_timeout * 1e6)),  # FFmpeg socket I/O timeout, microseconds
            "analyzeduration": "0",  # the SDP carries the parameter sets: no need to probe
            "probesize": "32",
            "fflags": "nobuffer",
        }
        container = av.open(self.url, options=options, timeout=(s.open_timeout, s.read_timeout))
        try:
            self._demux(container)
        finally:
            container.close()

    def _demux(self, container: av.container.InputContainer) -> None:
        if not container.streams.video:
            raise av.InvalidDataError(0, "camera offers no video stream")
        video = container.streams.video[0]
        audio = None
        if self.settings.audio and container.streams.audio:
            candidate = container.streams.audio[0]
            if candidate.codec_context.name == "aac":
                audio = candidate
        self._epoch += 1
        info = StreamInfo(
            self._epoch,
            _snapshot(video),
            _snapshot(audio) if audio is not None else None,
            video.codec_context,
            video.codec_context.name,
            video.codec_context.width,
            video.codec_context.height,
            video.time_base or Fraction(1, 90_000),
        )
        streams = [video] if audio is None else [video, audio]
        timeline: _Timeline | None = None
        video_origin = 0.0
        announced = False
        for packet in container.demux(streams):
            if self._stop.is_set():
                return
            if packet.size == 0:  # flush packet at the end of the stream
                continue
            is_video = packet.stream.index == video.index
            tb = packet.stream.time_base or Fraction(1, 90_000)
            if timeline is None:
                # Start every connection at a keyframe that has a timestamp.
                if not (is_video and packet.is_keyframe and packet.pts is not None):
                    continue
                timeline = _Timeline(self._next_start())
                video_origin = float(packet.pts * tb)
            if not announced:
                if info.width <= 0 or info.height <= 0:
                    info = _with_dimensions(info, packet)
                self.sink(info)
                announced = True
                self.backoff.reset()
                self._set("connected", "")
            at = timeline.place(packet, packet.stream.index, tb, video_origin)
            if at is None:
                continue
            now = self.clock.monotonic()
            with self._lock:
                self._last_packet = now
                if is_video:
                    self._window.add(now, packet.size)
                    self._timeline_end, self._timeline_wall = at, now
            self.sink(
                MediaPacket(
                    packet,
                    "video" if is_video else "audio",
                    at,
                    packet.is_keyframe,
                    packet.size,
                    self._epoch,
                    self.clock.time(),
                )
            )

    def _next_start(self) -> float:
        """Timeline second of a new connection's first frame: after the last one emitted, plus
        the real time that passed (so an outage shows as a gap, never as overlap)."""
        with self._lock:
            if self._timeline_wall is None:
                return 0.0
            gap = max(self.clock.monotonic() - self._timeline_wall, 0.001)
            return self._timeline_end + gap


__all__ = [
    "Backoff",
    "Disconnected",
    "Health",
    "Ingest",
    "IngestEvent",
    "IngestSettings",
    "MediaPacket",
    "State",
    "StreamInfo",
]
