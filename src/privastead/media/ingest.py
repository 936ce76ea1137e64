"""RTSP ingest: one reader thread per camera that survives anything the camera does.

PyAV over RTSP with RTP over TCP, UDP or ``auto`` (``media.transport``), both FFmpeg's socket
timeout and PyAV's interrupt timeouts (so a hung camera raises within seconds instead of
blocking forever), tiny probing (fast reconnects: the SDP's parameter sets are enough),
reconnects with exponential backoff and jitter, and a stream end treated as a disconnect.

A camera that refuses the credentials (401/403) is not a reconnect loop: health says
``unauthorized`` with a sentence naming the camera and what to check, and the ingest retries
rarely (``auth_retry_initial``, doubling to ``auth_retry_max``) in case the camera's password is
being changed. Credentials travel only inside the URL handed to FFmpeg in this process: every
error text is built from FFmpeg's error string without the URL, and any URL that still shows up
has its user information removed (``redact``).

Packets leave on one continuous timeline per camera: timestamps are rebased at every connection
so they keep increasing across reconnects (with the outage's real gap), the first packets
without ``pts`` are dropped until a keyframe, later ones are interpolated. H.264/H.265 video
and the camera's audio go to ``sink``: AAC and Opus as they are, other codecs (G.711)
transcoded to AAC on the same timeline (``media.audio``).
"""

from __future__ import annotations

import dataclasses
import errno
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
from privastead.errors import MediaError
from privastead.media.audio import AacTranscoder, AudioPolicy, audio_plan
from privastead.media.redact import describe_error, redact
from privastead.media.timeline import Timeline
from privastead.media.transport import (
    LossMeter,
    LossSettings,
    Transport,
    TransportChooser,
    TransportMode,
)

log = logging.getLogger(__name__)

_S = TypeVar("_S", av.video.stream.VideoStream, av.audio.stream.AudioStream)
State = Literal["connecting", "connected", "stalled", "reconnecting", "unauthorized", "stopped"]


@dataclass(frozen=True)
class IngestSettings:
    open_timeout: float = 5.0  # seconds to connect and get the stream description
    read_timeout: float = 2.0  # seconds without data before the camera counts as hung
    stall_after: float = 1.5  # seconds without a packet before health says "stalled"
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    backoff_jitter: float = 0.25  # +-25 % so that many cameras do not reconnect in lockstep
    audio: bool = True  # False: video only (the same as audio_policy "off")
    audio_policy: AudioPolicy = "auto"  # media.audio: copy AAC/Opus, G.711 -> AAC
    transport: TransportMode = "tcp"
    loss: LossSettings = field(default_factory=LossSettings)
    udp_buffer_bytes: int = 4 << 20  # socket receive buffer: a 4K keyframe is ~1 MB at once
    auth_retry_initial: float = 60.0  # wrong credentials: first retry after a minute,
    auth_retry_max: float = 3600.0  # doubling to one an hour

    def auth_backoff(self) -> IngestSettings:
        """The same settings with the rare retries of a refused login as the backoff."""
        return dataclasses.replace(
            self, backoff_initial=self.auth_retry_initial, backoff_max=self.auth_retry_max
        )


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
    transport: Transport = "tcp"
    camera_audio: str = ""  # the camera's audio codec ("" for none), before any transcoding


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
    transport: str = ""  # of the current (or last) connection: "tcp" or "udp"
    loss: float = 0.0  # share of RTP packets lost over UDP lately (media.transport)
    transport_note: str = ""  # why ``auto`` left UDP, while it stays on TCP


class _Fallback(Exception):
    """End the connection and reconnect at once over another transport."""


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
        self.auth_backoff = Backoff(self.settings.auth_backoff(), rng)
        self.transports = TransportChooser(self.settings.transport, self.settings.loss, clock)
        self._transport: Transport = "tcp"
        self._meter = LossMeter(self.settings.loss.window)
        self._packets = 0  # of the current connection
        self._audio_errors = 0
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
            return Health(
                state,
                fps,
                bitrate,
                age,
                self._reconnects,
                self._error,
                self._transport,
                self._meter.loss if self._transport == "udp" else 0.0,
                self.transports.fallback_reason,
            )

    def _set(self, state: State, error: str | None = None) -> None:
        with self._lock:
            self._state = state
            if error is not None:
                self._error = error

    def _run(self) -> None:
        while not self._stop.is_set():
            reason = "stream ended"
            delay: float | None = None
            try:
                self._set("connecting")
                self._read_once()
            except _Fallback as exc:
                reason, delay = str(exc), 0.0
            except (av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError) as exc:
                if self._stop.is_set():
                    break
                self._refused(exc)
                continue
            except (av.FFmpegError, OSError, MediaError) as exc:
                reason = describe_error(exc)
            except Exception as exc:  # a bug or an unexpected PyAV error must not kill the camera
                log.exception("%s: unexpected error while reading", self.name)
                reason = describe_error(exc)
            if self._stop.is_set():
                break
            with self._lock:
                self._reconnects += 1
            self._set("reconnecting", reason)
            self.sink(Disconnected(self._epoch, reason))
            if delay is None:
                delay = self.backoff.next_delay()
                log.warning(
                    "%s: disconnected (%s); reconnecting in %.1f s", self.name, reason, delay
                )
            self._stop.wait(delay)
        self._set("stopped")

    def _refused(self, exc: av.FFmpegError) -> None:
        """The camera refused the login: a health state and rare retries, never a loop."""
        status = "403 Forbidden" if isinstance(exc, av.error.HTTPForbiddenError) else "401"
        if "@" in self.url.split("//", 1)[-1].split("/", 1)[0]:
            reason = (
                f"camera {self.name}: the camera refused the username and password ({status}); "
                "check username and password_file (or password_env) in hub.toml"
            )
        else:
            reason = (
                f"camera {self.name}: the camera asks for a login ({status}); set username "
                "and password_file (or password_env) in hub.toml"
            )
        with self._lock:
            self._reconnects += 1
        self._set("unauthorized", reason)
        self.sink(Disconnected(self._epoch, reason))
        delay = self.auth_backoff.next_delay()
        log.error("%s; trying again in %.0f s", reason, delay)
        self._stop.wait(delay)

    def _read_once(self) -> None:
        s = self.settings
        transport = self.transports.next()
        self._transport = transport
        self._meter = LossMeter(s.loss.window)
        options = {
            "rtsp_transport": transport,
            "timeout": str(int(s.read_timeout * 1e6)),  # FFmpeg socket I/O timeout, microseconds
            "analyzeduration": "0",  # the SDP carries the parameter sets: no need to probe
            "probesize": "32",
            "fflags": "nobuffer",
        }
        if transport == "udp":
            options["buffer_size"] = str(s.udp_buffer_bytes)
        try:
            container = av.open(self.url, options=options, timeout=(s.open_timeout, s.read_timeout))
        except av.FFmpegError as exc:
            if transport == "udp" and exc.errno == errno.EPROTONOSUPPORT:
                self._leave_udp("the camera refuses RTP over UDP (461 Unsupported Transport)")
            raise
        self._packets = 0
        try:
            self._demux(container)
        except (av.FFmpegError, OSError) as exc:
            if transport == "udp" and self._packets == 0:
                # Silence over UDP may be a firewall or a dead camera: try TCP at once, and
                # blame UDP only if TCP then delivers.
                self.transports.udp_silent()
                if self.transports.mode == "auto":
                    reason = f"no RTP packet arrived over UDP ({describe_error(exc)})"
                    raise _Fallback(reason) from exc
            raise
        finally:
            container.close()

    def _leave_udp(self, reason: str) -> None:
        if self.transports.mode != "auto":
            return
        self.transports.udp_failed(reason)
        log.warning("%s: %s; using TCP for now", self.name, reason)
        raise _Fallback(reason)

    def _audio_stream(
        self, container: av.container.InputContainer
    ) -> tuple[av.audio.stream.AudioStream | None, AacTranscoder | None]:
        """The camera's audio stream to read, and the transcoder to AAC it needs (if any)."""
        policy: AudioPolicy = self.settings.audio_policy if self.settings.audio else "off"
        if not container.streams.audio:
            return None, None
        candidate = container.streams.audio[0]
        plan = audio_plan(candidate.codec_context.name, policy)
        if plan == "drop":
            return None, None
        if plan == "copy":
            return candidate, None
        try:
            return candidate, AacTranscoder(candidate.codec_context)
        except (av.FFmpegError, ValueError) as exc:
            log.warning(
                "%s: %s audio cannot be transcoded to AAC (%s); recording video only",
                self.name,
                candidate.codec_context.name,
                describe_error(exc),
            )
            return None, None

    def _stream_info(
        self,
        video: av.video.stream.VideoStream,
        audio: av.audio.stream.AudioStream | None,
        transcoder: AacTranscoder | None,
    ) -> StreamInfo:
        self._epoch += 1
        template = None
        if audio is not None:
            template = transcoder.template if transcoder is not None else _snapshot(audio)
        return StreamInfo(
            self._epoch,
            _snapshot(video),
            template,
            video.codec_context,
            video.codec_context.name,
            video.codec_context.width,
            video.codec_context.height,
            video.time_base or Fraction(1, 90_000),
            self._transport,
            audio.codec_context.name if audio is not None else "",
        )

    def _announce(self, info: StreamInfo, first: av.Packet[Any]) -> None:
        """The connection delivers: tell the sink its streams, reset the backoffs."""
        if info.width <= 0 or info.height <= 0:
            info = _with_dimensions(info, first)
        self.sink(info)
        self.backoff.reset()
        self.auth_backoff.reset()
        self.transports.connected(self._transport)
        self._set("connected", "")

    def _count(self, stream: int, at: float) -> None:
        """One more packet of this connection; over UDP, its loss (``auto`` may leave)."""
        self._packets += 1
        if self._transport != "udp":
            return
        m = self._meter
        m.add(stream, at)
        if self.transports.too_lossy(m):
            window = self.settings.loss.window
            self._leave_udp(
                f"UDP lost {m.missing} of {m.expected} RTP packets ({m.loss:.1%}) "
                f"in the last {window:g} s"
            )

    def _demux(self, container: av.container.InputContainer) -> None:
        if not container.streams.video:
            raise av.InvalidDataError(0, "camera offers no video stream")
        video = container.streams.video[0]
        audio, transcoder = self._audio_stream(container)
        info = self._stream_info(video, audio, transcoder)
        streams = [video] if audio is None else [video, audio]
        timeline: Timeline | None = None
        video_origin = 0.0
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
                timeline = Timeline(self._next_start())
                video_origin = float(packet.pts * tb)
                self._announce(info, packet)
            at = timeline.place(packet, packet.stream.index, tb, video_origin)
            if at is None:
                continue
            self._count(packet.stream.index, at)
            now = self.clock.monotonic()
            with self._lock:
                self._last_packet = now
                if is_video:
                    self._window.add(now, packet.size)
                    self._timeline_end, self._timeline_wall = at, now
            if not is_video and transcoder is not None:
                self._transcode(transcoder, packet, at)
                continue
            kind: Literal["video", "audio"] = "video" if is_video else "audio"
            self.sink(
                MediaPacket(
                    packet,
                    kind,
                    at,
                    packet.is_keyframe,
                    packet.size,
                    self._epoch,
                    self.clock.time(),
                )
            )

    def _transcode(self, transcoder: AacTranscoder, packet: av.Packet[Any], at: float) -> None:
        try:
            produced = transcoder.push(packet, at)
        except MediaError as exc:
            # One bad audio packet costs that packet, never the connection or the video.
            self._audio_errors += 1
            if self._audio_errors == 1 or self._audio_errors % 1000 == 0:
                log.warning("%s: %s (%d so far)", self.name, exc, self._audio_errors)
            return
        for aac in produced:
            self.sink(
                MediaPacket(
                    aac.packet,
                    "audio",
                    aac.at,
                    True,
                    aac.packet.size,
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


_Timeline = Timeline  # the name older tests know

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
    "describe_error",
    "redact",
]
