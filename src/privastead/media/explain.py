"""What the detector saw, in words: the ``--explain`` output of ``privastead-hub detect``.

An ``Explainer`` is an ``analysis.Observer``. For each analysed frame where something
object-sized happened it writes the blobs over threshold with their verdicts (object, light
change, too small, not coherent, chronic area); it writes each global change, each rewind of
the idle mode, and every event start and end with its reason. Quiet stretches collapse into
one line. At the end it summarises where motion was chronic, so an owner can see which areas
to mask or zone, and which blobs came closest to counting, to set the sensitivity.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from privastead.media.analysis import Detector
from privastead.media.decode import LumaFrame
from privastead.media.detector import MotionDetector, MotionResult
from privastead.media.events import Event, EventEnded, EventStarted
from privastead.media.kernels import grid as G
from privastead.media.verdicts import FrameExplain


def _box(detector: MotionDetector, r0: float, c0: float, r1: float, c1: float) -> str:
    cw, ch = detector.block / detector.width, detector.block / detector.height
    return f"[x {c0 * cw:.2f} y {r0 * ch:.2f} w {(c1 - c0) * cw:.2f} h {(r1 - r0) * ch:.2f}]"


#: A frame whose light model (gain, offset) is this far from (1, 0) is worth a line of its own.
LIGHT_STEP_GAIN, LIGHT_STEP_OFFSET = 0.08, 8.0


def _light_step(gain: tuple[float, float]) -> bool:
    g, o = gain
    return abs(g - 1.0) > LIGHT_STEP_GAIN or abs(o) > LIGHT_STEP_OFFSET


class Explainer:
    """Writes the detector's view of a stream, line by line, to ``write``."""

    def __init__(self, write: Callable[[str], None], *, origin: float = 0.0) -> None:
        self.write = write
        self.origin = origin
        self.detector: MotionDetector | None = None
        self._quiet_since: float | None = None
        self._quiet_frames = 0
        self._note = ""
        self._again = False  # writing the start-up's frames, looked at again
        self._live: float | None = None  # time of the newest frame written as it came

    def _t(self, t: float) -> str:
        return f"{t - self.origin:8.2f} s"

    def _flush_quiet(self, until: float) -> None:
        if self._quiet_since is not None and self._quiet_frames:
            what = self._note or "nothing object-sized"
            self.write(
                f"{self._t(self._quiet_since)} .. {until - self.origin:.2f} s: {what} "
                f"({self._quiet_frames} frames)"
            )
        self._quiet_since = None
        self._quiet_frames = 0

    def analysed(self, frame: LumaFrame, result: MotionResult, detector: Detector) -> None:
        if not isinstance(detector, MotionDetector) or detector.explain is None:
            return
        self.detector = detector
        if detector.explain.t != frame.pts:
            return  # skipped by detect_fps: nothing new
        self._frame(detector.explain)

    def looked_again(self, at: float, result: MotionResult, explain: FrameExplain | None) -> None:
        if explain is None or self.detector is None:
            return
        if not self._again:
            # The start-up ends with the newest frame that came; ``at`` is the first of the
            # start-up's frames, now looked at again.
            end = at if self._live is None else self._live
            self._flush_quiet(end)
            self.write(
                f"{self._t(end)}  start-up over (the scene is known): its frames from "
                f"{at - self.origin:.2f} s are looked at again, marked '^'"
            )
        self._again = True
        self._frame(explain, again=True)

    def _frame(self, info: FrameExplain, *, again: bool = False) -> None:
        """One analysed frame (``again``: one of the start-up's, looked at again, marked
        ``^``): a line per object-sized blob, quiet stretches collapsed."""
        detector = self.detector
        assert detector is not None
        mark = "^" if again else " "
        if not again:
            self._live = info.t
            if self._again:
                self._flush_quiet(info.t)
                self._again = False
        blobs = info.blobs
        shown = [] if blobs is None else [i for i in range(len(blobs.cells)) if blobs.big[i]]
        if info.note.startswith("global change"):
            self._flush_quiet(info.t)
            self.write(f"{self._t(info.t)}  {info.note}: background re-based, settling")
            return
        if not shown and _light_step(info.gain):
            self._flush_quiet(info.t)
            g, o = info.gain
            self.write(
                f"{self._t(info.t)}  light changed over the whole view (x{g:.2f}{o:+.1f}): "
                f"explained by the light model, {info.count} cells over threshold"
            )
            return
        if not shown:
            if self._quiet_since is None:
                self._quiet_since = info.t
            self._quiet_frames += 1
            self._note = info.note
            return
        self._flush_quiet(info.t)
        assert blobs is not None
        g, o = info.gain
        head = (
            f"{self._t(info.t)}{mark} {info.count} cells over threshold, light model "
            f"x{g:.2f}{o:+.1f}"
        )
        if info.lit:
            head += f", {info.lit} cells changed by light or focus (texture kept) re-based"
        if info.rows:
            head += f", {info.rows} rows banded by a mains light re-lit"
        small = int((~blobs.big).sum())
        self.write(head + (f", {small} small blobs ignored" if small else ""))
        for i in shown:
            box = _box(detector, *blobs.boxes[i])
            self.write(f"             {blobs.reason(i):52s} {box} {blobs.cells[i]:.0f} cells")

    def events(self, changes: list[Event], frame_time: float) -> None:
        self._flush_quiet(frame_time)
        for change in changes:
            if isinstance(change, EventStarted):
                self.write(
                    f"{self._t(frame_time)}  EVENT START (onset {change.at - self.origin:.2f} s): "
                    f"an object has moved for the persistence time, score {change.score:.4f}"
                )
            elif isinstance(change, EventEnded):
                self.write(
                    f"{self._t(frame_time)}  EVENT END at {change.at - self.origin:.2f} s: "
                    f"no motion since {change.last_motion - self.origin:.2f} s (post-roll)"
                )

    def rewound(self, to: float, at: float) -> None:
        self._flush_quiet(at)
        self.write(
            f"{self._t(at)}  idle mode: a keyframe showed a change; rewinding to "
            f"{to - self.origin:.2f} s (the keyframe before, or the last frame looked at) and "
            "decoding every frame since"
        )

    def summary(self, until: float) -> None:
        """Where motion is chronic (candidates for a mask), from the detector's activity map."""
        self._flush_quiet(until)
        detector = self.detector
        if detector is None:
            return
        act = detector.f[G.ACTIVITY]
        busy = act >= 0.1
        share = float(busy.mean())
        if not busy.any():
            self.write("chronic motion: none (no area was flagged often)")
            return
        rows, cols = np.nonzero(busy)
        box = _box(detector, rows.min(), cols.min(), rows.max() + 1, cols.max() + 1)
        self.write(
            f"chronic motion (flagged >= 10 % of the time lately): {100 * share:.1f} % of the "
            f"view, within {box}; motion there only counts when it goes somewhere. A mask "
            "over such an area (foliage, water, a flag) removes it altogether."
        )


__all__ = ["Explainer"]
