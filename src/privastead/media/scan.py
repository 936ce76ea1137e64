"""Run the hub's analysis pipeline over a video file.

``privastead-hub detect``, the scene suite and the benchmarks use this; the pipeline itself
(``media.analysis.Analysis``: decoder, detector, event tracker, idle policy) is the one the
running hub uses for each camera, so what they score is what the hub does. In ``keyframes``
mode the decoder reads keyframes only until the detector reports a candidate (``wake``), then
rewinds to the keyframe before and runs at full rate until the event is over and the scene
has been quiet for a few seconds: the hub's idle mode.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import av

from privastead.errors import CorruptMediaError
from privastead.media.analysis import Analysis, DetectorFactory, EventChanges, Observer
from privastead.media.detector import Box
from privastead.media.events import EventEnded, EventStarted
from privastead.media.settings import DetectionSettings, EventSettings

ScanMode = Literal["full", "keyframes"]


@dataclass(frozen=True)
class DetectedEvent:
    """One event found in a file; times in seconds from the start of the file."""

    start: float
    end: float  # last motion
    clip_end: float  # end of the clip (last motion + post-roll, or the split point)
    peak_score: float
    boxes: tuple[Box, ...]
    #: When a live hub would have notified: the newest packet's time when the event started
    #: (later than ``start`` by the persistence, and in idle mode by the wait for a keyframe).
    decided: float = 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "peak_score": round(self.peak_score, 5),
            "boxes": [
                [round(b.x, 4), round(b.y, 4), round(b.w, 4), round(b.h, 4)] for b in self.boxes
            ],
        }


@dataclass
class ScanReport:
    events: list[DetectedEvent] = field(default_factory=list)
    duration: float = 0.0
    frames_decoded: int = 0
    frames_analysed: int = 0
    rewinds: int = 0  # idle mode: switches to full rate that replayed from a keyframe
    first_detection: float | None = None  # stream time of the first EventStarted


def scan_file(
    path: Path,
    detection: DetectionSettings,
    events: EventSettings,
    *,
    mode: ScanMode = "full",
    progress: Callable[[float, float], None] | None = None,
    detector: DetectorFactory | None = None,
    observer: Observer | None = None,
) -> ScanReport:
    """Detect events in the first video stream of ``path``."""
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise CorruptMediaError(f"{path}: cannot open video: {exc}") from exc
    with container:
        if not container.streams.video:
            raise CorruptMediaError(f"{path}: no video stream")
        stream = container.streams.video[0]
        total = (
            float(stream.duration * stream.time_base)
            if stream.duration and stream.time_base
            else 0.0
        )
        analysis = Analysis(detection, events, mode=mode, detector=detector, observer=observer)
        analysis.connect(stream)
        collector = _Collector(analysis)
        last_report = time.monotonic()
        try:
            for packet in container.demux(stream):
                if packet.dts is None and packet.size == 0:
                    continue
                collector.add(analysis.feed(packet))
                if progress is not None and time.monotonic() - last_report > 1.0:
                    last_report = time.monotonic()
                    progress(collector.elapsed(), total)
        except av.error.FFmpegError as exc:
            raise CorruptMediaError(f"{path}: cannot read video: {exc}") from exc
        collector.add(analysis.finish())
        report = collector.report
        report.duration = collector.elapsed()
        report.frames_decoded = analysis.frames_decoded
        report.frames_analysed = analysis.frames_analysed
        report.rewinds = analysis.rewinds
        return report


class _Collector:
    """Turns event changes into ``DetectedEvent``s, times relative to the first frame."""

    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis
        self.report = ScanReport()
        self._decided: dict[str, float] = {}

    @property
    def origin(self) -> float:
        first = self.analysis.first_frame
        return 0.0 if first is None else first

    def elapsed(self) -> float:
        return max(0.0, self.analysis.last_frame - self.origin)

    def add(self, batch: list[EventChanges]) -> None:
        for item in batch:
            for ev in item.changes:
                self._collect(ev, item.decided_at)

    def _collect(self, ev: EventStarted | EventEnded, decided: float) -> None:
        if isinstance(ev, EventStarted):
            self._decided[ev.event_id] = decided
            if self.report.first_detection is None:
                self.report.first_detection = ev.at - self.origin
            return
        o = self.origin
        self.report.events.append(
            DetectedEvent(
                start=ev.started_at - o,
                end=ev.last_motion - o,
                clip_end=ev.at - o,
                peak_score=ev.peak_score,
                boxes=ev.boxes,
                decided=self._decided.pop(ev.event_id, ev.started_at) - o,
            )
        )


__all__ = ["DetectedEvent", "ScanMode", "ScanReport", "scan_file"]
