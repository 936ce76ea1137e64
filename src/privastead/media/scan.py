"""Run decoder, detector and event tracker over a video file, the way the hub runs a camera.

``privastead-hub detect`` and the scene suite both use this, so what they score is what the
hub does. In ``idle`` decoding the decoder reads keyframes only until the detector reports a
candidate (``wake``), then runs at full rate until the event is over and the scene has been
quiet for a few seconds: the hub's ``keyframes`` mode.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import av

from privastead.errors import CorruptMediaError
from privastead.media.decode import LumaDecoder, LumaFrame
from privastead.media.detector import Box, MotionDetector
from privastead.media.events import EventEnded, EventStarted, EventTracker
from privastead.media.idle import IdlePolicy
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
    first_detection: float | None = None  # stream time of the first EventStarted


def scan_file(
    path: Path,
    detection: DetectionSettings,
    events: EventSettings,
    *,
    mode: ScanMode = "full",
    progress: Callable[[float, float], None] | None = None,
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
        decoder = LumaDecoder(stream, mode="keyframes" if mode == "keyframes" else "full")
        tracker = EventTracker(events)
        detector: MotionDetector | None = None
        report = ScanReport()
        origin: float | None = None
        policy = IdlePolicy(enabled=mode == "keyframes")
        last_report = time.monotonic()
        last_t = 0.0

        def handle(frames: list[LumaFrame]) -> None:
            nonlocal detector, origin, last_t
            for frame in frames:
                if detector is None:
                    detector = MotionDetector(detection, frame.y.shape[1], frame.y.shape[0])
                if origin is None:
                    origin = frame.pts
                t = frame.pts - origin
                last_t = t
                result = detector.process(frame)
                for ev in tracker.update(result, t):
                    _collect(ev, report)
                decoder.mode = policy.update(result, t, tracker.active)

        for packet in container.demux(stream):
            if packet.dts is None and packet.size == 0:
                continue
            handle(decoder.decode(packet))
            if progress is not None and time.monotonic() - last_report > 1.0:
                last_report = time.monotonic()
                progress(last_t, total)
        handle(decoder.flush())
        for ev in tracker.close(last_t + 1e-6):
            _collect(ev, report)
        report.duration = last_t
        report.frames_decoded = decoder.frames_decoded
        report.frames_analysed = detector.frames_analysed if detector else 0
        return report


def _collect(ev: EventStarted | EventEnded, report: ScanReport) -> None:
    if isinstance(ev, EventStarted):
        if report.first_detection is None:
            report.first_detection = ev.at
        return
    report.events.append(
        DetectedEvent(
            start=ev.started_at,
            end=ev.last_motion,
            clip_end=ev.at,
            peak_score=ev.peak_score,
            boxes=ev.boxes,
        )
    )


__all__ = ["DetectedEvent", "ScanMode", "ScanReport", "scan_file"]
