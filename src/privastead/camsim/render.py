"""A camsim scene: a static background seen through a simulated sensor, plus phenomena that a
motion detector must ignore and scripted actors (people, cars) that it must catch.

Everything is a pure function of ``(phenomena, width, height, fps, seed, duration)`` and the
frame index, so camsim, the tests and the benchmarks all see the same pixels. Rendering is
vectorised numpy on float32 planes: a few ms per 720p frame, tens of ms at 4K (camsim renders
once and caches the encoded stream). The scene catalogue is ``camsim.scene``.

Ground truth (``Scene.truth``) is the list of intervals during which at least one actor is at
least partly inside the frame; phenomena never count as motion.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from privastead.camsim import actors, clutter, lens, lighting, mount, weather
from privastead.camsim.actors import Walker
from privastead.camsim.texture import BACKGROUNDS, F32, U8
from privastead.camsim.texture import background as _background
from privastead.camsim.texture import rng as _rng


@dataclass(frozen=True)
class Interval:
    """A span of scene time in seconds, ``start <= t < end``."""

    start: float
    end: float


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
    # -- added for the generalisation suite (defaults keep the first scenes pixel-identical)
    background: str = "yard"  # texture style: yard, street, wall
    darkness: float = 1.0  # overall light level (night scenes without IR: 0.25-0.4)
    light_steps: tuple[tuple[float, float], ...] = ()  # (time, factor): whole frame, instant
    ae_steps: tuple[tuple[float, float], ...] = ()  # (time, factor): auto exposure, ramped
    sweeps: tuple[lighting.Sweep, ...] = ()  # headlight pools crossing the view
    clouds: float = 0.0  # depth of drifting cloud shadows (0.2-0.45)
    cloud_speed: float = 0.02  # frame widths per second
    streaks: weather.Streaks | None = None  # long motion-blurred rain
    near_flakes: weather.NearFlakes | None = None  # big flakes in front of the lens
    wind: float = 1.0  # foliage sway strength (1: the first scenes' breeze)
    water: bool = False  # a rippling pond with glints
    flags: int = 0  # flags flapping in the wind
    knocks: tuple[mount.Knock, ...] = ()  # the camera knocked: the view jumps and stays
    flicker: lighting.Flicker | None = None  # a mains-powered light: bands across the rows
    focus: tuple[lens.Refocus, ...] = ()  # the lens goes soft (and sharp again)


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
    foliage: list[clutter.Bush] = field(default_factory=list)
    water: clutter.Water | None = None
    flags: list[clutter.Flag] = field(default_factory=list)
    clouds: lighting.Clouds | None = None


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
        return actors.silhouette(walker, t, self.height, self.width)

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
                bw = walker.height * walker.aspect * self.height / self.width
                boxes.append((pos[0] - bw / 2, pos[1] - walker.height, bw, walker.height))
        return boxes

    # -- rendering ----------------------------------------------------------------------------
    def _prepare(self) -> _Static:
        if self._static is not None:
            return self._static
        p = self.phenomena
        h, w = self.height, self.width
        rng = _rng(self.seed, self._salt, 1)
        if p.background == "yard":
            day, ir, u, v = _background(rng, h, w)
        else:
            day, ir, u, v = BACKGROUNDS[p.background](_rng(self.seed, self._salt, 12), h, w)
        # Lamp: a warm pool of light on the ground (non-uniform, unlike exposure).
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        cx, cy = rng.uniform(0.25, 0.75) * w, rng.uniform(0.55, 0.8) * h
        lamp = 0.9 * np.exp(-(((xx - cx) / (0.35 * w)) ** 2 + ((yy - cy) / (0.4 * h)) ** 2)) + 0.35
        # Noise pools with a margin: each frame takes a randomly offset window (a view).
        pad = 64
        noise_y = rng.standard_normal((h + pad, w + pad)).astype(np.float32)
        noise_c = rng.standard_normal((h // 2 + pad, w // 2 + pad)).astype(np.float32)
        static = _Static(day, ir, u, v, lamp.astype(np.float32), noise_y, noise_c)
        wind = _rng(self.seed, self._salt, 13)
        for _ in range(p.foliage):
            bush = clutter.make_bush(rng, h, w)
            if p.wind != 1.0:
                bush = dataclasses.replace(
                    bush,
                    strength=p.wind * float(wind.uniform(0.7, 1.0)),
                    gust_period=float(wind.uniform(4.0, 12.0)),
                    freq=bush.freq * float(wind.uniform(1.0, 1.8)),
                )
            static.foliage.append(bush)
        if p.water:
            static.water = clutter.make_water(self.seed, self._salt, h, w)
        static.flags = [clutter.make_flag(self.seed, self._salt, i, h, w) for i in range(p.flags)]
        if p.clouds > 0:
            static.clouds = lighting.Clouds(
                self.seed, self._salt, h, w, depth=p.clouds, speed=p.cloud_speed
            )
        self._static = static
        return static

    def _ir_on(self, t: float) -> bool:
        return sum(1 for s in self.phenomena.ir_switches if t >= s) % 2 == 1

    def _lamp_on(self, t: float) -> bool:
        return sum(1 for s in self.phenomena.lamp_switches if t >= s) % 2 == 1

    def gain(self, t: float) -> float:
        """Global exposure gain at scene time ``t`` (drift, auto-exposure hunting and steps,
        whole-frame light steps)."""
        p = self.phenomena
        g = 1.0 + p.exposure_drift * math.sin(2 * math.pi * t / p.exposure_period)
        g += p.ae_hunting * math.sin(2 * math.pi * t / 6.7 + 1.0)
        if p.light_steps:
            g *= lighting.step_gain(p.light_steps, t)
        if p.ae_steps:
            g *= lighting.ramp_gain(p.ae_steps, t)
        return g * p.darkness

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
        self._draw_clutter(st, y, t, ir)
        self._draw_walkers(y, u, v, t, ir)
        self._draw_shadows_and_pools(st, y, t)
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
        if gain != 1.0:
            y *= gain
        if p.knocks:
            dy, dx = mount.offset(p.knocks, t, h)
            y = mount.shift(y, dy, dx)
            u, v = mount.shift(u, dy // 2, dx // 2), mount.shift(v, dy // 2, dx // 2)
        if p.focus:  # the lens blurs what the view holds, before the sensor's rows and noise
            y = lens.soften(y, lens.radius(p.focus, t, h))
        if p.flicker is not None:  # in the sensor's rows, wherever the mount points it
            y *= lighting.flicker_gain(p.flicker, t, h, self.fps)
        noise = p.noise * (2.2 if ir else 1.0)
        self._draw_weather(y, rng, k, t)
        oy, ox = rng.integers(0, 64, 2)
        y += noise * st.noise_y[oy : oy + h, ox : ox + w]
        cw, ch = w // 2, h // 2
        ou, ov = rng.integers(0, 64, 2)
        cn = (0.15 if ir else 0.6) * noise  # IR mode sends near-pure grey
        uu = 128 + chroma_gain * (u - 128) + cn * st.noise_c[ou : ou + ch, ov : ov + cw]
        vv = 128 + chroma_gain * (v - 128) + cn * st.noise_c[ov : ov + ch, ou : ou + cw]
        return _to_u8(y), _to_u8(uu), _to_u8(vv)

    @staticmethod
    def _draw_clutter(st: _Static, y: F32, t: float, ir: bool) -> None:
        for bush in st.foliage:
            clutter.draw_bush(y, bush, t, ir)
        if st.water is not None:
            clutter.draw_water(y, st.water, t)
        for flag in st.flags:
            clutter.draw_flag(y, flag, t)

    def _draw_shadows_and_pools(self, st: _Static, y: F32, t: float) -> None:
        if st.clouds is not None:
            y *= st.clouds.gain(t)
        for sweep in self.phenomena.sweeps:
            pool = lighting.sweep_map(sweep, t, self.height, self.width)
            if pool is not None:
                y *= pool

    def _draw_weather(self, y: F32, rng: np.random.Generator, k: int, t: float) -> None:
        p = self.phenomena
        if p.rain > 0:
            weather.draw_rain(y, rng, p.rain)
        if p.snow > 0:
            weather.draw_snow(y, self.seed, self._salt, p.snow, t)
        if p.streaks is not None:
            weather.draw_streaks(y, _rng(self.seed, self._salt, 6, k), p.streaks)
        if p.near_flakes is not None:
            weather.draw_near_flakes(y, self.seed, self._salt, p.near_flakes, t)

    def _draw_walkers(self, y: F32, u: F32, v: F32, t: float, ir: bool) -> None:
        for walker in self.phenomena.walkers:
            found = self._silhouette(walker, t)
            if found is None:
                continue
            m, ys0, xs0 = found
            ys1, xs1 = ys0 + m.shape[0], xs0 + m.shape[1]
            level = actors.shade(walker, m, ys0, ir)
            region = y[ys0:ys1, xs0:xs1]
            region[m] = level[m]
            if walker.lights:
                self._headlight(y, walker, t)
            # chroma at half resolution
            cm = m[(ys0 % 2) :: 2, (xs0 % 2) :: 2]
            cy0, cx0 = (ys0 + 1) // 2, (xs0 + 1) // 2
            ch = min(cm.shape[0], u.shape[0] - cy0)
            cwid = min(cm.shape[1], u.shape[1] - cx0)
            cm = cm[:ch, :cwid]
            u[cy0 : cy0 + ch, cx0 : cx0 + cwid][cm] = 128 + walker.colour[0]
            v[cy0 : cy0 + ch, cx0 : cx0 + cwid][cm] = 128 + walker.colour[1]

    def _headlight(self, y: F32, walker: Walker, t: float) -> None:
        """A car's pool of light on the road ahead of it."""
        pos = walker.position(t)
        if pos is None:
            return
        h, w = self.height, self.width
        ahead = walker.direction(t) or 1.0
        length = walker.height * walker.aspect * h / w
        cx = pos[0] + ahead * length * 0.9
        xs = np.linspace(0, 1, w, dtype=np.float32)[None, :]
        ys = np.linspace(0, 1, h, dtype=np.float32)[:, None]
        pool = np.exp(-(((xs - cx) / (length * 0.6)) ** 2) - ((ys - pos[1]) / 0.05) ** 2)
        y *= 1.0 + 1.5 * pool


def _to_u8(plane: F32) -> U8:
    np.clip(plane, 0, 255, out=plane)
    return np.rint(plane).astype(np.uint8)


__all__ = ["Interval", "Phenomena", "Scene", "Walker"]
