"""The detection-quality scene suite: render scenes to H.264 files, detect, score.

Scenes come from ``privastead.camsim.scene`` with their ground truth; each is rendered at some
*rendering* (size, frame rate, GOP, bitrate), encoded once with libx264 (single-threaded, so
the bytes are the same on every machine with the same PyAV build, ``encoder_build``) and
cached under ``.cache/scenes``. Detection runs through ``privastead.media.scan.scan_file``,
i.e. the hub's own analysis pipeline.

Two sets, kept apart on purpose:

- ``TUNING``: what may be looked at while changing the detector (seeds 0-2 at 640x360, 10 fps,
  GOP 1 s; seeds 0-5 at 1280x720, 15 fps, GOP 2 s, a camera's bitrate; weather and wind at
  3840x2160, 30 fps, on seeds 0-5, gale and foliage also on seeds 6-11; wind at 1024x576,
  12.5 fps, on seeds 6-17, and at 854x480, 15 fps, on seeds 18-29; people and cars at night,
  in lamp light and storms at 1280x720 on seeds 30-35, night cars and lamp crossings at
  1024x576, 12.5 fps, on seeds 36-41; low frame rates at 640x360, GOP 2 s: 5 fps on seed 60,
  7.5 fps on seed 61);
- ``HELD_OUT``: never run while tuning, only to report (other seeds, and renderings the tuning
  never saw: 960x540 at 12.5 fps, 1920x1080 at 25 fps with a low bitrate; 3840x2160 at 30 fps
  on a seed of its own; 960x540 at 6 fps with a camera's bitrate on seed 140).

Scoring is per event: a ground-truth interval is *found* if a detected event overlaps it
(with ``SLACK`` seconds of tolerance); a detected event is *correct* if it overlaps some
ground-truth interval. Recall = found / truth, precision = correct / detected. A detected
event that overlaps nothing is a false alarm; false alarms per hour are reported over the
scenes in which nothing should fire (``QUIET_SCENES``). A correct event whose motion goes on
more than ``TAIL`` seconds after the object left is a *long tail* (rain or foliage keeping it
alive, or what the object left behind), counted apart: motion past the last object it
covers, or through a quiet gap between two objects it covers (an event stays open for the
post-roll after its last motion, so one that spans a gap longer than the post-roll and
``TAIL`` saw motion that long after the first object left; merged with the next visitor,
such a tail hid in the next object's event).
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

from privastead.camsim.encoder import camera_bitrate, encoder_build
from privastead.camsim.scene import QUIET_SCENES, SCENES, Interval, Scene, code_hash, make_scene
from privastead.media.analysis import DetectorFactory
from privastead.media.scan import DetectedEvent, ScanMode, scan_file
from privastead.media.settings import DetectionSettings, EventSettings

#: Seconds of tolerance when matching detected events to ground truth.
SLACK = 1.0
#: Motion this long after the object left makes a long tail.
TAIL = 3.0
#: Bumped when encoding changes, so cached files are rebuilt.
_ENCODING_VERSION = "2"


def cache_dir() -> Path:
    root = os.environ.get("PRIVASTEAD_SCENE_CACHE")
    return Path(root) if root else Path.cwd() / ".cache" / "scenes"


def _scene_source_hash() -> str:
    digest = hashlib.sha256(_ENCODING_VERSION.encode())
    digest.update(code_hash().encode())
    digest.update(encoder_build().encode())
    return digest.hexdigest()[:10]


def encode_scene(
    scene: Scene,
    path: Path,
    *,
    codec: str = "h264",
    gop_seconds: float = 1.0,
    crf: int = 26,
    bitrate: int | None = None,
    preset: str = "veryfast",
    threads: int = 1,
) -> Path:
    """Encode every frame of ``scene`` into an MP4 at ``path`` (camera-like: no B-frames).

    Quality is constant (``crf``) unless ``bitrate`` (bits/s) is given: then it is capped
    like a camera's (VBV at that rate), which smears fine detail in busy scenes (rain,
    noise, foliage) the way real cameras do."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.mp4")
    rate = Fraction(scene.fps).limit_denominator(1000)
    gop = max(1, round(scene.fps * gop_seconds))
    with av.open(str(tmp), "w") as out:
        if codec == "h264":
            stream = out.add_stream("libx264", rate=rate)
            params = f"threads={threads}:keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0"
            if bitrate is not None:
                kbps = bitrate // 1000
                params += f":vbv-maxrate={kbps}:vbv-bufsize={kbps}:bitrate={kbps}"
            stream.options = {"preset": preset, "x264-params": params}
            if bitrate is None:
                stream.options = {**stream.options, "crf": str(crf)}
        elif codec == "hevc":
            stream = out.add_stream("libx265", rate=rate)
            stream.options = {
                "preset": "ultrafast",
                "crf": str(crf),
                "x265-params": f"pools=none:frame-threads=1:keyint={gop}:"
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
    """One scene variant of the suite: a scene, a seed and a rendering."""

    name: str
    seed: int
    width: int = 640
    height: int = 360
    fps: float = 10.0
    duration: float = 60.0
    codec: str = "h264"
    gop: float = 1.0  # seconds between keyframes
    bitrate: int | None = None  # bits/s like a camera; None: constant quality

    def scene(self) -> Scene:
        return make_scene(
            self.name,
            width=self.width,
            height=self.height,
            fps=self.fps,
            seed=self.seed,
            duration=self.duration,
        )

    @property
    def rendering(self) -> str:
        rate = f"{self.bitrate / 1e6:.1f}Mb" if self.bitrate else "crf"
        return f"{self.width}x{self.height}@{self.fps:g} gop{self.gop:g} {rate}"

    @property
    def path(self) -> Path:
        """Where the encoded file is cached: named by scene, seed and rendering, and by a
        hash of the scene code and of what renders it (``encoder_build``)."""
        rate = f"-{self.bitrate}bps" if self.bitrate else ""
        gop = f"-gop{self.gop:g}" if self.gop != 1.0 else ""
        key = (
            f"{self.name}-{self.width}x{self.height}-{self.fps:g}fps-s{self.seed}-"
            f"{self.duration:g}s-{self.codec}{gop}{rate}-{_scene_source_hash()}.mp4"
        )
        return cache_dir() / key

    def video(self) -> Path:
        """The encoded file, rendered on first use and cached."""
        path = self.path
        if not path.exists():
            encode_scene(
                self.scene(), path, codec=self.codec, gop_seconds=self.gop, bitrate=self.bitrate
            )
        return path


def _camera(width: int, height: int, fps: float, share: float = 1.0) -> int:
    return int(camera_bitrate(width, height, fps) * share)


def _cases(
    seeds: Iterable[int], names: Iterable[str] = tuple(SCENES), **rendering: object
) -> tuple[Case, ...]:
    return tuple(Case(n, s, **rendering) for s in seeds for n in names)  # type: ignore[arg-type]


#: Scenes the held-out set renders at 4K (slow to render): one of each kind of phenomenon, and
#: objects.
FOUR_K_SCENES = (
    "downpour",
    "blizzard",
    "lamp",
    "gale",
    "clouds",
    "darknoise",
    "walkers",
    "faint",
    "rainwalk",
    "cars",
)

#: Scenes the tuning set also renders at 4K: weather and wind, which look different when a
#: flake or a leaf covers many more pixels, and people crossing in them.
TUNING_4K_SCENES = (
    "blizzard",
    "gale",
    "snow",
    "foliage",
    "downpour",
    "pond",
    "snowwalk",
    "windwalk",
)

#: Wind at 1024x576, 12.5 fps and 854x480, 15 fps on more seeds: bushes that sway in gusts
#: can be calm for most of the start-up, and only more scenes show how often that fools it.
WIND_SCENES = ("foliage", "gale", "pond", "windwalk")

#: People and cars at night, in lamp light and in storms, at 1280x720, 15 fps, GOP 2 s on
#: more seeds: low-contrast crossings are what recall is lost on (in keyframes idle mode more
#: than at full rate), and only more scenes show how often.
NIGHT_SCENES = ("night", "storm", "nightcars", "lampwalk")

_720P = {
    "width": 1280,
    "height": 720,
    "fps": 15.0,
    "gop": 2.0,
    "bitrate": _camera(1280, 720, 15),
}

_4K = {
    "width": 3840,
    "height": 2160,
    "fps": 30.0,
    "gop": 1.0,
    "duration": 20.0,
    "bitrate": _camera(3840, 2160, 30),
}

#: Low frame rates (a recorder set to save storage, a camera's second stream) are rendered at
#: 640x360 in the tuning set and at 960x540 held out: at 5 fps a walker moves most of its
#: width, and a small car far away several of its lengths, between analysed frames.
TUNING: tuple[Case, ...] = (
    _cases(range(3))
    + _cases(range(6), tuple(SCENES), **_720P)
    + _cases((3,), TUNING_4K_SCENES, **_4K)
    + _cases((0, 1, 2, 4, 5), ("blizzard", "gale"), **_4K)
    + _cases(range(6, 18), WIND_SCENES, width=1024, height=576, fps=12.5, duration=40.0)
    + _cases(range(18, 30), WIND_SCENES, width=854, height=480, fps=15.0, gop=1.0, duration=30.0)
    + _cases(range(6, 12), ("gale", "foliage"), **_4K)
    + _cases(range(30, 36), NIGHT_SCENES, **_720P)
    + _cases(range(36, 42), ("nightcars", "lampwalk"), width=1024, height=576, fps=12.5, gop=1.0)
    + _cases((60,), width=640, height=360, fps=5.0, gop=2.0)
    + _cases((61,), width=640, height=360, fps=7.5, gop=2.0)
)

HELD_OUT: tuple[Case, ...] = (
    _cases(range(100, 103), tuple(SCENES), **_720P)
    + _cases((110,), width=960, height=540, fps=12.5, gop=1.0, duration=40.0)
    + _cases(
        (120,),
        width=1920,
        height=1080,
        fps=25.0,
        gop=2.0,
        duration=30.0,
        bitrate=_camera(1920, 1080, 25, 0.6),
    )
    + _cases((130,), FOUR_K_SCENES, **_4K)
    + _cases((140,), width=960, height=540, fps=6.0, gop=2.0, bitrate=_camera(960, 540, 6))
)

SETS = {"tuning": TUNING, "held-out": HELD_OUT}


@dataclass(frozen=True)
class CaseResult:
    case: Case
    truth: tuple[Interval, ...]
    events: tuple[DetectedEvent, ...]
    found: int  # truth intervals overlapped by an event
    correct: int  # events overlapping a truth interval
    latencies: tuple[float, ...]  # detected start - truth start, per found interval
    #: Correct events whose motion went on TAIL s after an object they cover left.
    tailed: tuple[DetectedEvent, ...] = ()
    frames_decoded: int = 0  # by the analysis (keyframes idle mode decodes fewer)

    @property
    def tails(self) -> int:
        return len(self.tailed)

    @property
    def frames(self) -> int:
        """Frames in the clip."""
        return round(self.case.duration * self.case.fps)

    @property
    def false_alarms(self) -> int:
        return len(self.events) - self.correct

    @property
    def missed(self) -> tuple[Interval, ...]:
        """Ground-truth intervals no event overlapped."""
        return tuple(i for i in self.truth if not any(overlaps(e, i) for e in self.events))

    @property
    def alarms(self) -> tuple[DetectedEvent, ...]:
        """Events that overlapped no ground truth (the false alarms)."""
        return tuple(e for e in self.events if not any(overlaps(e, i) for i in self.truth))


def overlaps(event: DetectedEvent, interval: Interval) -> bool:
    return event.start < interval.end + SLACK and event.end + SLACK > interval.start


def _tailed(event: DetectedEvent, truth: Iterable[Interval], post_roll: float) -> bool:
    """Whether ``event``'s motion went on ``TAIL`` seconds after an object it covers left:
    past the last one, or through a gap between two (see the module's docstring)."""
    covered = sorted((i for i in truth if overlaps(event, i)), key=lambda i: i.start)
    gone = covered[0].end
    for interval in covered[1:]:
        if interval.start - gone > post_roll + TAIL:
            return True
        gone = max(gone, interval.end)
    return event.end > gone + TAIL


def score_case(
    case: Case,
    events: Iterable[DetectedEvent],
    decoded: int = 0,
    post_roll: float = EventSettings().post_roll,
) -> CaseResult:
    truth = case.scene().truth
    evs = tuple(events)
    found = [i for i in truth if any(overlaps(e, i) for e in evs)]
    correct = [e for e in evs if any(overlaps(e, i) for i in truth)]
    latencies = []
    for interval in found:
        first = min(e.start for e in evs if overlaps(e, interval))
        latencies.append(first - interval.start)
    tailed = tuple(e for e in correct if _tailed(e, truth, post_roll))
    return CaseResult(case, truth, evs, len(found), len(correct), tuple(latencies), tailed, decoded)


def run_case(
    case: Case,
    detection: DetectionSettings | None = None,
    events: EventSettings | None = None,
    mode: ScanMode = "full",
    detector: DetectorFactory | None = None,
) -> CaseResult:
    events = events or EventSettings()
    report = scan_file(
        case.video(), detection or DetectionSettings(), events, mode=mode, detector=detector
    )
    return score_case(case, report.events, report.frames_decoded, events.post_roll)


@dataclass(frozen=True)
class Summary:
    truth: int
    found: int
    detected: int
    correct: int
    quiet_hours: float
    false_alarms_quiet: int
    tails: int = 0
    hours: float = 0.0
    #: Share of the quiet scenes' frames that were decoded (below 1 in idle mode: what waking
    #: up for chronic motion, rain or light costs).
    decoded_quiet: float = 1.0

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
    def false_alarms(self) -> int:
        return self.detected - self.correct

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
        false_alarms_quiet=sum(r.false_alarms for r in quiet),
        tails=sum(r.tails for r in rs),
        hours=sum(r.case.duration for r in rs) / 3600.0,
        decoded_quiet=(
            sum(r.frames_decoded for r in quiet) / sum(r.frames for r in quiet) if quiet else 1.0
        ),
    )


__all__ = [
    "HELD_OUT",
    "SETS",
    "SLACK",
    "TAIL",
    "TUNING",
    "Case",
    "CaseResult",
    "Summary",
    "encode_scene",
    "overlaps",
    "run_case",
    "score_case",
    "summarise",
]
