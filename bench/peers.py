"""Peer motion detectors re-implemented from their documented behaviour (peers.md §2), for
comparison in the same run: a Frigate-style pipeline and OpenCV MOG2. Both take our LumaFrame
and return our MotionResult, so the same event tracker and scoring apply."""

from __future__ import annotations

import copy

import cv2
import numpy as np

from privastead.media.decode import LumaFrame
from privastead.media.detector import Box, MotionResult


class FrigateStyle:
    """Frigate's ImprovedMotionDetector as documented: 100 px tall nearest-neighbour resize,
    3x3 Gaussian blur, absdiff against a running average (alpha 0.01, 0.2 while calibrating),
    threshold 30, one dilation, contours > 10 px, lightning threshold 0.8, background updated
    when there is no motion or after 10 frames of motion. Analyses ``fps`` frames per second
    (Frigate's default detect fps is 5)."""

    def __init__(self, fps: float = 5.0) -> None:
        self.fps = fps
        self.avg: np.ndarray | None = None
        self.last_t: float | None = None
        self.calibrating = True
        self.motion_frames = 0
        self.result = MotionResult(0.0, (), False, False)
        self.frames_analysed = 0

    def snapshot(self) -> object:
        return copy.deepcopy(vars(self))

    def restore(self, state: object) -> None:
        vars(self).update(state)  # type: ignore[call-overload]

    def process(self, frame: LumaFrame) -> MotionResult:
        if self.last_t is not None and frame.pts - self.last_t < 0.9 / self.fps:
            return self.result
        self.last_t = frame.pts
        self.frames_analysed += 1
        h, w = frame.y.shape
        small_w = round(w * 100 / h)
        small = cv2.resize(frame.y, (small_w, 100), interpolation=cv2.INTER_NEAREST)
        small = cv2.GaussianBlur(small, (3, 3), 1)
        if self.avg is None:
            self.avg = small.astype(np.float32)
            return self.result
        delta = cv2.absdiff(small, cv2.convertScaleAbs(self.avg))
        _, thresh = cv2.threshold(delta, 30, 255, cv2.THRESH_BINARY)
        thresh = cv2.dilate(thresh, None, iterations=1)
        contours, _ = cv2.findContours(thresh, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes = []
        area = 0.0
        for c in contours:
            a = cv2.contourArea(c)
            if a > 10:
                x, y, bw, bh = cv2.boundingRect(c)
                boxes.append(Box(x / small_w, y / 100, bw / small_w, bh / 100))
                area += a
        pct = area / (small_w * 100)
        if pct > 0.8:
            self.calibrating = True
        if self.calibrating and pct < 0.05 and len(boxes) <= 4:
            self.calibrating = False
        motion = bool(boxes) and not self.calibrating
        self.motion_frames = self.motion_frames + 1 if boxes else 0
        if not boxes or self.motion_frames >= 10 or self.calibrating:
            cv2.accumulateWeighted(small, self.avg, 0.2 if self.calibrating else 0.01)
        self.result = MotionResult(
            min(1.0, pct), tuple(boxes) if motion else (), motion, self.calibrating
        )
        return self.result


class Mog2:
    """OpenCV MOG2 (history 500, varThreshold 16, no shadows) on a 180 px tall frame at
    ``fps``, opened (erode then dilate), motion when a contour covers > 0.05 % of the frame."""

    def __init__(self, fps: float = 5.0) -> None:
        self.fps = fps
        self.mog = cv2.createBackgroundSubtractorMOG2(
            history=500, varThreshold=16, detectShadows=False
        )
        self.last_t: float | None = None
        self.kernel = np.ones((3, 3), np.uint8)
        self.result = MotionResult(0.0, (), False, False)
        self.frames_analysed = 0

    def snapshot(self) -> object:
        # OpenCV keeps the mixture model inside a C++ object that cannot be copied.
        raise NotImplementedError("MOG2 cannot rewind: run it with mode='full'")

    def restore(self, state: object) -> None:
        raise NotImplementedError("MOG2 cannot rewind: run it with mode='full'")

    def process(self, frame: LumaFrame) -> MotionResult:
        if self.last_t is not None and frame.pts - self.last_t < 0.9 / self.fps:
            return self.result
        first = self.last_t is None
        self.last_t = frame.pts
        self.frames_analysed += 1
        h, w = frame.y.shape
        sw = round(w * 180 / h)
        small = cv2.resize(frame.y, (sw, 180), interpolation=cv2.INTER_AREA)
        fg = self.mog.apply(small)
        if first:
            return self.result
        fg = cv2.dilate(cv2.erode(fg, self.kernel), self.kernel, iterations=2)
        contours, _ = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes = []
        area = 0.0
        for c in contours:
            a = cv2.contourArea(c)
            if a > 0.0005 * sw * 180:
                x, y, bw, bh = cv2.boundingRect(c)
                boxes.append(Box(x / sw, y / 180, bw / sw, bh / 180))
                area += a
        self.result = MotionResult(min(1.0, area / (sw * 180)), tuple(boxes), bool(boxes), False)
        return self.result
