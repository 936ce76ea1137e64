"""The analysis stage of one camera: detection-stream packets in, events out.

This is the one pipeline that both ``privastead-hub run`` (``hub.camera``, in the camera's
analysis thread) and ``privastead-hub detect`` (``media.scan``, over a file) run, so every
quality and CPU figure measures what the hub does:

    packet -> LumaDecoder -> Detector -> EventTracker -> events
                   ^                          |
                   +------- IdlePolicy <------+   (keyframes only while idle)

**Idle mode starts on time.** In ``keyframes`` mode only keyframes are decoded while nothing
happens. A keyframe that shows a change means the change began somewhere after the keyframe
before it, so the analysis rewinds: the detector, tracker and idle policy go back to the state
they had just after that previous keyframe (a snapshot is taken at every idle keyframe: the
detector's grid state, ~1 MB at 4K), and the previous and the current GOP are decoded again at
full rate. When analysis drops to keyframes in the middle of a GOP, the first keyframe it
decodes has no idle keyframe before it: the snapshot then is the one taken as it dropped (the
state after the last frame analysed at full rate), and the frames after that one are looked
at. Event onsets therefore match full-rate decoding; only the moment the event can be
confirmed waits for the keyframe that showed it. The packets of the previous and the current
GOP are kept for this (references to compressed packets that the pre-roll ring holds anyway
when detection runs on the main stream: at 4K30, 17 Mbit/s and a 2 s GOP about 8.5 MB).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from privastead.media.decode import DecodeMode, LumaDecoder, LumaFrame
from privastead.media.detector import STARTUP_SECONDS, MotionDetector, MotionResult
from privastead.media.events import Event, EventTracker
from privastead.media.idle import IdlePolicy
from privastead.media.settings import DetectionSettings, EventSettings
from privastead.media.verdicts import FrameExplain

#: A GOP longer than this many packets is not kept for a rewind (the switch to full rate then
#: replays the current GOP only, or waits for the next keyframe).
MAX_GOP_PACKETS = 600
#: Seconds by which the newest packet may lead the newest decoded frame (frame threading).
DECODER_LEAD = 0.5


class Detector(Protocol):
    """A motion detector: frames of one stream in order, a ``MotionResult`` each.

    ``snapshot``/``restore`` save and bring back the detector's whole learned state, so the
    analysis can rewind to an earlier keyframe and look at the frames it skipped while idle.
    """

    frames_analysed: int

    def process(self, frame: LumaFrame) -> MotionResult: ...

    def snapshot(self) -> object: ...

    def restore(self, state: object) -> None: ...


#: Builds the detector for a stream of the given width and height.
DetectorFactory = Callable[[int, int], Detector]


class Observer(Protocol):
    """Sees what the analysis does (``privastead-hub detect --explain``, debug video)."""

    def analysed(self, frame: LumaFrame, result: MotionResult, detector: Detector) -> None: ...

    def looked_again(self, at: float, result: MotionResult, explain: FrameExplain | None) -> None:
        """An earlier frame the detector looked at again (the start-up's, once it knew the
        scene): there is no picture, only what it saw."""

    def events(self, changes: list[Event], frame_time: float) -> None: ...

    def rewound(self, to: float, at: float) -> None: ...


class Observers:
    """Several observers as one (``--explain`` and ``--debug-video`` together)."""

    def __init__(self, observers: list[Observer]) -> None:
        self.observers = observers

    def analysed(self, frame: LumaFrame, result: MotionResult, detector: Detector) -> None:
        for observer in self.observers:
            observer.analysed(frame, result, detector)

    def looked_again(self, at: float, result: MotionResult, explain: FrameExplain | None) -> None:
        for observer in self.observers:
            observer.looked_again(at, result, explain)

    def events(self, changes: list[Event], frame_time: float) -> None:
        for observer in self.observers:
            observer.events(changes, frame_time)

    def rewound(self, to: float, at: float) -> None:
        for observer in self.observers:
            observer.rewound(to, at)


@dataclass(frozen=True)
class EventChanges:
    """Events produced by one frame. ``frame_time``: that frame's time; ``decided_at``: the
    newest packet's time when they were produced (later than ``frame_time`` after a rewind:
    the moment a live hub would notify)."""

    changes: tuple[Event, ...]
    frame_time: float
    decided_at: float


@dataclass
class _Snapshot:
    at: float  # the keyframe's time
    detector: object
    tracker: EventTracker
    policy: IdlePolicy


class Analysis:
    """Decoder, detector, event tracker and idle policy of one camera's detection stream."""

    def __init__(
        self,
        detection: DetectionSettings,
        events: EventSettings,
        *,
        mode: DecodeMode = "full",
        detector: DetectorFactory | None = None,
        observer: Observer | None = None,
        quiet_seconds: float = 3.0,
    ) -> None:
        self.detection = detection
        self.idle = mode == "keyframes"
        self._factory: DetectorFactory = detector or (lambda w, h: MotionDetector(detection, w, h))
        self.observer = observer
        self.tracker = EventTracker(events)
        self.policy = IdlePolicy(quiet_seconds, enabled=self.idle)
        self.detector: Detector | None = None
        self._size = (0, 0)
        self._decoder: LumaDecoder | None = None
        self._gops: list[list[Any]] = []  # the previous and the current GOP's packets
        self._snapshots: list[_Snapshot] = []  # after the previous and the current keyframe
        self._newest = 0.0  # time of the newest packet fed
        self._last_frame = 0.0
        self.first_frame: float | None = None  # time of the first frame analysed
        self.rewinds = 0
        self.frames_decoded_before = 0  # by decoders of earlier connections

    # -- stream -----------------------------------------------------------------------------------
    def connect(self, stream: Any) -> None:
        """A (new) connection: decode its packets with a fresh decoder. ``stream`` is a PyAV
        stream or anything with ``codec_context``/``time_base`` (``LumaDecoder``). What the
        detector learned is kept when the frame size stays the same."""
        if self._decoder is not None:
            self.frames_decoded_before += self._decoder.frames_decoded
        # Nothing learned yet: the start-up runs at full rate (see ``_analyse``).
        mode: DecodeMode = "full" if self.detector is None else self.mode
        self._decoder = LumaDecoder(stream, mode)
        self._gops = []
        self._snapshots = []

    @property
    def mode(self) -> DecodeMode:
        if self._decoder is not None:
            return self._decoder.mode
        return "keyframes" if self.idle else "full"

    @property
    def frames_decoded(self) -> int:
        now = self._decoder.frames_decoded if self._decoder is not None else 0
        return self.frames_decoded_before + now

    @property
    def last_frame(self) -> float:
        """Time of the newest frame analysed."""
        return self._last_frame

    @property
    def kept_bytes(self) -> int:
        """Compressed bytes of the packets kept for a rewind (the previous and current GOP)."""
        return sum(p.size for gop in self._gops for p in gop)

    @property
    def frames_analysed(self) -> int:
        return self.detector.frames_analysed if self.detector is not None else 0

    # -- packets ----------------------------------------------------------------------------------
    def feed(self, packet: Any, at: float | None = None) -> list[EventChanges]:
        """Analyse one packet of the detection stream (``at``: its time in seconds, if the
        caller knows it better than ``packet.pts``). Returns the events it produced."""
        decoder = self._decoder
        if decoder is None:
            raise RuntimeError("Analysis.connect() must come before feed()")
        if packet.size == 0:
            return []
        self._newest = at if at is not None else _seconds(packet, self._newest)
        self._remember(packet)
        out: list[EventChanges] = []
        was_idle = decoder.mode == "keyframes"
        for frame in decoder.decode(packet):
            self._analyse(frame, out)
        # full rate until the first frame is analysed (the start-up, see ``_analyse``)
        wanted = self.policy.mode(self._newest) if self.first_frame is not None else "full"
        if was_idle and wanted == "full":
            self._wake(out)
        elif wanted != decoder.mode:
            decoder.mode = wanted
            if wanted == "keyframes" and self.detector is not None:
                # What a rewind goes back to until an idle keyframe comes: the frames skipped
                # from here on are the ones the GOP kept lets it look at.
                self._snapshots = [self._snapshot(self._last_frame)]
        return out

    def finish(self) -> list[EventChanges]:
        """End of stream: the decoder's delayed frames, then the running event is ended."""
        out: list[EventChanges] = []
        if self._decoder is not None:
            for frame in self._decoder.flush():
                self._analyse(frame, out)
        ended = self.tracker.close(self._last_frame + 1e-6)
        if ended:
            out.append(EventChanges(tuple(ended), self._last_frame, self._newest))
            if self.observer is not None:
                self.observer.events(ended, self._last_frame)
        return out

    def _analyse(self, frame: LumaFrame, out: list[EventChanges]) -> None:
        if self.detector is None or self._size != frame.y.shape:
            self._size = frame.y.shape
            self.detector = self._factory(frame.y.shape[1], frame.y.shape[0])
        self._last_frame = frame.pts
        if self.first_frame is None:
            self.first_frame = frame.pts
            # The detector's start-up is decoded at full rate in either mode: it learns the
            # scene from those frames and looks at them again once it knows the background.
            # The hold runs on packet times, which lead the frames by the decoder's delay, so
            # it lasts a little longer than the start-up.
            busy_until = frame.pts + STARTUP_SECONDS + DECODER_LEAD
            self.policy.hold(busy_until - self.policy.quiet_seconds)
        result = self.detector.process(frame)
        changes: list[Event] = []
        take_late = getattr(self.detector, "take_late", None)
        if take_late is not None:
            # Frames looked at again (the start-up's, once the background is known): the
            # event tracker sees them in order, before this frame.
            for at, late, explain in take_late():
                self.policy.update(late, frame.pts, self.tracker.active)
                if self.observer is not None:
                    self.observer.looked_again(at, late, explain)
                changes += self.tracker.update(late, at)
        self.policy.update(result, frame.pts, self.tracker.active)
        if self.observer is not None:
            self.observer.analysed(frame, result, self.detector)
        changes += self.tracker.update(result, frame.pts)
        if changes:
            out.append(EventChanges(tuple(changes), frame.pts, self._newest))
            if self.observer is not None:
                self.observer.events(changes, frame.pts)
            self._snapshots = []  # never rewind past a decision already handed out
        if self._decoder is not None and self._decoder.mode == "keyframes" and frame.keyframe:
            self._snapshots = [*self._snapshots[-1:], self._snapshot(frame.pts)]

    # -- idle mode: rewinding ------------------------------------------------------------------
    def _remember(self, packet: Any) -> None:
        if packet.is_keyframe:
            self._gops = [*self._gops[-1:], [packet]]
        elif self._gops and len(self._gops[-1]) < MAX_GOP_PACKETS:
            self._gops[-1].append(packet)
        elif self._gops:
            self._gops = []  # an absurdly long GOP: give up on catching up in it

    def _snapshot(self, at: float) -> _Snapshot:
        assert self.detector is not None
        return _Snapshot(
            at, self.detector.snapshot(), copy.deepcopy(self.tracker), copy.deepcopy(self.policy)
        )

    def _packets_since(self, at: float) -> list[Any]:
        """The packets kept from the last keyframe at or before ``at`` (none if every GOP
        kept begins after it)."""
        for i in range(len(self._gops) - 1, -1, -1):
            if self._gops[i] and _seconds(self._gops[i][0], float("inf")) <= at + 1e-3:
                return [p for gop in self._gops[i:] for p in gop]
        return []

    def _wake(self, out: list[EventChanges]) -> None:
        """Keyframes -> full rate: rewind to the keyframe before the one that showed the
        change (or to where analysis dropped to keyframes, if that was later) and decode
        everything since at full rate."""
        decoder = self._decoder
        assert decoder is not None
        start = self._snapshots[0] if self._snapshots else None
        packets = self._packets_since(start.at) if start is not None else []
        if start is not None and not packets and self._gops:
            # The GOPs kept begin after the snapshot (a gap): rewind to the current keyframe.
            start = self._snapshots[-1]
            packets = self._packets_since(start.at)
        if start is None or self.detector is None or not packets:
            decoder.mode = "full"  # nothing to replay: full rate from the next keyframe
            return
        self.detector.restore(start.detector)
        self.tracker = start.tracker
        self.policy = start.policy
        self.policy.hold(self._newest)  # stay at full rate while catching up
        self._snapshots = []
        self.rewinds += 1
        if self.observer is not None:
            self.observer.rewound(start.at, self._newest)
        for frame in decoder.replay(packets, after=start.at):
            self._analyse(frame, out)


def _seconds(packet: Any, default: float) -> float:
    if packet.pts is None or packet.time_base is None:
        return default
    return float(packet.pts * packet.time_base)


__all__ = ["Analysis", "Detector", "DetectorFactory", "EventChanges", "Observer", "Observers"]
