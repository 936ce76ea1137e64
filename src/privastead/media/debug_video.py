"""A debug video of what the detector saw: ``privastead-hub detect --debug-video FILE``.

One picture per analysed frame, the camera's own luma (scaled down to at most 640 pixels
wide) with the detector's view painted over it:

- cells over their threshold tinted red, cells whose change was taken for light tinted blue,
  areas of chronic motion (foliage, water: activity or spread) tinted green;
- every object-sized blob boxed: white for an object (motion), grey for a blob that does not
  count (yet): not coherent, not moving, in a chronic area;
- a white border while an event runs, a black one for a second after a global change.

Read it next to the ``--explain`` log, which says in words why each blob counted or not.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from privastead.media.analysis import Detector
from privastead.media.decode import LumaFrame
from privastead.media.detector import MotionDetector, MotionResult
from privastead.media.events import Event, EventEnded, EventStarted
from privastead.media.kernels import grid as G
from privastead.media.verdicts import FrameExplain

#: Widest picture written (pixels).
MAX_WIDTH = 640


class DebugVideo:
    """An ``analysis.Observer`` that writes the annotated frames to an MP4 file."""

    def __init__(self, path: Path, fps: float = 10.0) -> None:
        self.path = path
        self.fps = fps
        self._out: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._count = 0
        self._event = False
        self._global_until = -1.0

    def _open(self, width: int, height: int) -> av.VideoStream:
        self._out = av.open(str(self.path), "w")
        stream = self._out.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(100))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        self._stream = stream
        return stream

    def looked_again(self, at: float, result: MotionResult, explain: FrameExplain | None) -> None:
        """The start-up's frames looked at again: their pictures are gone, and the events
        they start are drawn from the frame that decides them."""

    def analysed(self, frame: LumaFrame, result: MotionResult, detector: Detector) -> None:
        if not isinstance(detector, MotionDetector) or detector.explain is None:
            return
        if detector.explain.t != frame.pts:
            return  # skipped by detect_fps
        if detector.explain.note.startswith("global change"):
            self._global_until = frame.pts + 1.0
        step = max(1, -(-detector.width // MAX_WIDTH))
        y = np.ascontiguousarray(frame.y[::step, ::step])
        h, w = (y.shape[0] // 2) * 2, (y.shape[1] // 2) * 2
        y = y[:h, :w].copy()
        stream = self._stream or self._open(w, h)
        u = np.full((h // 2, w // 2), 128, np.uint8)
        v = np.full((h // 2, w // 2), 128, np.uint8)
        self._paint_cells(detector, step, u, v)
        self._draw_boxes(detector, step, y)
        self._border(y, frame.pts)
        picture = av.VideoFrame(w, h, "yuv420p")
        for plane, data in zip(picture.planes, (y, u, v), strict=True):
            rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
            rows[:, : data.shape[1]] = data
        picture.pts = self._count
        picture.time_base = 1 / Fraction(self.fps).limit_denominator(100)
        self._count += 1
        assert self._out is not None
        for packet in stream.encode(picture):
            self._out.mux(packet)

    @staticmethod
    def _paint_cells(
        det: MotionDetector, step: int, u: npt.NDArray[np.uint8], v: npt.NDArray[np.uint8]
    ) -> None:
        # One cell is det.block pixels, i.e. det.block / step / 2 chroma samples.
        size = det.block / step / 2
        rows = np.minimum((np.arange(u.shape[0]) / size).astype(int), det.rows - 1)
        cols = np.minimum((np.arange(u.shape[1]) / size).astype(int), det.cols - 1)
        cell = np.ix_(rows, cols)
        chronic = (det.f[G.ACTIVITY] >= 0.1)[cell]
        changed = (det.u[G.CHANGED] != 0)[cell]
        lit = (det.u[G.LIGHT] != 0)[cell]
        u[chronic], v[chronic] = 90, 90  # green
        u[lit], v[lit] = 200, 110  # blue
        u[changed], v[changed] = 100, 210  # red

    @staticmethod
    def _draw_boxes(det: MotionDetector, step: int, y: npt.NDArray[np.uint8]) -> None:
        info = det.explain
        blobs = None if info is None else info.blobs
        if blobs is None:
            return
        scale = det.block / step
        h, w = y.shape
        for i in range(len(blobs.cells)):
            if not blobs.big[i]:
                continue
            r0, c0, r1, c1 = (round(float(b) * scale) for b in blobs.boxes[i])
            r1, c1 = min(h - 1, max(r0, r1 - 1)), min(w - 1, max(c0, c1 - 1))
            level = 255 if blobs.motion[i] else 150
            y[r0, c0 : c1 + 1] = level
            y[r1, c0 : c1 + 1] = level
            y[r0 : r1 + 1, c0] = level
            y[r0 : r1 + 1, c1] = level

    def _border(self, y: npt.NDArray[np.uint8], t: float) -> None:
        if self._event or t < self._global_until:
            y[:3, :] = 255 if self._event else 30
            y[-3:, :] = y[:3, :1]
            y[:, :3] = y[:1, :1]
            y[:, -3:] = y[:1, :1]

    def events(self, changes: list[Event], frame_time: float) -> None:
        for change in changes:
            if isinstance(change, EventStarted):
                self._event = True
            elif isinstance(change, EventEnded):
                self._event = False

    def rewound(self, to: float, at: float) -> None:
        """Idle mode replays from an earlier keyframe: the video shows the replay as it
        happened (the pictures step back in time)."""

    def close(self) -> None:
        if self._out is None or self._stream is None:
            return
        for packet in self._stream.encode(None):
            self._out.mux(packet)
        self._out.close()
        self._out = None


__all__ = ["DebugVideo"]
