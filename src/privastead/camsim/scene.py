"""Deterministic synthetic camera scenes with ground truth, rendered straight to YUV420 planes.

A scene is a textured outdoor view (sky, ground, buildings, fence) seen through a simulated
sensor, plus optional phenomena that a motion detector must ignore (sensor noise, exposure
drift, a lamp switching, the IR day/night switch, rain, snow, swaying foliage) and scripted
objects it must catch (people walking, stopping and going on, small distant figures).

Everything is a pure function of ``(name, width, height, fps, seed, duration)`` and the frame
index, so camsim, the tests and the benchmarks all see the same pixels. Rendering is vectorised
numpy on float32 planes: a few ms per 720p frame, tens of ms at 4K (camsim renders once and
caches the encoded stream).

Ground truth (``Scene.truth``) is the list of intervals during which at least one scripted
object is at least partly inside the frame; phenomena never count as motion.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from privastead.camsim.texture import F32, U8
from privastead.camsim.texture import background as _background
from privastead.camsim.texture import rng as _rng
from privastead.camsim.texture import value_noise as _value_noise


@dataclass(frozen=True)
class Interval:
    """A span of scene time in seconds, ``start <= t < end``."""

    start: float
    end: float


@dataclass(frozen=True)
class Walker:
    """A person-like object moving through waypoints ``(t, x, y)`` (centre of the feet,
    normalised 0..1 of the frame); it exists from the first to the last waypoint."""

    path: tuple[tuple[float, float, float], ...]
    height: float  # fraction of frame height
    luma: float  # clothing brightness 0..255 under day light
    colour: tuple[float, float] = (0.0, 0.0)  # (U, V) offsets from grey

    def position(self, t: float) -> tuple[float, float] | None:
        times = [p[0] for p in self.path]
        if t < times[0] or t > times[-1]:
            return None
        x = float(np.interp(t, times, [p[1] for p in self.path]))
        y = float(np.interp(t, times, [p[2] for p in self.path]))
        return x, y


@dataclass(frozen=True)
class Phenomena:
    """What happens in a scene, besides the static background."""

    night: bool = False  # dark, colour sensor, higher noise (lighting scene)
    noise: float = 2.0  # luma sensor noise sigma (levels)
    exposure_drift: float = 0.0  # slow gain swing, fraction (e.g. 0.25 = +/-25 %)
    exposure_period: float = 40.0
    ae_hunting: float = 0.0  # faster auto-exposure wobble, fraction
    lamp_switches: tuple[float, ...] = ()  # times at which a lamp toggles (starts off)
    ir_switches: tuple[float, ...] = ()  # times at which the camera toggles day <-> IR night
    rain: float = 0.0  # streaks per 1000 px^2 ... scaled to frame area (0 = none)
    snow: float = 0.0  # flakes, same scale
    foliage: int = 0  # number of swaying bushes/trees
    walkers: tuple[Walker, ...] = ()


@dataclass
class _Static:
    """Per-scene precomputed planes (the expensive part, built once)."""

    day: F32
    ir: F32
    u: F32
    v: F32
    lamp: F32
    noise_y: F32
    noise_c: F32
    foliage: list[tuple[int, int, int, int, F32, F32, float, float]] = field(default_factory=list)


class Scene:
    """One deterministic scene; ``render(i)`` gives the YUV420 planes of frame ``i``."""

    def __init__(
        self,
        name: str,
        phenomena: Phenomena,
        *,
        width: int,
        height: int,
        fps: float,
        seed: int,
        duration: float,
    ) -> None:
        if width < 16 or height < 16 or width % 2 or height % 2:
            raise ValueError("scene size must be even and at least 16x16")
        self.name = name
        self.width = width
        self.height = height
        self.fps = float(fps)
        self.seed = seed
        self.duration = float(duration)
        self.phenomena = phenomena
        self.frame_count = max(1, round(self.duration * self.fps))
        self._salt = zlib.crc32(name.encode())
        self._static: _Static | None = None
        self.truth: tuple[Interval, ...] = self._truth()

    # -- ground truth -------------------------------------------------------------------------
    def _silhouette(
        self, walker: Walker, t: float
    ) -> tuple[npt.NDArray[np.bool_], int, int] | None:
        """The walker's pixel mask clipped to the frame and its top-left corner, or None."""
        pos = walker.position(t)
        if pos is None:
            return None
        h, w = self.height, self.width
        ph = max(4, round(walker.height * h))
        pw = max(2, round(ph * 0.4))
        x0, y0 = round(pos[0] * w - pw / 2), round(pos[1] * h - ph)
        ys0, xs0 = max(0, y0), max(0, x0)
        ys1, xs1 = min(h, y0 + ph), min(w, x0 + pw)
        if ys1 <= ys0 or xs1 <= xs0:
            return None
        gy, gx = np.mgrid[ys0 - y0 : ys1 - y0, xs0 - x0 : xs1 - x0].astype(np.float32)
        nx = (gx + 0.5) / pw - 0.5
        ny = (gy + 0.5) / ph
        head = (nx / 0.22) ** 2 + ((ny - 0.09) / 0.09) ** 2 < 1
        body = (np.abs(nx) < 0.32 - 0.1 * (ny > 0.5)) & (ny > 0.17)
        # Legs: a gap between them that opens and closes with the stride.
        stride = abs(math.sin(t * 6.0)) * 0.18
        legs = (ny > 0.55) & (np.abs(nx) < 0.05 + stride * (ny - 0.55))
        mask = (head | body) & ~legs
        if not mask.any():
            return None
        return mask, ys0, xs0

    def _visible(self, walker: Walker, t: float) -> bool:
        return self._silhouette(walker, t) is not None

    def _truth(self) -> tuple[Interval, ...]:
        step = 1.0 / self.fps
        spans: list[Interval] = []
        for k in range(self.frame_count):
            t = k * step
            if any(self._visible(w, t) for w in self.phenomena.walkers):
                if spans and abs(spans[-1].end - t) < step / 2:
                    spans[-1] = Interval(spans[-1].start, t + step)
                else:
                    spans.append(Interval(t, t + step))
        return tuple(Interval(round(s.start, 6), round(s.end, 6)) for s in spans)

    def objects_at(self, index: int) -> list[tuple[float, float, float, float]]:
        """Normalised boxes ``(x, y, w, h)`` of the objects visible in frame ``index``."""
        t = (index % self.frame_count) / self.fps
        boxes = []
        for walker in self.phenomena.walkers:
            if self._visible(walker, t):
                pos = walker.position(t)
                assert pos is not None
                bw = walker.height * 0.4 * self.height / self.width
                boxes.append((pos[0] - bw / 2, pos[1] - walker.height, bw, walker.height))
        return boxes

    # -- rendering ----------------------------------------------------------------------------
    def _prepare(self) -> _Static:
        if self._static is not None:
            return self._static
        h, w = self.height, self.width
        rng = _rng(self.seed, self._salt, 1)
        day, ir, u, v = _background(rng, h, w)
        # Lamp: a warm pool of light on the ground (non-uniform, unlike exposure).
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        cx, cy = rng.uniform(0.25, 0.75) * w, rng.uniform(0.55, 0.8) * h
        lamp = 0.9 * np.exp(-(((xx - cx) / (0.35 * w)) ** 2 + ((yy - cy) / (0.4 * h)) ** 2)) + 0.35
        # Noise pools with a margin: each frame takes a randomly offset window (a view).
        pad = 64
        noise_y = rng.standard_normal((h + pad, w + pad)).astype(np.float32)
        noise_c = rng.standard_normal((h // 2 + pad, w // 2 + pad)).astype(np.float32)
        static = _Static(day, ir, u, v, lamp.astype(np.float32), noise_y, noise_c)
        for _ in range(self.phenomena.foliage):
            fh = int(h * rng.uniform(0.22, 0.35))
            fw = int(w * rng.uniform(0.12, 0.2))
            x0 = int(rng.uniform(0.02, 0.98) * (w - fw))
            y0 = int(h * rng.uniform(0.3, 0.6))
            y0 = min(y0, h - fh)
            margin = max(4, fw // 8)
            tex = 70 + _value_noise(
                rng, fh, fw + 2 * margin, ((max(2, fh // 12), 30.0), (max(2, fh // 4), 18.0))
            )
            gy, gx = np.mgrid[0:fh, 0 : fw + 2 * margin].astype(np.float32)
            blob = 1 - (
                ((gx - (fw / 2 + margin)) / (fw / 2)) ** 2 + ((gy - fh / 2) / (fh / 2)) ** 2
            )
            alpha = np.clip(
                blob * 3 + 0.3 * _value_noise(rng, fh, fw + 2 * margin, ((max(2, fh // 6), 1.0),)),
                0,
                1,
            )
            static.foliage.append(
                (
                    y0,
                    x0,
                    fh,
                    fw,
                    tex.astype(np.float32),
                    alpha.astype(np.float32),
                    float(rng.uniform(0.4, 0.9)),
                    float(rng.uniform(0, 6.28)),
                )
            )
        self._static = static
        return static

    def _ir_on(self, t: float) -> bool:
        return sum(1 for s in self.phenomena.ir_switches if t >= s) % 2 == 1

    def _lamp_on(self, t: float) -> bool:
        return sum(1 for s in self.phenomena.lamp_switches if t >= s) % 2 == 1

    def gain(self, t: float) -> float:
        """Global exposure gain at scene time ``t`` (slow drift and auto-exposure hunting)."""
        p = self.phenomena
        g = 1.0 + p.exposure_drift * math.sin(2 * math.pi * t / p.exposure_period)
        g += p.ae_hunting * math.sin(2 * math.pi * t / 6.7 + 1.0)
        return g

    def render(self, index: int) -> tuple[U8, U8, U8]:
        """YUV420 planes of frame ``index`` (Y: (H, W), U and V: (H//2, W//2), all uint8)."""
        st = self._prepare()
        p = self.phenomena
        h, w = self.height, self.width
        k = index % self.frame_count
        t = k / self.fps
        rng = _rng(self.seed, self._salt, 2, k)
        ir = self._ir_on(t)
        y = (st.ir if ir else st.day).copy()
        u = st.u.copy()
        v = st.v.copy()
        self._draw_foliage(st, y, t, ir)
        self._draw_walkers(y, u, v, t, ir)
        # Illumination: night darkens the scene (colour sensor), a lamp lights a pool of it.
        gain = self.gain(t)
        chroma_gain = 1.0
        if ir:
            chroma_gain = 0.0  # IR cut filter off: the camera sends grey
        elif p.night:
            gain *= 0.3
            chroma_gain = 0.4
            if self._lamp_on(t):
                y *= st.lamp * 2.2
                gain *= 1.0
        if gain != 1.0:
            y *= gain
        noise = p.noise * (2.2 if ir else 1.0)
        self._draw_weather(y, rng, t)
        oy, ox = rng.integers(0, 64, 2)
        y += noise * st.noise_y[oy : oy + h, ox : ox + w]
        cw, ch = w // 2, h // 2
        ou, ov = rng.integers(0, 64, 2)
        cn = (0.15 if ir else 0.6) * noise  # IR mode sends near-pure grey
        uu = 128 + chroma_gain * (u - 128) + cn * st.noise_c[ou : ou + ch, ov : ov + cw]
        vv = 128 + chroma_gain * (v - 128) + cn * st.noise_c[ov : ov + ch, ou : ou + cw]
        return _to_u8(y), _to_u8(uu), _to_u8(vv)

    def _draw_foliage(self, st: _Static, y: F32, t: float, ir: bool) -> None:
        for y0, x0, fh, fw, tex, alpha, freq, phase in st.foliage:
            margin = (tex.shape[1] - fw) // 2
            gust = 0.6 + 0.4 * math.sin(2 * math.pi * t / 9.0 + phase) ** 2
            rows = np.arange(fh, dtype=np.float32)
            # Tops of trees sway more than trunks; each row lags a little (a travelling wave).
            amp = margin * 0.9 * gust * (1.2 - rows / fh)
            shift = amp * np.sin(2 * math.pi * freq * t + phase + rows * (3.0 / fh))
            cols = np.arange(fw)[None, :] + margin + np.rint(shift).astype(np.int32)[:, None]
            cols = np.clip(cols, 0, tex.shape[1] - 1)
            r = np.arange(fh)[:, None]
            leaves = tex[r, cols] * (1.6 if ir else 1.0)
            a = alpha[r, cols]
            region = y[y0 : y0 + fh, x0 : x0 + fw]
            region += a * (leaves - region)

    @staticmethod
    def _ir_luma(luma: float) -> float:
        # Under IR, dark fabrics stay dark and light ones (cotton) glow: contrast survives.
        return luma * 0.75 if luma < 100 else min(235.0, luma * 1.12)

    def _draw_walkers(self, y: F32, u: F32, v: F32, t: float, ir: bool) -> None:
        for walker in self.phenomena.walkers:
            found = self._silhouette(walker, t)
            if found is None:
                continue
            m, ys0, xs0 = found
            ys1, xs1 = ys0 + m.shape[0], xs0 + m.shape[1]
            stripes = 8 * np.sin(np.arange(ys0, ys1, dtype=np.float32) * 0.7)[:, None]
            base = self._ir_luma(walker.luma) if ir else walker.luma
            level = base + stripes * np.ones_like(m, np.float32)
            region = y[ys0:ys1, xs0:xs1]
            region[m] = level[m]
            # chroma at half resolution
            cm = m[(ys0 % 2) :: 2, (xs0 % 2) :: 2]
            cy0, cx0 = (ys0 + 1) // 2, (xs0 + 1) // 2
            ch = min(cm.shape[0], u.shape[0] - cy0)
            cwid = min(cm.shape[1], u.shape[1] - cx0)
            cm = cm[:ch, :cwid]
            u[cy0 : cy0 + ch, cx0 : cx0 + cwid][cm] = 128 + walker.colour[0]
            v[cy0 : cy0 + ch, cx0 : cx0 + cwid][cm] = 128 + walker.colour[1]

    def _draw_weather(self, y: F32, rng: np.random.Generator, t: float) -> None:
        h, w = self.height, self.width
        p = self.phenomena
        if p.rain > 0:
            n = int(p.rain * h * w / 1000)
            length = max(3, h // 40)
            xs = rng.integers(0, w, n)
            ys = rng.integers(-length, h, n)
            bright = rng.uniform(15, 45, n).astype(np.float32)
            steps = np.arange(length)
            rr = ys[:, None] + steps[None, :]
            cc = xs[:, None] + (steps[None, :] // 4)  # slight slant from wind
            ok = (rr >= 0) & (rr < h) & (cc < w)
            # Plain fancy-index add (where streaks cross, one of them wins): np.add.at is
            # exact but ten times slower, and at 4K rain would dominate rendering.
            y[rr[ok], cc[ok]] += np.broadcast_to(bright[:, None], rr.shape)[ok]
        if p.snow > 0:
            # Flakes are persistent particles that fall slowly and drift, so they move
            # coherently between frames (harder than rain), but each is tiny.
            n = int(p.snow * h * w / 1000)
            srng = _rng(self.seed, self._salt, 3)
            x0 = srng.uniform(0, w, n)
            y0 = srng.uniform(0, h, n)
            speed = srng.uniform(0.04, 0.12, n) * h
            size = np.maximum(1, (srng.uniform(0.002, 0.005, n) * h)).astype(np.int32)
            phase = srng.uniform(0, 6.28, n)
            fy = (y0 + speed * t) % h
            fx = (x0 + 0.01 * w * np.sin(t * 1.3 + phase)) % w
            for s in np.unique(size):
                sel = size == s
                oy, ox = np.mgrid[0:s, 0:s]
                rr = (fy[sel].astype(np.int32)[:, None] + oy.ravel()[None, :]) % h
                cc = (fx[sel].astype(np.int32)[:, None] + ox.ravel()[None, :]) % w
                y[rr, cc] = 0.3 * y[rr, cc] + 0.7 * 225


def _to_u8(plane: F32) -> U8:
    np.clip(plane, 0, 255, out=plane)
    return np.rint(plane).astype(np.uint8)


# -- the scenes ---------------------------------------------------------------------------------

SCENES: dict[str, str] = {
    "demo": "a yard with sensor noise; a person walks across every ~20 s",
    "static": "a still yard with daytime sensor noise and nothing moving",
    "noise": "a dark night scene with heavy luma and chroma sensor noise, nothing moving",
    "exposure": "slow exposure drift (+/-25 %) and auto-exposure hunting, nothing moving",
    "lighting": "night; a lamp switches on and off every ~15 s, nothing moving",
    "ir": "the camera switches to IR night mode (grey, brighter, new texture) and back",
    "rain": "heavy rain streaks over the whole frame, nothing else moving",
    "snow": "snowflakes falling and drifting, nothing else moving",
    "foliage": "bushes and trees swaying in gusty wind, nothing else moving",
    "walkers": "people of various sizes, speeds and contrasts crossing the yard",
    "small": "small distant figures (4-7 % of the frame height) crossing near the horizon",
    "stopgo": "people who walk in, stand still for seconds, walk on and leave",
    "night": "IR night mode with strong noise; people cross at lower contrast",
    "storm": "rain and swaying foliage while people cross",
}

#: Scenes in which nothing should ever fire (false alarms per hour are measured on these).
QUIET_SCENES: tuple[str, ...] = (
    "static",
    "noise",
    "exposure",
    "lighting",
    "ir",
    "rain",
    "snow",
    "foliage",
)


def _person_luma(rng: np.random.Generator) -> float:
    # Clothing clearly darker or brighter than the lawn (~100), like most real outfits.
    return float(rng.uniform(25, 60) if rng.random() < 0.5 else rng.uniform(155, 210))


def _crossing(
    rng: np.random.Generator,
    start: float,
    *,
    height: float,
    lane: float,
    speed: float,
    luma: float | None = None,
) -> Walker:
    """A walker crossing the whole frame left to right or right to left."""
    margin = height * 0.3
    left_to_right = rng.random() < 0.5
    xa, xb = (-margin, 1 + margin) if left_to_right else (1 + margin, -margin)
    end = start + (1 + 2 * margin) / speed
    wobble = float(rng.uniform(-0.03, 0.03))
    return Walker(
        path=((start, xa, lane), (end, xb, lane + wobble)),
        height=height,
        luma=_person_luma(rng) if luma is None else luma,
        colour=(float(rng.uniform(-25, 25)), float(rng.uniform(-25, 25))),
    )


def _people(
    rng: np.random.Generator,
    duration: float,
    *,
    period: float,
    first: float,
    size: tuple[float, float],
    speed: tuple[float, float],
    lane: tuple[float, float],
    luma: float | None = None,
) -> tuple[Walker, ...]:
    walkers = []
    t = first
    while True:
        height = float(rng.uniform(*size))
        w = _crossing(
            rng,
            t,
            height=height,
            lane=float(rng.uniform(*lane)),
            speed=float(rng.uniform(*speed)),
            luma=luma,
        )
        if w.path[-1][0] > duration - 1.0:
            break
        walkers.append(w)
        t = w.path[-1][0] + period * float(rng.uniform(0.6, 1.0))
    return tuple(walkers)


def _stop_and_go(rng: np.random.Generator, duration: float) -> tuple[Walker, ...]:
    walkers = []
    t = 3.0
    while t + 30 < duration:
        height = float(rng.uniform(0.18, 0.35))
        lane = float(rng.uniform(0.7, 0.9))
        m = height * 0.3
        x1, x2 = float(rng.uniform(0.2, 0.4)), float(rng.uniform(0.55, 0.8))
        v = float(rng.uniform(0.1, 0.16))
        stop1, stop2 = float(rng.uniform(3, 7)), float(rng.uniform(4, 9))
        t1 = t + (x1 + m) / v
        t2 = t1 + stop1
        t3 = t2 + (x2 - x1) / v
        t4 = t3 + stop2
        t5 = t4 + (1 + m - x2) / v
        path = (
            (t, -m, lane),
            (t1, x1, lane),
            (t2, x1, lane),
            (t3, x2, lane),
            (t4, x2, lane),
            (t5, 1 + m, lane),
        )
        walkers.append(
            Walker(
                path=path,
                height=height,
                luma=_person_luma(rng),
                colour=(float(rng.uniform(-20, 20)), float(rng.uniform(-20, 20))),
            )
        )
        t = t5 + float(rng.uniform(6, 12))
    return tuple(walkers)


def _switch_times(rng: np.random.Generator, duration: float, period: float) -> tuple[float, ...]:
    times = []
    t = float(rng.uniform(0.3, 0.6)) * period
    while t < duration - 1:
        times.append(round(t, 3))
        t += period * float(rng.uniform(0.8, 1.2))
    return tuple(times)


def _near(
    rng: np.random.Generator, duration: float, period: float, first: float
) -> tuple[Walker, ...]:
    """People at normal distance: 20-42 % of the frame height, crossing in 6-12 s."""
    return _people(
        rng,
        duration,
        period=period,
        first=first,
        size=(0.2, 0.42),
        speed=(0.09, 0.18),
        lane=(0.72, 0.95),
    )


def _demo(rng: np.random.Generator, duration: float) -> Phenomena:
    walkers = tuple(
        _crossing(rng, 4.0 + 20.0 * i, height=0.3, lane=0.85, speed=0.15)
        for i in range(int((duration - 12) // 20) + 1)
    )
    return Phenomena(noise=2.0, walkers=walkers)


Builder = Callable[[np.random.Generator, float], Phenomena]

_BUILDERS: dict[str, Builder] = {
    "demo": _demo,
    "static": lambda rng, d: Phenomena(noise=2.0),
    "noise": lambda rng, d: Phenomena(noise=7.0, night=True),
    "exposure": lambda rng, d: Phenomena(
        noise=2.5, exposure_drift=0.25, ae_hunting=0.04, exposure_period=float(rng.uniform(30, 50))
    ),
    "lighting": lambda rng, d: Phenomena(
        noise=4.0, night=True, lamp_switches=_switch_times(rng, d, 15.0)
    ),
    "ir": lambda rng, d: Phenomena(noise=3.0, ir_switches=_switch_times(rng, d, 20.0)),
    "rain": lambda rng, d: Phenomena(
        noise=2.5, rain=float(rng.uniform(0.8, 1.2)), exposure_drift=0.05
    ),
    "snow": lambda rng, d: Phenomena(noise=2.5, snow=float(rng.uniform(0.25, 0.4))),
    "foliage": lambda rng, d: Phenomena(noise=2.0, foliage=int(rng.integers(2, 4))),
    "walkers": lambda rng, d: Phenomena(
        noise=2.5, exposure_drift=0.05, walkers=_near(rng, d, 12.0, 2.0)
    ),
    "small": lambda rng, d: Phenomena(
        noise=2.5,
        walkers=_people(
            rng, d, period=8.0, first=2.0, size=(0.04, 0.07), speed=(0.04, 0.07), lane=(0.42, 0.55)
        ),
    ),
    "stopgo": lambda rng, d: Phenomena(noise=2.5, walkers=_stop_and_go(rng, d)),
    "night": lambda rng, d: Phenomena(
        noise=4.0, ir_switches=(0.0,), walkers=_near(rng, d, 12.0, 3.0)
    ),
    "storm": lambda rng, d: Phenomena(
        noise=3.0, rain=0.8, foliage=2, exposure_drift=0.08, walkers=_near(rng, d, 14.0, 3.0)
    ),
}


def make_scene(
    name: str,
    *,
    width: int = 1280,
    height: int = 720,
    fps: float = 15.0,
    seed: int = 0,
    duration: float | None = None,
) -> Scene:
    """Build scene ``name`` (see ``SCENES``); deterministic for all arguments."""
    if name not in SCENES:
        raise ValueError(f"unknown scene {name!r}; known scenes: {', '.join(SCENES)}")
    length = 60.0 if duration is None else float(duration)
    if length <= 0 or fps <= 0:
        raise ValueError("scene duration and fps must be positive")
    rng = _rng(seed, zlib.crc32(name.encode()), 0)
    return Scene(
        name,
        _BUILDERS[name](rng, length),
        width=width,
        height=height,
        fps=fps,
        seed=seed,
        duration=length,
    )


__all__ = ["QUIET_SCENES", "SCENES", "Interval", "Phenomena", "Scene", "Walker", "make_scene"]
