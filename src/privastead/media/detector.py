"""The motion detector: luma frames in, a score, boxes and a motion flag out.

One pass over the full-resolution Y plane reduces it to a grid of block means (about 120 rows,
whatever the resolution); everything else works on that small grid:

1. **Global brightness model.** ``m ~ g * bg + o`` is fitted with medians, and background and
   previous frame are re-based by it, so exposure drift and auto-exposure steps vanish.
2. **Adaptive per-cell threshold** ``max(floor, k * noise)``, where ``noise`` is learned from
   frame-to-frame differences with fast attack and slow release: sensor noise, night noise,
   rain and swaying foliage raise their own cells' thresholds; a passing person cannot (the
   update is clipped).
3. **Global change.** If more than ``global_change_fraction`` of the frame still changes after
   the brightness model (a lamp lighting part of the yard, the IR switch, the camera moved),
   the background re-bases and the detector settles for a moment instead of firing.
4. **Spatial coherence.** Changed cells are grouped into 8-connected blobs; blobs smaller than
   ``min_object_area`` are ignored (rain drops, snowflakes, noise specks).
5. **Temporal persistence.** Blobs are tracked from frame to frame (a box may move about its
   own size per frame); a track is motion once it has lived ``persistence`` seconds over at
   least three analysed frames. Rain and snow rarely survive that; a walker always does.
6. **Background learning** only where nothing is (Frigate's rule): under blobs the background
   follows very slowly, so a person who stops stays "motion" for a long while, and a parked car
   is absorbed after ``absorb_seconds``.

See docs/design/motion-detection.md for the reasoning and the alternatives.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from privastead.media.decode import LumaFrame
from privastead.media.kernels import block_means, compare_grid, global_fit, label_cells, learn_grid
from privastead.media.kernels.blocks import MAX_BLOCK, grid_shape
from privastead.media.settings import DetectionSettings
from privastead.media.zones import cell_weights

#: Analysed frames a track needs besides its age before it counts.
MIN_HITS = 3
#: Seconds an unmatched track is remembered (a blob that drops out for a frame or two).
TRACK_GRACE = 0.5
#: Time constants (seconds) of the noise estimate: rising, falling, and while settling.
NOISE_UP, NOISE_DOWN, SETTLE_BG = 2.0, 30.0, 0.25
#: Noise may rise fast while settling (foliage and rain are learned before watching starts).
SETTLE_NOISE_UP = 0.5
#: Frames kept while settling for the median background.
MAX_SAMPLES = 40
#: Newly changed fraction of the frame, within SUDDEN_WITHIN seconds, that is a global change.
SUDDEN_FRACTION, SUDDEN_WITHIN = 0.15, 0.25
#: Seconds the detector only learns after start-up (noise levels are unknown until then).
STARTUP_SECONDS = 3.0


@dataclass(frozen=True)
class Box:
    """A rectangle in normalised frame coordinates (0..1, origin top-left)."""

    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class MotionResult:
    """What one analysed frame shows.

    ``motion``: a persistent object-sized change; ``score``: the fraction of the watched area
    it covers; ``global_change``: the whole view changed (light, IR, camera moved) and was
    absorbed; ``wake``: something object-sized changed, not yet confirmed (an idle,
    keyframes-only decoder should switch to full rate to confirm it).
    """

    score: float
    boxes: tuple[Box, ...]
    motion: bool
    global_change: bool
    wake: bool = False


NO_MOTION = MotionResult(0.0, (), False, False, False)


def _alpha(dt: float, tau: float) -> float:
    return 1.0 - math.exp(-dt / tau)


class MotionDetector:
    """Stateful detector for one camera stream; feed it every decoded frame in order."""

    def __init__(self, settings: DetectionSettings, width: int, height: int) -> None:
        self.settings = settings
        self._setup(width, height)

    def _setup(self, width: int, height: int) -> None:
        s = self.settings
        self.width, self.height = width, height
        # Blocks of at least 2x2 pixels (when the frame allows): single-pixel cells carry the
        # full sensor noise, 2x2 means already halve it.
        smallest = 2 if height >= 4 * 16 else 1
        self.block = max(smallest, min(MAX_BLOCK, height // s.analysis_height))
        rows, cols = grid_shape(height, width, self.block)
        if rows < 4 or cols < 4:
            raise ValueError(f"frame {width}x{height} is too small to analyse")
        self.rows, self.cols = rows, cols
        self._cell_w = self.block / width
        self._cell_h = self.block / height
        self.weight = cell_weights(rows, cols, self._cell_w, self._cell_h, s.zones, s.masks)
        self._watched = max(1, int(self.weight.sum()))
        self.min_cells = max(3, round(s.min_object_area * rows * cols))
        shape = (rows, cols)
        self._m = np.zeros(shape, np.float32)
        self.background = np.zeros(shape, np.float32)
        self._prev = np.zeros(shape, np.float32)
        self.noise = np.zeros(shape, np.float32)  # variance of frame-to-frame change
        self._changed = np.zeros(shape, np.uint8)
        self._excess = np.zeros(shape, np.float32)
        self._dd = np.zeros(shape, np.float32)
        self._tracks = np.zeros((0, 7), np.float64)  # r0 c0 r1 c1 born last hits
        self._last_t: float | None = None
        self._settle_until = -math.inf
        self._last_count = 0
        self._samples: list[npt.NDArray[np.float32]] = []
        self._result = NO_MOTION
        self.frames_analysed = 0

    def reset(self) -> None:
        """Forget everything learned (e.g. after a reconnect to a moved camera)."""
        self._setup(self.width, self.height)

    def snapshot(self) -> object:
        """A copy of everything learned so far (``media.analysis`` rewinds to it)."""
        return copy.deepcopy({k: v for k, v in vars(self).items() if k != "settings"})

    def restore(self, state: object) -> None:
        """Go back to a ``snapshot`` (which must not be restored twice)."""
        if not isinstance(state, dict):
            raise TypeError("not a MotionDetector snapshot")
        vars(self).update(state)

    def process(self, frame: LumaFrame) -> MotionResult:
        """Analyse ``frame`` (or skip it when within the detect_fps interval)."""
        s = self.settings
        t = frame.pts
        if frame.y.shape != (self.height, self.width):
            self._setup(frame.y.shape[1], frame.y.shape[0])
        if self._last_t is not None:
            if s.detect_fps > 0 and t - self._last_t < 0.9 / s.detect_fps:
                return self._result
            dt = min(max(t - self._last_t, 1e-3), 2.0)
        else:
            dt = 0.0
        self._last_t = t
        self.frames_analysed += 1
        m = block_means(frame.y, self.block, self._m)
        floor, k = s.noise_floor, s.noise_factor
        if dt == 0.0:  # first frame: it is the background; learn the noise for a while
            self._rebase(m, t)
            self._settle_until = t + max(STARTUP_SECONDS, s.settle_seconds)
            self.noise.fill((floor / k) ** 2 * 0.25)
            self._result = NO_MOTION
            return NO_MOTION
        g, o = global_fit(m, self.background, self.weight)
        count = compare_grid(
            m,
            self.background,
            self._prev,
            self.noise,
            self.weight,
            g,
            o,
            k,
            floor,
            self._changed,
            self._excess,
            self._dd,
        )
        jump = count - self._last_count
        self._last_count = count
        # A global change: much of the view differs, or a large part changed within a
        # fraction of a second (a lamp lighting a pool of the yard): no object appears that
        # fast. Between keyframes a second apart a close person can, so the jump rule only
        # applies to closely spaced frames.
        if count > s.global_change_fraction * self._watched or (
            dt <= SUDDEN_WITHIN and jump > SUDDEN_FRACTION * self._watched
        ):
            self._rebase(m, t)
            # wake: an idle decoder should relearn at full rate, and confirm nothing hides
            self._result = MotionResult(0.0, (), False, True, True)
            return self._result
        if t < self._settle_until:
            self._changed.fill(0)
            learn_grid(
                m,
                self.background,
                self.noise,
                self._dd,
                self._changed,
                _alpha(dt, SETTLE_BG),
                0.0,
                _alpha(dt, SETTLE_NOISE_UP),
                _alpha(dt, NOISE_DOWN),
                floor,
            )
            if len(self._samples) < MAX_SAMPLES:
                self._samples.append(m.copy())
            self._result = NO_MOTION
            return NO_MOTION
        if self._samples:
            # End of settling: the per-cell median of what was seen is the background, so
            # someone who walked through meanwhile leaves no ghost behind.
            np.copyto(self.background, np.median(np.stack(self._samples), axis=0))
            self._samples = []
        labels, stats = label_cells(self._changed, self._excess)
        big = stats[:, 0] >= self.min_cells
        keep = np.zeros(len(stats) + 1, np.uint8)
        keep[1:] = big
        active = np.ascontiguousarray(keep[labels])
        learn_grid(
            m,
            self.background,
            self.noise,
            self._dd,
            active,
            _alpha(dt, s.background_seconds),
            _alpha(dt, s.absorb_seconds),
            _alpha(dt, NOISE_UP),
            _alpha(dt, NOISE_DOWN),
            floor,
        )
        blobs = stats[big]
        confirmed = self._track(blobs, t)
        self._result = self._make_result(blobs, confirmed, wake=bool(len(blobs)))
        return self._result

    def _rebase(self, m: npt.NDArray[np.float32], t: float) -> None:
        self._samples = [m.copy()]
        np.copyto(self.background, m)
        np.copyto(self._prev, m)
        self._tracks = self._tracks[:0]
        self._settle_until = t + self.settings.settle_seconds

    def _track(self, blobs: npt.NDArray[np.float64], t: float) -> npt.NDArray[np.bool_]:
        """Match blobs to tracks by overlap of boxes grown by about their own size."""
        tracks = self._tracks
        tracks = tracks[t - tracks[:, 5] <= TRACK_GRACE]
        n = len(blobs)
        if n == 0:
            self._tracks = tracks
            return np.zeros(0, bool)
        born = np.full(n, t)
        hits = np.ones(n)
        if len(tracks):
            size = np.maximum(tracks[:, 2] - tracks[:, 0], tracks[:, 3] - tracks[:, 1])
            grow = 1.0 + 0.75 * size
            r0 = (tracks[:, 0] - grow)[None, :]
            c0 = (tracks[:, 1] - grow)[None, :]
            r1 = (tracks[:, 2] + grow)[None, :]
            c1 = (tracks[:, 3] + grow)[None, :]
            hit = (
                (blobs[:, 1, None] < r1)
                & (blobs[:, 3, None] > r0)
                & (blobs[:, 2, None] < c1)
                & (blobs[:, 4, None] > c0)
            )
            matched = hit.any(axis=1)
            born = np.where(matched, np.where(hit, tracks[None, :, 4], np.inf).min(axis=1), t)
            hits = np.where(matched, np.where(hit, tracks[None, :, 6], 0).max(axis=1) + 1, 1)
            tracks = tracks[~hit.any(axis=0)]  # unmatched tracks wait out their grace
        new = np.column_stack([blobs[:, 1:5], born, np.full(n, t), hits])
        self._tracks = np.concatenate([tracks, new])
        confirmed: npt.NDArray[np.bool_] = (hits >= MIN_HITS) & (
            t - born >= self.settings.persistence - 1e-9
        )
        return confirmed

    def _make_result(
        self, blobs: npt.NDArray[np.float64], confirmed: npt.NDArray[np.bool_], wake: bool
    ) -> MotionResult:
        if not confirmed.any():
            return MotionResult(0.0, (), False, False, wake)
        chosen = blobs[confirmed]
        score = float(chosen[:, 0].sum()) / self._watched
        boxes = tuple(
            Box(
                x=float(c0 * self._cell_w),
                y=float(r0 * self._cell_h),
                w=float((c1 - c0) * self._cell_w),
                h=float((r1 - r0) * self._cell_h),
            )
            for _, r0, c0, r1, c1, _ in chosen
        )
        return MotionResult(min(1.0, score), boxes, True, False, wake)


__all__ = ["NO_MOTION", "Box", "MotionDetector", "MotionResult"]
