"""The detection-quality scene suite: render scenes to H.264 files, detect, score.

Scenes come from ``privastead.camsim.scene`` with their ground truth; each is encoded once with
libx264 (single-threaded, so the bytes are the same on every machine) and cached under
``.cache/scenes``. Detection runs through ``privastead.media.scan.scan_file``, the same path
as ``privastead-hub detect``.

Scoring is per event: a ground-truth interval is *found* if a detected event overlaps it
(with ``SLACK`` seconds of tolerance); a detected event is *correct* if it overlaps some
ground-truth interval. Recall = found / truth, precision = correct / detected. A detected
event that overlaps nothing is a false alarm; false alarms per hour are reported over the
scenes in which nothing should fire (``QUIET_SCENES``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from privastead.camsim.scene import QUIET_SCENES, Interval, Scene, make_scene
from privastead.media.scan import DetectedEvent, ScanMode, scan_file
from privastead.media.settings import DetectionSettings, EventSettings

#: Seconds of tolerance when matching detected events to ground truth.
SLACK = 1.0
#: Bumped when encoding changes, so cached files are rebuilt.
_ENCODING_VERSION = "1"


def cache_dir() -> Path:
    root = os.environ.get("PRIVASTEAD_SCENE_CACHE")
    return Path(root) if root else Path.cwd() / ".cache" / "scenes"


def _scene_source_hash() -> str:
    from privastead.camsim import scene, texture

    digest = hashlib.sha256(_ENCODING_VERSION.encode())
    for module in (scene, texture):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()[:10]


def encode_scene(
    scene: Scene,
    path: Path,
    *,
    codec: str = "h264",
    gop_seconds: float = 1.0,
    crf: int = 26,
    preset: str = "veryfast",
    threads: int = 1,
) -> Path:
    """Encode every frame of ``scene`` into an MP4 at ``path`` (camera-like: no B-frames)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.mp4")
    rate = Fraction(scene.fps).limit_denominator(1000)
    gop = max(1, round(scene.fps * gop_seconds))
    with av.open(str(tmp), "w") as out:
        if codec == "h264":
            stream = out.add_stream("libx264", rate=rate)
            stream.options = {
                "preset": preset,
                "crf": str(crf),
                "x264-params": (
                    f"threads={threads}:keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0"
                ),
            }
        elif codec == "hevc":
            stream = out.add_stream("libx265", rate=rate)
            stream.options = {
                "preset": "ultrafast",
                "crf": str(crf),
                "x265-params": f"pools=1:frame-threads=1:keyint={gop}:"
                f"min-keyint={gop}:scenecut=0:bframes=0:log-level=error",
            }
        else:
            raise ValueError(f"codec must be h264 or hevc, not {codec!r}")
        stream.width, stream.height = scene.width, scene.height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 90000)
        for index in range(scene.frame_count):
            y, u, v = scene.render(index)
            frame = av.VideoFrame(scene.width, scene.height, "yuv420p")
            for plane, data in zip(frame.planes, (y, u, v), strict=True):
                rows = np.frombuffer(memoryview(plane), np.uint8).reshape(
                    plane.height, plane.line_size
                )
                rows[:, : data.shape[1]] = data
            frame.pts = round(index / scene.fps * 90000)
            frame.time_base = Fraction(1, 90000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    tmp.replace(path)
    return path


@dataclass(frozen=True)
class Case:
    """One scene variant of the suite."""

    name: str
    seed: int
    width: int = 640
    height: int = 360
    fps: float = 10.0
    duration: float = 60.0
    codec: str = "h264"

    def scene(self) -> Scene:
        return make_scene(
            self.name,
            width=self.width,
            height=self.height,
            fps=self.fps,
            seed=self.seed,
            duration=self.duration,
        )

    def video(self) -> Path:
        """The encoded file, rendered on first use and cached."""
        key = (
            f"{self.name}-{self.width}x{self.height}-{self.fps:g}fps-s{self.seed}-"
            f"{self.duration:g}s-{self.codec}-{_scene_source_hash()}.mp4"
        )
        path = cache_dir() / key
        if not path.exists():
            encode_scene(self.scene(), path, codec=self.codec)
        return path


@dataclass(frozen=True)
class CaseResult:
    case: Case
    truth: tuple[Interval, ...]
    events: tuple[DetectedEvent, ...]
    found: int  # truth intervals overlapped by an event
    correct: int  # events overlapping a truth interval
    latencies: tuple[float, ...]  # detected start - truth start, per found interval


def _overlaps(event: DetectedEvent, interval: Interval) -> bool:
    return event.start < interval.end + SLACK and event.end + SLACK > interval.start


def score_case(case: Case, events: Iterable[DetectedEvent]) -> CaseResult:
    truth = case.scene().truth
    evs = tuple(events)
    found = [i for i in truth if any(_overlaps(e, i) for e in evs)]
    correct = [e for e in evs if any(_overlaps(e, i) for i in truth)]
    latencies = []
    for interval in found:
        first = min(e.start for e in evs if _overlaps(e, interval))
        latencies.append(first - interval.start)
    return CaseResult(case, truth, evs, len(found), len(correct), tuple(latencies))


def run_case(
    case: Case,
    detection: DetectionSettings | None = None,
    events: EventSettings | None = None,
    mode: ScanMode = "full",
) -> CaseResult:
    report = scan_file(
        case.video(), detection or DetectionSettings(), events or EventSettings(), mode=mode
    )
    return score_case(case, report.events)


@dataclass(frozen=True)
class Summary:
    truth: int
    found: int
    detected: int
    correct: int
    quiet_hours: float
    false_alarms_quiet: int

    @property
    def recall(self) -> float:
        return self.found / self.truth if self.truth else 1.0

    @property
    def precision(self) -> float:
        return self.correct / self.detected if self.detected else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def false_alarms_per_hour(self) -> float:
        return self.false_alarms_quiet / self.quiet_hours if self.quiet_hours else 0.0


def summarise(results: Iterable[CaseResult]) -> Summary:
    rs = list(results)
    quiet = [r for r in rs if r.case.name in QUIET_SCENES]
    return Summary(
        truth=sum(len(r.truth) for r in rs),
        found=sum(r.found for r in rs),
        detected=sum(len(r.events) for r in rs),
        correct=sum(r.correct for r in rs),
        quiet_hours=sum(r.case.duration for r in quiet) / 3600.0,
        false_alarms_quiet=sum(len(r.events) - r.correct for r in quiet),
    )


__all__ = [
    "SLACK",
    "Case",
    "CaseResult",
    "Summary",
    "encode_scene",
    "run_case",
    "score_case",
    "summarise",
]
