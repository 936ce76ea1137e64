"""`privastead-hub detect VIDEO`: run the hub's motion detection on a video file.

It runs the same analysis pipeline as ``privastead-hub run`` (decoder, detector, event
tracker, and with ``--mode keyframes`` the idle mode). Prints one line per event, as JSON
with ``--json``::

    {"start": 4.9, "end": 11.3, "peak_score": 0.0123, "boxes": [[x, y, w, h], ...]}

Times are seconds from the start of the file (``end`` is the last motion, not the clip's end);
boxes are normalised 0..1 (x, y from the top left) and come from the frame with the peak
score. Use it to tune a camera's ``[cameras.detection]`` and ``[cameras.events]`` settings on
its own recorded footage:

``--explain`` prints what the detector saw, frame by frame: the cells over threshold, every
object-sized blob with its box and why it counted or not (object; light change; not
coherent, e.g. rain; in a chronic-motion area and not moving, e.g. foliage), the rows re-lit
under a light on mains power that bands them, global changes (a lamp, the IR switch, the
camera knocked), and why each event started and ended; at the end, where motion was chronic
(areas to mask).
``--debug-video FILE`` writes the same as pictures: changed cells red, light changes blue,
chronic areas green, blobs boxed (white: an object), a white border during events.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from privastead import configfile
from privastead.errors import ConfigError, MediaError
from privastead.media.analysis import Observer, Observers
from privastead.media.debug_video import DebugVideo
from privastead.media.explain import Explainer
from privastead.media.scan import scan_file
from privastead.media.settings import DetectionSettings, EventSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.add_argument("video", type=Path, help="video file (MP4, MKV, raw .h264/.h265 ...)")
    parser.add_argument("--json", action="store_true", help="one JSON object per event")
    parser.add_argument(
        "--config", type=Path, help="hub.toml: take [cameras.detection]/[cameras.events] from it"
    )
    parser.add_argument("--camera", help="which camera of --config (default: the first)")
    parser.add_argument(
        "--mode",
        choices=["full", "keyframes"],
        default="full",
        help="full: every frame; keyframes: the hub's idle mode (keyframes "
        "until something changes, then full rate)",
    )
    tune = parser.add_argument_group("sensitivity (override the config)")
    tune.add_argument("--sensitivity", type=float, help="0..1 (default 0.5)")
    tune.add_argument(
        "--min-object-area",
        type=float,
        help="smallest object, fraction of the frame area (default 0.00015)",
    )
    tune.add_argument("--detect-fps", type=float, help="frames analysed per second (0: all)")
    tune.add_argument("--persistence", type=float, help="seconds of motion before an event")
    tune.add_argument("--post-roll", type=float, help="seconds of quiet that end an event")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="print what the detector saw: blobs, why they counted or not, global changes, "
        "why events started and ended, and where motion is chronic (to stderr with --json)",
    )
    parser.add_argument(
        "--debug-video",
        type=Path,
        metavar="FILE",
        help="write an annotated MP4: cells over threshold (red), light changes (blue), "
        "chronic motion (green), blobs boxed (white: object), white border during events",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress line on stderr")


def _from_config(path: Path, camera: str | None) -> tuple[DetectionSettings, EventSettings]:
    """Read the camera's detection/events tables from a hub.toml without the hub's model,
    so this command works on any config that has them (strictly validated)."""
    from privastead.compat import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    cameras: Any = data.get("cameras", [])
    if isinstance(cameras, dict):
        cameras = [dict(v, name=k) for k, v in cameras.items()]
    if not cameras:
        raise ConfigError(f"{path}: no [[cameras]] in this config")
    chosen = (
        cameras[0]
        if camera is None
        else next((c for c in cameras if c.get("name") == camera), None)
    )
    if chosen is None:
        names = ", ".join(str(c.get("name")) for c in cameras)
        raise ConfigError(f"{path}: no camera named {camera!r} (cameras: {names})")
    text = path.read_text(encoding="utf-8")
    det = configfile.from_mapping(
        chosen.get("detection", {}), DetectionSettings, source=str(path), text=text
    )
    ev = configfile.from_mapping(
        chosen.get("events", {}), EventSettings, source=str(path), text=text
    )
    return det, ev


def _settings(args: argparse.Namespace) -> tuple[DetectionSettings, EventSettings]:
    """The camera's settings from --config (or the defaults), with the options on top."""
    detection, events = DetectionSettings(), EventSettings()
    if args.config is not None:
        detection, events = _from_config(args.config, args.camera)
    detection_options = (
        ("sensitivity", args.sensitivity),
        ("min_object_area", args.min_object_area),
        ("detect_fps", args.detect_fps),
    )
    event_options = (("persistence", args.persistence), ("post_roll", args.post_roll))
    try:
        detection = dataclasses.replace(
            detection, **{k: v for k, v in detection_options if v is not None}
        )
        events = dataclasses.replace(events, **{k: v for k, v in event_options if v is not None})
    except ValueError as exc:
        raise ConfigError(f"bad option: {exc}") from None
    return detection, events


def run(args: argparse.Namespace) -> int:
    try:
        return _detect(args)
    except BrokenPipeError:
        # ``detect --explain | head``: the reader has seen enough; that is no error. Later
        # writes (the interpreter's final flush) go nowhere instead of failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _detect(args: argparse.Namespace) -> int:
    detection, events = _settings(args)
    if not args.video.exists():
        raise MediaError(f"{args.video}: no such file")

    def progress(at: float, total: float) -> None:
        share = f" ({100 * at / total:.0f} %)" if total else ""
        print(f"\r{args.video.name}: {at:.0f} s{share}", end="", file=sys.stderr, flush=True)

    explain_out = sys.stderr if args.json else sys.stdout
    observers: list[Observer] = []
    explainer = None
    if args.explain:
        explainer = Explainer(lambda line: print(line, file=explain_out, flush=True))
        observers.append(explainer)
    video = None
    if args.debug_video is not None:
        video = DebugVideo(args.debug_video, fps=detection.detect_fps or 10.0)
        observers.append(video)
    try:
        report = scan_file(
            args.video,
            detection,
            events,
            mode=args.mode,
            progress=None if args.quiet or args.explain else progress,
            observer=Observers(observers) if observers else None,
        )
    finally:
        if video is not None:
            video.close()
    if explainer is not None:
        explainer.summary(report.duration)
    if not args.quiet:
        print(
            f"\r{args.video.name}: {report.duration:.1f} s, {len(report.events)} events",
            file=sys.stderr,
        )
        if video is not None:
            print(f"debug video: {args.debug_video}", file=sys.stderr)
    for event in report.events:
        if args.json:
            print(json.dumps(event.as_json()))
        else:
            boxes = " ".join(f"[{b.x:.2f},{b.y:.2f} {b.w:.2f}x{b.h:.2f}]" for b in event.boxes)
            print(f"{event.start:8.2f}s - {event.end:8.2f}s  score {event.peak_score:.4f}  {boxes}")
    return 0


__all__ = ["add_arguments", "run"]
