"""How RTP reaches the hub: TCP interleaved, UDP, or ``auto`` (UDP, falling back to TCP).

UDP costs the camera and the hub less and never stalls a live picture behind a retransmission,
but a lost RTP packet breaks a picture until the next keyframe. ``auto`` starts with UDP and
moves a camera to TCP when UDP does not work for it:

- the camera refuses UDP in SETUP (``461 Unsupported Transport``), or
- the RTSP session opened but no RTP packet arrived (a firewall or NAT drops UDP), or
- the measured loss exceeds ``LossSettings.threshold``.

**Loss** is measured from what FFmpeg hands the ingest, since FFmpeg's RTP statistics are not
reachable through PyAV: per stream, the packets missing from the RTP timeline. For two
consecutive packets ``t0 < t1`` of a stream whose usual step is ``s`` (the median of its last
32 steps), ``round((t1 - t0) / s) - 1`` packets are missing. An audio frame is one RTP packet,
so audio counts lost RTP packets exactly. A video frame spans several RTP packets; when the
first one of a frame is lost, FFmpeg's depacketizer finds no start of a picture and the frame
is merged away, so missing frames track the RTP packet loss rate to first order (measured
against camsim's ``udp_loss``: 1.1 % missing frames at 2 % packet loss, 3.4 % at 5 %, 1080p).
Loss is the missing share of the expected packets over the last ``window`` seconds of stream
time, judged once at least ``min_expected`` packets were expected. A camera that changes its
frame rate on purpose shows as loss for a moment; the worst outcome is TCP, which always works.

After a fallback the camera stays on TCP for ``udp_retry_after`` seconds (an hour), then tries
UDP again (networks change). Time comes from an injected clock.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from privastead.clock import SYSTEM_CLOCK, Clock

TransportMode = Literal["tcp", "udp", "auto"]
Transport = Literal["tcp", "udp"]
TRANSPORT_MODES: tuple[TransportMode, ...] = ("tcp", "udp", "auto")


@dataclass(frozen=True)
class LossSettings:
    window: float = 20.0  # seconds of stream time
    threshold: float = 0.01  # share of expected packets missing that ends UDP for ``auto``
    min_expected: int = 100  # packets expected in the window before judging
    udp_retry_after: float = 3600.0  # seconds on TCP before ``auto`` tries UDP again

    def __post_init__(self) -> None:
        if self.window <= 0 or not 0 < self.threshold < 1 or self.min_expected < 1:
            raise ValueError("loss needs a positive window, a threshold in (0, 1), a minimum")


@dataclass
class _Stream:
    last: float | None = None
    steps: deque[float] = field(default_factory=lambda: deque(maxlen=32))


class LossMeter:
    """Missing packets of one connection, per stream, from gaps in its timestamps."""

    def __init__(self, window: float = 20.0) -> None:
        self.window = window
        self._streams: dict[int, _Stream] = {}
        # (stream time, expected, missing) per packet, newest last
        self._events: deque[tuple[float, int, int]] = deque()
        self._expected = 0
        self._missing = 0
        self.total_missing = 0

    def add(self, stream: int, at: float) -> None:
        """A packet of ``stream`` at stream time ``at`` (seconds) arrived."""
        state = self._streams.setdefault(stream, _Stream())
        missing = 0
        if state.last is not None and at > state.last:
            gap = at - state.last
            if len(state.steps) >= 8:
                step = statistics.median(state.steps)
                missing = max(0, round(gap / step) - 1)
            if not missing:
                state.steps.append(gap)  # a gap that lost packets says nothing about the step
        if state.last is None or at > state.last:
            state.last = at
        self._events.append((at, 1 + missing, missing))
        self._expected += 1 + missing
        self._missing += missing
        self.total_missing += missing
        while self._events and self._events[0][0] < at - self.window:
            _, expected, lost = self._events.popleft()
            self._expected -= expected
            self._missing -= lost

    @property
    def expected(self) -> int:
        return self._expected

    @property
    def missing(self) -> int:
        return self._missing

    @property
    def loss(self) -> float:
        return self._missing / self._expected if self._expected else 0.0


class TransportChooser:
    """Picks the transport of each connection of one camera and remembers UDP's failures."""

    def __init__(
        self,
        mode: TransportMode,
        settings: LossSettings | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if mode not in TRANSPORT_MODES:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORT_MODES)}")
        self.mode = mode
        self.settings = settings or LossSettings()
        self.clock = clock
        self._tcp_until: float | None = None
        self._probe = False  # the next connection tries TCP after UDP stayed silent
        self._probing = False  # this connection is that try
        self.fallback_reason = ""  # why ``auto`` is on TCP now ("" while it uses UDP)
        self.fallbacks = 0

    def next(self) -> Transport:
        """The transport for the next connection."""
        self._probing = False
        if self.mode != "auto":
            return self.mode
        if self._probe:
            self._probe, self._probing = False, True
            return "tcp"
        if self._tcp_until is not None and self.clock.monotonic() < self._tcp_until:
            return "tcp"
        self._tcp_until = None
        self.fallback_reason = ""
        return "udp"

    def udp_silent(self) -> None:
        """A UDP connection ended before its first packet. A firewall dropping UDP and a
        camera that just died look the same, so the next connection tries TCP at once: if
        that one delivers, UDP is to blame (``connected``)."""
        if self.mode == "auto":
            self._probe = True

    def connected(self, transport: Transport) -> None:
        """The first packet of a connection over ``transport`` arrived."""
        if self._probing and transport == "tcp":
            self.udp_failed("no RTP packet arrived over UDP while TCP works (a firewall or NAT?)")
        self._probing = False

    def too_lossy(self, meter: LossMeter) -> bool:
        """Whether ``meter`` shows enough loss to leave UDP (``auto`` only)."""
        s = self.settings
        return (
            self.mode == "auto" and meter.expected >= s.min_expected and meter.loss >= s.threshold
        )

    def udp_failed(self, reason: str) -> None:
        """UDP did not work for this camera: TCP for the next ``udp_retry_after`` seconds."""
        if self.mode != "auto":
            return
        self._tcp_until = self.clock.monotonic() + self.settings.udp_retry_after
        self.fallback_reason = reason
        self.fallbacks += 1


__all__ = [
    "TRANSPORT_MODES",
    "LossMeter",
    "LossSettings",
    "Transport",
    "TransportChooser",
    "TransportMode",
]
