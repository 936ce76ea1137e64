"""The motion detector: luma frames in, a score, boxes and a motion flag out.

One pass over the full-resolution Y plane reduces it to a grid of block means (about 120 rows,
whatever the resolution); everything else works on that small grid. Each step answers one
kind of thing that changes pixels without being an object:

1. **Light over the whole view** (exposure drift, auto exposure, a lamp lighting everything,
   the IR switch): ``m ~ g * bg + o`` is fitted with medians and background and previous frame
   are re-based by it; a row that the model leaves lit differently as a whole (the bands of a
   mains light under a rolling shutter) is re-based by its own gain (``kernels.rows``). What
   the fit cannot explain, if it covers much of the view or appeared within a fraction of a
   second, is a *global change*: re-base, learn for a moment. Where
   the highlights clip as the exposure rises, a block brightens less than the model says;
   flagged cells whose shortfall their clipped pixels explain are light (``kernels.clipping``).
2. **Noise and chronic motion** (sensor noise, night noise, foliage, water, flags): a cell is
   flagged when it strays from its background by more than ``max(floor, k * noise,
   kb * reach)``. ``noise`` is learned from frame-to-frame differences; ``reach`` is an
   envelope of how far the cell strays *while it fluctuates* (a standing person strays but
   stays steady, so it teaches nothing; sun glints on water are rare but learned within a few
   glints). Both learn fast and forget slowly, nowhere under confirmed objects.
3. **Rain and snow** (many small, short-lived, fast things): flagged cells form 8-connected
   blobs; blobs under ``min_object_area`` are ignored, and a blob is *coherent* only if most of
   its cells were flagged (nearby) in the previous analysed frame too. An object overlaps
   itself from frame to frame; streaks and flakes do not.
4. **Local light** (a lamp's pool, headlights sweeping, cloud shadows, a flake right in front of
   the lens): over a textured blob, the frame still correlates with the background (the same
   texture, brighter or darker); over an object it does not. **Focus** (the IR switch
   refocusing, a varifocal lens hunting, dew): a blur shows in block means only along edges,
   where each cell moves towards the mean of its neighbours by one share over the
   neighbourhood (or away from it, as the view sharpens again over a background learned
   soft); an object's change does not follow the background's edges. Such cells are
   absorbed at once.
5. **Objects**: blobs are tracked (``media.tracks``); a track is motion once it has been
   coherent for a few frames over ``persistence`` seconds and has either moved or appeared
   where nothing moves chronically (the *activity* map: how often each cell was flagged lately).
   In a chronic area it must also have been seen outside it, and what was born as the light
   over the whole view stepped or hunted (auto exposure) must carry its centre like chronic
   motion; what was born in the start-up must carry its centre too.
6. **Background learning** only where nothing is (Frigate's rule): under blobs the background
   follows very slowly, so a person who stops stays motion for a long while, and a parked car
   is absorbed after ``absorb_seconds``.

``explain`` holds, after each analysed frame, what the detector saw (for ``privastead-hub
detect --explain`` and the debug video). See docs/design/motion-detection.md.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from privastead.media.decode import LumaFrame
from privastead.media.kernels import (
    block_means,
    clipped_cells,
    compare_grid,
    global_fit,
    label_cells,
    learn_grid,
    light_cells,
    row_gains,
)
from privastead.media.kernels import grid as G
from privastead.media.kernels.blocks import MAX_BLOCK, grid_shape
from privastead.media.settings import DetectionSettings
from privastead.media.tracks import Tracks
from privastead.media.verdicts import Blobs, FrameExplain, judge
from privastead.media.view import LEAST_SHARE, view_move
from privastead.media.zones import cell_weights

F32 = npt.NDArray[np.float32]

#: Time constants (seconds) of the noise estimate: rising, falling, and while settling.
NOISE_UP, NOISE_DOWN, SETTLE_BG = 2.0, 30.0, 0.25
#: Noise and reach may rise fast while settling (foliage and rain are learned before
#: watching starts).
SETTLE_UP = 0.5
#: Reach: rising and falling time constants (seconds); how much of the frame-to-frame change
#: may count (``kappa``: a deviation counts up to kappa * |dd|).
REACH_UP, REACH_DOWN, KAPPA = 0.5, 30.0, 4.0
#: A median absolute deviation times this is the standard deviation of normal noise.
NORMAL_MAD = 1.4826
#: A cell's deviation from its median while settling is the light's, not its noise, where
#: bringing each frame to the median's light leaves less than this share of it.
LIGHT_EXPLAINS = 0.5
#: Activity (share of time a cell was flagged) follows with this time constant (seconds).
ACTIVITY_TAU, SETTLE_ACTIVITY_TAU = 20.0, 2.0
#: Cells changed by light follow the new light with this time constant (seconds): fast, yet
#: a cell taken for light by mistake for one frame does not become background.
LIGHT_TAU = 0.3
#: Seconds a candidate blob is protected from the background before it becomes an object.
YOUNG = 2.0
#: Newly changed fraction of the frame, within SUDDEN_WITHIN seconds, that is a global change.
SUDDEN_FRACTION, SUDDEN_WITHIN = 0.15, 0.25
#: Whether the view moved (``media.view``) is asked for VIEW_SECONDS after the flagged cells
#: grew by this share of the view from one analysed frame to the next: a knock is sudden, and
#: asking in every busy frame of rain or wind would cost a millisecond each.
VIEW_SHARE, VIEW_SECONDS = LEAST_SHARE, 0.5
#: Seconds the detector only learns after start-up (noise levels are unknown until then,
#: and what moves chronically: a gust takes a few seconds to sway every bush; with 3 s,
#: gusty foliage, rippling water and near-lens flakes not yet known as chronic started events
#: as the start-up's frames were looked at again).
STARTUP_SECONDS = 6.0
#: Frames kept while settling for the median background (and looked at again after the
#: start-up): the start-up at 30 analysed frames a second. The grid is at most 120 x 213
#: cells, 100 KiB a frame: 6 MiB at the default 10 analysed frames a second, 18 MiB at 30,
#: and about five times that while the start-up's statistics are computed (the frames, their
#: stack, two deviations and a temporary), for a moment once per connection.
MAX_SAMPLES = round(STARTUP_SECONDS * 30)
#: The light over the whole view *steps* when the global model changes dark or bright
#: textures by more than the noise floor within this many seconds (an auto-exposure ramp).
LIGHT_STEP_SECONDS = 0.5


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
    keyframes-only decoder should switch to full rate to confirm it); ``since``: when the
    oldest object in view was first seen (an object is confirmed some frames after it
    appeared; events start at its appearance).
    """

    score: float
    boxes: tuple[Box, ...]
    motion: bool
    global_change: bool
    wake: bool = False
    since: float | None = None


NO_MOTION = MotionResult(0.0, (), False, False, False)
GLOBAL_CHANGE = MotionResult(0.0, (), False, True, True)


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
        self.f = np.zeros((G.F_PLANES, rows, cols), np.float32)
        self.u = np.zeros((G.U_PLANES, rows, cols), np.uint8)
        self.u[G.WEIGHT] = cell_weights(rows, cols, self._cell_w, self._cell_h, s.zones, s.masks)
        self._watched = max(1, int(self.u[G.WEIGHT].sum()))
        self.min_cells = max(3, round(s.min_object_area * rows * cols))
        self._m = np.zeros((rows, cols), np.float32)
        self._row_gains = np.ones(rows, np.float32)
        self._rates = np.zeros(G.RATES, np.float64)
        self.tracks = Tracks((rows, cols))
        self._last_t: float | None = None
        self._due = -math.inf  # when the next frame is to be analysed (detect_fps)
        self._settle_until = -math.inf
        self._last_count = 0
        self._look_at_view_until = -math.inf  # whether the view moved is asked till then
        self._samples: list[npt.NDArray[np.float32]] = []
        self._sample_times: list[float] = []
        self._starting = True  # the start-up's frames are looked at again once it ends
        self._late: list[tuple[float, MotionResult, FrameExplain | None]] = []
        self._replaying = False  # looking at the start-up's frames again (``_replay``)
        self._result = NO_MOTION
        self._light_log: list[tuple[float, float, float]] = []  # (t, g, o) lately
        self.frames_analysed = 0
        self.explain: FrameExplain | None = None

    @property
    def background(self) -> npt.NDArray[np.float32]:
        plane: npt.NDArray[np.float32] = self.f[G.BG]
        return plane

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
        """Analyse ``frame`` (or skip it to keep to ``detect_fps``)."""
        s = self.settings
        t = frame.pts
        if frame.y.shape != (self.height, self.width):
            self._setup(frame.y.shape[1], frame.y.shape[0])
        if not self._due_at(t):
            return self._result
        dt = 0.0 if self._last_t is None else min(max(t - self._last_t, 1e-3), 2.0)
        self._last_t = t
        self.frames_analysed += 1
        m = block_means(frame.y, self.block, self._m)
        floor, k = s.noise_floor, s.noise_factor
        if dt == 0.0:  # first frame: it is the background; learn the noise for a while
            self._rebase(m, t)
            self._settle_until = t + max(STARTUP_SECONDS, s.settle_seconds)
            self.f[G.NOISE].fill((floor / k) ** 2 * 0.25)
            self.f[G.REACH].fill(0.0)
            return self._set(NO_MOTION, FrameExplain(t, "start-up: learning the scene"))
        if self._samples and t >= self._settle_until:
            samples, times = self._samples, self._sample_times
            self._end_settling(s.noise_floor)
            if self._starting:
                self._starting = False
                self._replay(samples, times)
        return self._analyse(m, t, dt, frame.y)

    def _analyse(
        self,
        m: npt.NDArray[np.float32],
        t: float,
        dt: float,
        y: npt.NDArray[np.uint8] | None = None,
    ) -> MotionResult:
        """Compare the grid ``m`` at ``t`` with what was learned, judge, track, learn.
        ``y`` is the frame's luma plane (not kept for the start-up's frames): where the
        highlights clip, the block means alone cannot tell light from an object."""
        s = self.settings
        floor, k, kb = s.noise_floor, s.noise_factor, s.reach_factor
        g, o, banded = fit_light(m, self.f[G.BG], self.u, self._row_gains)
        if banded:
            self._relight_rows(g, o)
        count = compare_grid(m, self.f, self.u, g, o, k, kb, floor)
        jump = count - self._last_count
        self._last_count = count
        if jump >= VIEW_SHARE * self._watched:
            self._look_at_view_until = t + VIEW_SECONDS
        # A global change: much of the view differs, or a large part changed within a
        # fraction of a second (a lamp lighting a pool of the yard): no object appears that
        # fast. Between keyframes a second apart a close person can, so the jump rule only
        # applies to closely spaced frames.
        share = count / self._watched
        if share > s.global_change_fraction or (
            dt <= SUDDEN_WITHIN and jump > SUDDEN_FRACTION * self._watched
        ):
            return self._global_change(
                m, t, f"{100 * share:.0f} % of the view changed (gain {g:.2f})"
            )
        if t < self._settle_until:
            self.u[G.LIGHT].fill(0)
            self._learn_settling(m, t, dt, floor)
            return self._set(NO_MOTION, FrameExplain(t, "settling: learning only", count=count))
        lit = light_cells(m, self.f, self.u, k, floor)
        if y is not None:
            lit += clipped_cells(y, self.block, m, self.f, self.u)
            moved = None
            if t <= self._look_at_view_until:
                moved = view_move(m, self.f, self.u, y, self.block, k, kb, floor)
            if moved is not None:  # the camera was knocked: a global change of geometry
                return self._global_change(
                    m,
                    t,
                    f"the view moved by {moved.dx:+.1f}, {moved.dy:+.1f} px (the camera was "
                    f"knocked), explaining {moved.cells} changed cells",
                )
        labels, stats = label_cells(
            self.u[G.CHANGED], self.u[G.PERSIST], self.f[G.EXCESS], m, self.f[G.BG],
            self.f[G.DD], self.f[G.ACTIVITY], self.f[G.REACH], self.f[G.NOISE],
        )  # fmt: skip
        blobs = judge(stats, self.min_cells, floor)
        c = blobs.candidate
        motion, fresh, born = self.tracks.update(
            blobs.boxes[c], blobs.coherent[c], blobs.chronic[c], blobs.sudden[c], t,
            s.persistence, blobs.shaped[c], self._light_step(t, dt, g, o, floor), self._replaying,
            self.f[G.ACTIVITY],
        )  # fmt: skip
        tracks = self.tracks
        blobs.set_motion(
            motion, fresh, born, tracks.coherent, left=tracks.left, trailing=tracks.trailing
        )
        self._paint(labels, blobs, t)
        r = self._rates
        r[G.A_BG], r[G.A_ABSORB] = _alpha(dt, s.background_seconds), _alpha(dt, s.absorb_seconds)
        r[G.A_NOISE_UP], r[G.A_NOISE_DOWN] = _alpha(dt, NOISE_UP), _alpha(dt, NOISE_DOWN)
        r[G.A_REACH_UP], r[G.A_REACH_DOWN] = _alpha(dt, REACH_UP), _alpha(dt, REACH_DOWN)
        r[G.A_ACTIVITY], r[G.KAPPA], r[G.FLOOR] = _alpha(dt, ACTIVITY_TAU), KAPPA, floor
        r[G.A_LIGHT] = _alpha(dt, LIGHT_TAU)
        learn_grid(m, self.f, self.u, r)
        result = self._make_result(blobs)
        explain = FrameExplain(
            t, "", count=count - lit, lit=lit, gain=(g, o), rows=banded, blobs=blobs
        )
        return self._set(result, explain)

    def _global_change(self, m: npt.NDArray[np.float32], t: float, why: str) -> MotionResult:
        """Re-base on ``m`` and learn for a while; ``wake``: an idle decoder should relearn at
        full rate, and confirm nothing hides."""
        self._rebase(m, t)
        return self._set(GLOBAL_CHANGE, FrameExplain(t, f"global change: {why}"))

    def _relight_rows(self, g: float, o: float) -> None:
        """Bring background and previous frame to each banded row's light (``kernels.rows``):
        ``g * bg + o`` becomes ``h_r * (g * bg + o)``, which ``compare_grid`` then takes."""
        h = self._row_gains[:, None]
        planes = self.f[G.BG : G.PREV + 1]  # a view of both planes (adjacent in the stack)
        planes *= g
        planes += o
        planes *= h
        planes -= o
        planes /= g

    def _light_step(self, t: float, dt: float, g: float, o: float, floor: float) -> bool:
        """Whether the light over the whole view stepped just now: the global model (each
        frame's gain and offset over the previous one) changed dark or bright textures by
        more than the noise floor within ``LIGHT_STEP_SECONDS``, or swung them back and forth
        by more than twice that (auto exposure hunting: up and down again, so that the net
        change is small while every strong edge flickers), at that rate when frames are
        further apart (idle mode). Slow exposure drift does neither; an auto-exposure step
        or hunt does."""
        log = [e for e in self._light_log if t - e[0] < LIGHT_STEP_SECONDS]
        log.append((t, g, o))
        self._light_log = log
        dark, bright, swing = 64.0, 192.0, 0.0
        for _, gain, offset in log:
            step = max(abs((gain - 1.0) * 64.0 + offset), abs((gain - 1.0) * 192.0 + offset))
            dark, bright, swing = gain * dark + offset, gain * bright + offset, swing + step
        change = max(abs(dark - 64.0), abs(bright - 192.0), swing / 2.0)
        return change * LIGHT_STEP_SECONDS / max(dt, LIGHT_STEP_SECONDS) > floor

    def _due_at(self, t: float) -> bool:
        """Whether the frame at ``t`` is to be analysed (and if so, schedule the next).

        ``detect_fps`` is a rate, not a least gap: a schedule keeps it on average whatever the
        camera's rate. A least gap of 0.1 s would analyse every other frame of a 12.5 fps
        stream, 6.25 a second, and a person would move about half their width between
        analysed frames: their blob would rarely overlap itself as the coherence test expects
        of objects. A tenth of a period of slack absorbs jitter in the timestamps; after a
        gap (idle mode, a stall) the schedule restarts from now instead of catching up.
        """
        rate = self.settings.detect_fps
        if rate <= 0:
            return True
        period = 1.0 / rate
        if t < self._due - 0.1 * period:
            return False
        due = self._due + period
        self._due = due if due >= t else t + period
        return True

    def _set(self, result: MotionResult, explain: FrameExplain) -> MotionResult:
        self._result = result
        self.explain = explain
        return result

    def _learn_settling(
        self, m: npt.NDArray[np.float32], t: float, dt: float, floor: float
    ) -> None:
        # Everything is learned while settling: nothing counts yet, whatever stays.
        self.u[G.ACTIVE].fill(0)
        self.u[G.CONFIRMED].fill(0)
        self.u[G.PERSIST].fill(0)
        r = self._rates
        r[G.A_BG], r[G.A_ABSORB] = _alpha(dt, SETTLE_BG), 0.0
        r[G.A_NOISE_UP], r[G.A_NOISE_DOWN] = _alpha(dt, SETTLE_UP), _alpha(dt, NOISE_DOWN)
        r[G.A_REACH_UP], r[G.A_REACH_DOWN] = _alpha(dt, SETTLE_UP), _alpha(dt, REACH_DOWN)
        r[G.A_ACTIVITY], r[G.KAPPA], r[G.FLOOR] = _alpha(dt, SETTLE_ACTIVITY_TAU), KAPPA, floor
        r[G.A_LIGHT] = _alpha(dt, LIGHT_TAU)
        learn_grid(m, self.f, self.u, r)
        if len(self._samples) < MAX_SAMPLES:
            self._samples.append(m.copy())
            self._sample_times.append(t)

    def _replay(self, samples: list[npt.NDArray[np.float32]], times: list[float]) -> None:
        """Look at the start-up's frames again, now that the background is known.

        During the start-up nothing is known (background, noise, what moves chronically), so
        the detector only learns. Someone who came and went within those seconds would be
        missed; so once the median background and the noise are established, the frames
        kept meanwhile go through the ordinary analysis, in order, as if the detector had
        started from that background. Their results wait in ``take_late`` for the event
        tracker (``media.analysis``). Costs one grid analysis per start-up frame, once.
        """
        if len(samples) < 2:
            return
        np.copyto(self.f[G.PREV], samples[0])
        self.u[G.PREV_CHANGED].fill(0)
        self._last_count = 0
        self._settle_until = -math.inf
        self._replaying = True
        for i in range(1, len(samples)):
            dt = min(max(times[i] - times[i - 1], 1e-3), 2.0)
            result = self._analyse(samples[i], times[i], dt)
            self._late.append((times[i], result, self.explain))
        self._replaying = False
        np.copyto(self.f[G.PREV], samples[-1])

    def take_late(self) -> list[tuple[float, MotionResult, FrameExplain | None]]:
        """Results for earlier frames looked at again (the start-up's), oldest first, each
        with its frame time and what the detector saw in it (for ``--explain``); handed out
        once. The current frame's result follows them."""
        late, self._late = self._late, []
        return late

    def _end_settling(self, floor: float) -> None:
        """The per-cell median of the frames seen while settling is the background, so that
        someone who walked through meanwhile leaves no ghost behind; and the noise, reach
        and activity come from the median deviation (``_settling_deviation``), for the same
        reason (a car that drove through during start-up must not make its path look noisy
        or chronic)."""
        stack = np.stack(self._samples)
        self._samples, self._sample_times = [], []
        median = np.median(stack, axis=0)
        np.copyto(self.f[G.BG], median)
        if len(stack) < 5:
            return
        off, mad, sigma, flicker = _settling_deviation(stack, median, self.u[G.WEIGHT])
        # The noise is what the median deviation says, and at least what the view changes
        # by from frame to frame *everywhere*: in a blizzard each cell is hit by a flake in
        # a few frames in ten, so its median deviation is the sensor's noise, a fraction of
        # how much it changes from frame to frame, and judged with that the start-up's first
        # frames flagged thousands of cells and a few flakes falling together became
        # objects. The median over the view keeps a car or a person out of it: they change
        # the cells of their path, not most of the view. Someone walking through the
        # start-up raises the noise learned along their path; the median deviation cuts it
        # back, with the light taken out where the light explains it: a lamp switched off
        # halfway through put every cell's plain deviation at about the step, nothing was
        # cut, and the walker was seen only once past the start-up's part of the path.
        watched = self.u[G.WEIGHT] > 0
        everywhere = float(np.median(flicker[watched])) if watched.any() else 0.0
        self.f[G.NOISE] = np.maximum(
            np.minimum(self.f[G.NOISE], 2.0 * sigma * sigma), np.minimum(flicker, everywhere)
        )
        # The reach from the deviation with the light taken out where that is the smaller:
        # a lamp switched on halfway through the start-up puts half its frames a step away
        # from the median in every cell, and a reach learned from that (about the step)
        # hid a person for the next minute, until it had decayed. The analysis compares with
        # the background brought to the frame's light, so that is what the reach must span.
        self.f[G.REACH] = 3.0 * NORMAL_MAD * mad
        # Chronic cells stray most of the time (their median deviation is large); a car
        # that passed once strays in a few frames only.
        stray = max(G.MIN_STRAY, G.STRAY * floor)
        busy = (off > stray).mean(axis=0)
        self.f[G.ACTIVITY] = np.where(mad > stray / 4, busy, 0.0)

    def _paint(self, labels: npt.NDArray[np.int32], blobs: Blobs, t: float) -> None:
        """Mark the cells where the background learns slowly (objects, and candidates young
        enough to become one: what has lingered for a while without becoming an object is
        more likely a change in the scene, which the background must follow) and those of
        confirmed objects (no noise, reach or activity learning)."""
        n = len(blobs.cells)
        lut = np.zeros(n + 1, np.uint8)
        lut[1:] = blobs.candidate & (blobs.motion | (t - blobs.born < YOUNG))
        if lut.any():
            np.take(lut, labels, out=self.u[G.ACTIVE])
        else:
            self.u[G.ACTIVE].fill(0)
        lut[1:] = blobs.motion
        if lut.any():
            np.take(lut, labels, out=self.u[G.CONFIRMED])
        else:
            self.u[G.CONFIRMED].fill(0)
        taken = ((blobs.ghost | blobs.soft) & blobs.big) | blobs.left
        if taken.any():
            # The background is wrong under a ghost and under what an object left behind, and
            # a pool of light is light: take the frame (as for light cells).
            lut[1:] = taken
            self.u[G.LIGHT] |= np.take(lut, labels)

    def _rebase(self, m: npt.NDArray[np.float32], t: float) -> None:
        self._samples = [m.copy()]
        self._sample_times = [t]
        np.copyto(self.f[G.BG], m)
        np.copyto(self.f[G.PREV], m)
        self.u[G.PREV_CHANGED].fill(0)
        self.tracks.clear()
        # Learn for a while again; a global change within the start-up does not cut the
        # start-up short (what moves chronically would be learned from 1.5 s only).
        self._settle_until = max(self._settle_until, t + self.settings.settle_seconds)

    def _make_result(self, blobs: Blobs) -> MotionResult:
        wake = bool(blobs.wake.any())
        if not blobs.motion.any():
            return MotionResult(0.0, (), False, False, wake)
        chosen = blobs.motion
        score = float(blobs.cells[chosen].sum()) / self._watched
        boxes = tuple(
            Box(
                x=float(c0 * self._cell_w),
                y=float(r0 * self._cell_h),
                w=float((c1 - c0) * self._cell_w),
                h=float((r1 - r0) * self._cell_h),
            )
            for r0, c0, r1, c1 in blobs.boxes[chosen]
        )
        since = float(blobs.born[chosen].min())
        return MotionResult(min(1.0, score), boxes, True, False, wake, since)


def fit_light(
    m: npt.NDArray[np.float32], bg: F32, u: npt.NDArray[np.uint8], gains: F32
) -> tuple[float, float, int]:
    """The light of grid ``m`` over background ``bg``: the whole view's gain and offset
    ``(g, o)`` and, where a light on mains power bands the rows, each row's gain over them
    (into ``gains``, ``kernels.rows``; 1 elsewhere) and how many rows are banded.

    Bands pull the whole-view fit: its dark and bright thirds sit in different rows, so under
    a ±19 % light it swung from frame to frame between a gain of 0.9 and one of 0.35 with an
    offset of 40 where nothing but the bands changed, and row gains over such a model left a
    person unseen. So when the rows are banded, they are fitted over the background as it
    stands first (it is re-based every analysed frame, so the light rarely changed much
    since), the bands taken out of a copy of the frame by them (scaled to a median of 1: what
    all rows share is the whole view's light), the whole view fitted on that, and the rows
    over it again. Where that finds no bands, the first fit stands.
    """
    g, o = global_fit(m, bg, u[G.WEIGHT])
    banded = row_gains(m, bg, u, g, o, gains)
    if not banded:
        return g, o, 0
    first = gains.copy()
    if row_gains(m, bg, u, 1.0, 0.0, gains):
        rows = gains != 1.0
        gains[rows] /= np.median(gains[rows])
        g2, o2 = global_fit(m / gains[:, None], bg, u[G.WEIGHT])
        again = row_gains(m, bg, u, g2, o2, gains)
        if again:
            return g2, o2, again
    np.copyto(gains, first)
    return g, o, banded


def _settling_deviation(
    stack: F32, median: F32, weight: npt.NDArray[np.uint8]
) -> tuple[F32, F32, F32, F32]:
    """How far each cell strayed from its median while settling, per frame; its median over
    the frames; the noise that implies (a robust standard deviation); and the cell's mean
    squared change from frame to frame (the light over the whole view taken out).

    Where the light over the whole view changed meanwhile (auto exposure drifting or hunting,
    a lamp), every cell strayed by the light's swing, and a person walking through in those
    seconds made their path look chronic. So each frame is also brought to the median's
    light, by the global model the analysis re-bases every frame with (and each banded row by
    its own gain: a mains light's bands, ``kernels.rows``), and each cell keeps
    whichever deviation is the smaller over the frames: the fit is thrown off when a large
    part of the view changes for other reasons (bushes swaying over much of it), and there
    the plain deviation is the smaller. The noise comes from the plain deviation: the smaller
    of two estimates is biased low, and a detector that starts out taking its noise for less
    than it is flags what it should learn. Except where the light explains most of it (the
    deviation with the light taken out is under half the plain one): that is no coin toss
    between two estimates of one noise, but a lamp stepping in the middle of the start-up,
    which put every cell's plain deviation at about the step. The reach (how far a cell
    strays while it fluctuates) comes from the smaller: the analysis compares each frame with
    the background brought to its light, so a light step is not a cell's straying.
    """
    off: F32 = np.abs(stack - median)
    lit = stack.copy()
    state = np.zeros((G.U_PLANES, *median.shape), np.uint8)
    state[G.WEIGHT] = weight
    gains = np.ones(median.shape[0], np.float32)
    for i in range(len(lit)):
        g, o, banded = fit_light(lit[i], median, state, gains)
        if banded:
            lit[i] /= gains[:, None]
        lit[i] -= o
        lit[i] /= g
    steps = np.diff(lit, axis=0)
    flicker: F32 = np.mean(np.square(steps, out=steps), axis=0, dtype=np.float32)
    del steps
    relit = np.abs(lit - np.median(lit, axis=0), out=lit)
    plain, relit_mad = np.median(off, axis=0), np.median(relit, axis=0)
    better = relit_mad < plain
    np.copyto(off, relit, where=better[None])
    mad: F32 = np.where(better, relit_mad, plain)
    spread: F32 = np.where(relit_mad < LIGHT_EXPLAINS * plain, relit_mad, plain)
    sigma: F32 = NORMAL_MAD * spread
    return off, mad, sigma, flicker


__all__ = ["NO_MOTION", "STARTUP_SECONDS", "Box", "MotionDetector", "MotionResult"]
