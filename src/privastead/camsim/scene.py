"""The camsim scene catalogue: named, seeded scenes with ground truth.

Each name is a recipe; the seed draws its details (where bushes grow, how hard it rains, who
walks where and when), so one name gives endless distinct clips. Rendering is in
``camsim.render`` (sensor, light, actors) with ``weather``, ``lighting``, ``clutter`` and
``texture``; the detection suite (``camsim.suite``) picks scenes, seeds and renderings.

The first fourteen scenes are the original suite and render exactly as they always did; the
rest were added to test that detection generalises (other rain and snow renderings, light
steps and sweeps, clouds, auto-exposure steps, stronger wind, water, flags, cars, faint and
slow people, other backgrounds).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from privastead.camsim.lens import Refocus
from privastead.camsim.lighting import Flicker, Sweep
from privastead.camsim.mount import Knock
from privastead.camsim.render import Interval, Phenomena, Scene, Walker
from privastead.camsim.texture import rng as _rng
from privastead.camsim.weather import NearFlakes, Streaks

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
    # -- generalisation scenes
    "downpour": "long slanted motion-blurred rain streaks on any background, nothing moving",
    "drizzle": "IR night: drops near the lens lit by the IR lamp, strong noise, nothing moving",
    "blizzard": "dense snow with big soft flakes right in front of the lens, nothing moving",
    "lamp": "dim evening; the whole frame brightens x1.3-1.6 in one frame and back",
    "headlights": "night; pools of light sweep across the ground (cars outside the view)",
    "clouds": "sunny; soft cloud shadows drift across the view",
    "autoexposure": "auto-exposure steps (ramped), hunting and drift, nothing moving",
    "gale": "strong gusty wind: many bushes and trees swaying hard, flags flapping",
    "pond": "rippling water with sun glints, a flag and bushes, nothing else moving",
    "darknoise": "a dark street without IR: heavy sensor noise, nothing moving",
    "cars": "cars (and a few people) passing along a street",
    "faint": "people in clothes close to the background's brightness, walking slowly",
    "slow": "people strolling very slowly, one standing for a long time",
    "rainwalk": "long-streak rain while people of all sizes cross",
    "snowwalk": "dense snow with near-lens flakes while people cross",
    "windwalk": "strong wind in the bushes while people walk in front of them",
    "nightcars": "night, no IR: cars with headlights and people in the light of the street",
    "lampwalk": "whole-frame light steps while people cross",
    "exposurewalk": "auto-exposure steps (ramped) and hunting while people cross",
    "knock": "the camera is knocked now and then: the view jumps a few pixels, rings, settles",
    "knockwalk": "the camera is knocked now and then while people cross",
    "flicker": "evening under a light on mains power: bands roll or jump across the rows",
    "flickerwalk": "people cross under a light on mains power that bands the rows",
    "focus": "the lens goes soft now and then (refocusing, hunting) and sharp again",
    "focuswalk": "people cross while the lens goes soft and sharp again",
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
    "downpour",
    "drizzle",
    "blizzard",
    "lamp",
    "headlights",
    "clouds",
    "autoexposure",
    "gale",
    "pond",
    "darknoise",
    "knock",
    "flicker",
    "focus",
)

#: The original suite (tuned on seeds 0-2 before the generalisation work).
FIRST_SCENES: tuple[str, ...] = tuple(list(SCENES)[:14])


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


def _background(rng: np.random.Generator) -> str:
    return str(rng.choice(["yard", "street", "wall"]))


def _faint_luma(rng: np.random.Generator) -> float:
    # Ground level of the yard/street/wall backgrounds is ~100-150: clothing 12-25 levels off.
    return float(rng.uniform(100, 140) + rng.choice([-1, 1]) * rng.uniform(12, 25))


def _cars(
    rng: np.random.Generator,
    duration: float,
    *,
    period: float,
    first: float,
    size: tuple[float, float],
    speed: tuple[float, float],
    lane: tuple[float, float],
    lights: bool = False,
) -> tuple[Walker, ...]:
    cars = []
    t = first
    while True:
        height = float(rng.uniform(*size))
        margin = height * 1.4
        v = float(rng.uniform(*speed))
        end = t + (1 + 2 * margin) / v
        if end > duration - 1.0:
            break
        y = float(rng.uniform(*lane))
        xa, xb = (-margin, 1 + margin) if rng.random() < 0.5 else (1 + margin, -margin)
        cars.append(
            Walker(
                path=((t, xa, y), (end, xb, y)),
                height=height,
                luma=float(rng.choice([rng.uniform(25, 60), rng.uniform(150, 220)])),
                colour=(float(rng.uniform(-30, 30)), float(rng.uniform(-30, 30))),
                kind="car",
                lights=lights,
            )
        )
        t = end + period * float(rng.uniform(0.5, 1.0))
    return tuple(cars)


def _strollers(
    rng: np.random.Generator,
    duration: float,
    *,
    size: tuple[float, float],
    speed: tuple[float, float],
    lane: tuple[float, float],
    luma: Callable[[], float] | None = None,
) -> tuple[Walker, ...]:
    """Slow people who come out of a door or in from an edge, stroll, often stand for a
    while, and leave the view or go in again: long truth intervals with little motion."""
    walkers = []
    t = float(rng.uniform(1.5, 4.0))
    while t < duration - 10:
        height = float(rng.uniform(*size))
        v = float(rng.uniform(*speed)) * float(rng.choice([-1, 1]))
        y = float(rng.uniform(*lane))
        margin = height * 0.3
        x = (
            float(rng.uniform(0.15, 0.85))
            if rng.random() < 0.5
            else (-margin if v > 0 else 1 + margin)
        )
        walk = float(rng.uniform(4, 9))
        stand = float(rng.uniform(3, 12)) if rng.random() < 0.6 else 0.0
        walk2 = float(rng.uniform(3, 8))
        points = [(t, x, y), (t + walk, x + v * walk, y)]
        if stand:
            points.append((t + walk + stand, x + v * walk, y))
        end = points[-1][0] + walk2
        if end > duration - 1:
            break
        points.append((end, x + v * (walk + walk2), y))
        walkers.append(
            Walker(
                path=tuple(points),
                height=height,
                luma=luma() if luma is not None else _person_luma(rng),
                colour=(float(rng.uniform(-15, 15)), float(rng.uniform(-15, 15))),
            )
        )
        t = end + float(rng.uniform(4, 10))
    return tuple(walkers)


def _merge(*groups: tuple[Walker, ...]) -> tuple[Walker, ...]:
    return tuple(w for g in groups for w in g)


def _streaks(rng: np.random.Generator, heavy: float = 1.0) -> Streaks:
    return Streaks(
        density=heavy * float(rng.uniform(1.0, 2.5)),
        length=float(rng.uniform(0.05, 0.12)),
        slant=float(rng.uniform(-0.3, 0.3)),
        brightness=(float(rng.uniform(12, 25)), float(rng.uniform(40, 70))),
        wide=float(rng.uniform(0.05, 0.2)),
    )


def _steps(
    rng: np.random.Generator, duration: float, period: float, factor: tuple[float, float]
) -> tuple[tuple[float, float], ...]:
    """Light steps: up by a random factor, later back down (or the other way round)."""
    steps = []
    t = float(rng.uniform(0.3, 0.7)) * period
    up = rng.random() < 0.7
    while t < duration - 2:
        f = float(rng.uniform(*factor))
        steps.append((round(t, 3), f if up else 1 / f))
        t += period * float(rng.uniform(0.6, 1.2))
        if t < duration - 2:
            steps.append((round(t, 3), 1 / f if up else f))
        t += period * float(rng.uniform(0.6, 1.2))
    return tuple(steps)


def _auto_exposure(rng: np.random.Generator, duration: float, period: float) -> dict[str, Any]:
    """A camera's auto exposure over a textured yard: ramped steps about every ``period``
    seconds, hunting and slow drift (``Phenomena`` keywords, drawn in this order)."""
    return {
        "noise": float(rng.uniform(2, 3)),
        "background": _background(rng),
        "ae_steps": _steps(rng, duration, period, (1.1, 1.3)),
        "ae_hunting": float(rng.uniform(0.02, 0.05)),
        "exposure_drift": float(rng.uniform(0.1, 0.25)),
        "exposure_period": float(rng.uniform(25, 45)),
    }


def _sweeps(rng: np.random.Generator, duration: float) -> tuple[Sweep, ...]:
    sweeps = []
    t = float(rng.uniform(3, 8))
    while t < duration - 4:
        sweeps.append(
            Sweep(
                t=round(t, 3),
                seconds=float(rng.uniform(1.5, 3.5)),
                y=float(rng.uniform(0.55, 0.9)),
                strength=float(rng.uniform(0.8, 2.0)),
                left_to_right=bool(rng.random() < 0.5),
            )
        )
        t += float(rng.uniform(6, 14))
    return tuple(sweeps)


def _knocks(rng: np.random.Generator, duration: float, period: float) -> tuple[Knock, ...]:
    """Knocks about every ``period`` seconds, each moving the view 0.8-4 pixels at 720p in
    any direction; the view wanders at most about 5 pixels from where it started (a knock
    beyond that points back)."""
    knocks = []
    t = float(rng.uniform(0.8, 1.2)) * period
    x = y = 0.0
    while t < duration - 2:
        size = float(rng.uniform(0.8, 4.0)) / 720
        angle = float(rng.uniform(0, 2 * math.pi))
        dx, dy = size * math.cos(angle), size * math.sin(angle)
        if math.hypot(x + dx, y + dy) > 5 / 720:
            dx, dy = -dx if x * dx > 0 else dx, -dy if y * dy > 0 else dy
        x, y = x + dx, y + dy
        knocks.append(Knock(round(t, 3), dx, dy))
        t += period * float(rng.uniform(0.7, 1.3))
    return tuple(knocks)


def _refocus(rng: np.random.Generator, duration: float, period: float) -> tuple[Refocus, ...]:
    """The lens goes soft about every ``period`` seconds (a blur of 1-4.5 pixels at 720p,
    reached at once or within 0.6 s), half the time hunts back part of the way, and is sharp
    again 4-12 s later."""
    changes = []
    t = float(rng.uniform(0.5, 1.0)) * period
    while t < duration - 2:
        blur = float(rng.uniform(1.0, 4.5)) / 720
        changes.append(Refocus(round(t, 3), blur, float(rng.choice([0.0, rng.uniform(0.1, 0.6)]))))
        if rng.random() < 0.5:
            t += float(rng.uniform(0.3, 0.8))
            changes.append(Refocus(round(t, 3), blur * float(rng.uniform(0.3, 0.7)), 0.3))
        t += float(rng.uniform(4, 12))
        changes.append(Refocus(round(t, 3), 0.0, float(rng.choice([0.0, rng.uniform(0.1, 0.6)]))))
        t += period * float(rng.uniform(0.4, 0.8))
    return tuple(changes)


def _flicker(rng: np.random.Generator) -> Flicker:
    """A mains light's bands: 50 or 60 Hz mains (pulses at twice that, off by up to 0.4 %
    as the grid wanders), a shutter rolling over 60-95 % of the frame time, a gain swinging
    by 5-20 % (cheap LED drivers and old tubes; a long exposure smooths it)."""
    mains = float(rng.choice([100.0, 120.0])) * (1.0 + float(rng.uniform(-0.004, 0.004)))
    return Flicker(
        depth=float(rng.uniform(0.05, 0.2)),
        pulses=mains,
        readout=float(rng.uniform(0.6, 0.95)),
        phase=float(rng.uniform(0, 1)),
    )


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


_NEW: dict[str, Builder] = {
    "downpour": lambda rng, d: Phenomena(
        noise=float(rng.uniform(2, 3.5)),
        background=_background(rng),
        streaks=_streaks(rng),
        exposure_drift=float(rng.uniform(0.02, 0.08)),
        exposure_period=float(rng.uniform(20, 40)),
    ),
    "drizzle": lambda rng, d: Phenomena(
        noise=float(rng.uniform(3, 4.5)),
        ir_switches=(0.0,),
        background=_background(rng),
        streaks=Streaks(
            density=float(rng.uniform(0.2, 0.5)),
            length=float(rng.uniform(0.04, 0.1)),
            slant=float(rng.uniform(-0.2, 0.2)),
            brightness=(30.0, float(rng.uniform(55, 80))),
            wide=0.3,
        ),
    ),
    "blizzard": lambda rng, d: Phenomena(
        noise=float(rng.uniform(2, 3)),
        background=_background(rng),
        snow=float(rng.uniform(0.3, 0.6)),
        near_flakes=NearFlakes(count=int(rng.integers(2, 7))),
        exposure_drift=0.04,
    ),
    "lamp": lambda rng, d: Phenomena(
        noise=float(rng.uniform(3, 5)),
        darkness=float(rng.uniform(0.35, 0.55)),
        background=_background(rng),
        light_steps=_steps(rng, d, 14.0, (1.3, 1.6)),
    ),
    "headlights": lambda rng, d: Phenomena(
        noise=float(rng.uniform(3.5, 5)),
        darkness=float(rng.uniform(0.25, 0.4)),
        background=str(rng.choice(["yard", "street"])),
        sweeps=_sweeps(rng, d),
    ),
    "clouds": lambda rng, d: Phenomena(
        noise=2.0,
        background=_background(rng),
        clouds=float(rng.uniform(0.25, 0.45)),
        cloud_speed=float(rng.uniform(0.01, 0.03)),
        exposure_drift=0.05,
    ),
    "autoexposure": lambda rng, d: Phenomena(**_auto_exposure(rng, d, 8.0)),
    "gale": lambda rng, d: Phenomena(
        noise=2.5,
        background=str(rng.choice(["yard", "street"])),
        foliage=int(rng.integers(3, 6)),
        wind=float(rng.uniform(1.3, 2.0)),
        flags=int(rng.integers(1, 3)),
    ),
    "pond": lambda rng, d: Phenomena(
        noise=2.0,
        water=True,
        foliage=int(rng.integers(1, 3)),
        wind=float(rng.uniform(1.0, 1.5)),
        flags=int(rng.integers(0, 2)),
    ),
    "darknoise": lambda rng, d: Phenomena(
        noise=float(rng.uniform(6, 9)),
        darkness=float(rng.uniform(0.2, 0.3)),
        background=str(rng.choice(["street", "wall"])),
    ),
    "cars": lambda rng, d: Phenomena(
        noise=2.5,
        background="street",
        exposure_drift=0.05,
        walkers=_merge(
            _cars(
                rng,
                d,
                period=8.0,
                first=2.0,
                size=(0.1, 0.22),
                speed=(0.12, 0.35),
                lane=(0.7, 0.92),
            ),
        ),
    ),
    "faint": lambda rng, d: Phenomena(
        noise=float(rng.uniform(2, 3)),
        background=_background(rng),
        walkers=_people(
            rng,
            d,
            period=10.0,
            first=2.0,
            size=(0.1, 0.3),
            speed=(0.03, 0.08),
            lane=(0.7, 0.95),
            luma=_faint_luma(rng),
        ),
    ),
    "slow": lambda rng, d: Phenomena(
        noise=2.5,
        background=_background(rng),
        walkers=_merge(
            _people(
                rng,
                d,
                period=20.0,
                first=2.0,
                size=(0.08, 0.2),
                speed=(0.015, 0.03),
                lane=(0.6, 0.85),
            ),
        ),
    ),
    "rainwalk": lambda rng, d: Phenomena(
        noise=3.0,
        background=_background(rng),
        streaks=_streaks(rng),
        walkers=_merge(
            _near(rng, d, 14.0, 3.0),
            _people(
                rng,
                d,
                period=20.0,
                first=8.0,
                size=(0.06, 0.1),
                speed=(0.04, 0.07),
                lane=(0.5, 0.6),
            ),
        ),
    ),
    "snowwalk": lambda rng, d: Phenomena(
        noise=2.5,
        background=_background(rng),
        snow=float(rng.uniform(0.3, 0.5)),
        near_flakes=NearFlakes(count=int(rng.integers(2, 5))),
        walkers=_near(rng, d, 14.0, 3.0),
    ),
    "windwalk": lambda rng, d: Phenomena(
        noise=2.5,
        foliage=int(rng.integers(3, 5)),
        wind=float(rng.uniform(1.2, 1.8)),
        walkers=_people(
            rng,
            d,
            period=14.0,
            first=3.0,
            size=(0.15, 0.35),
            speed=(0.06, 0.14),
            lane=(0.55, 0.8),
        ),
    ),
    "nightcars": lambda rng, d: Phenomena(
        noise=float(rng.uniform(4, 5)),
        darkness=0.3,
        background="street",
        walkers=_merge(
            _cars(
                rng,
                d,
                period=12.0,
                first=3.0,
                size=(0.1, 0.2),
                speed=(0.15, 0.3),
                lane=(0.7, 0.9),
                lights=True,
            ),
        ),
    ),
    "lampwalk": lambda rng, d: Phenomena(
        noise=float(rng.uniform(3, 4)),
        darkness=float(rng.uniform(0.4, 0.6)),
        background=_background(rng),
        light_steps=_steps(rng, d, 9.0, (1.3, 1.6)),
        walkers=_near(rng, d, 12.0, 2.0),
    ),
    "exposurewalk": lambda rng, d: Phenomena(
        **_auto_exposure(rng, d, 7.0), walkers=_near(rng, d, 11.0, 2.0)
    ),
    "knock": lambda rng, d: Phenomena(
        noise=float(rng.uniform(2, 3.5)),
        background=_background(rng),
        exposure_drift=0.05,
        knocks=_knocks(rng, d, 10.0),
    ),
    "knockwalk": lambda rng, d: Phenomena(
        noise=float(rng.uniform(2, 3)),
        background=_background(rng),
        knocks=_knocks(rng, d, 8.0),
        walkers=_near(rng, d, 12.0, 2.0),
    ),
    "flicker": lambda rng, d: Phenomena(
        noise=float(rng.uniform(2.5, 4)),
        darkness=float(rng.uniform(0.5, 0.8)),
        background=_background(rng),
        flicker=_flicker(rng),
    ),
    "flickerwalk": lambda rng, d: Phenomena(
        noise=float(rng.uniform(2.5, 3.5)),
        darkness=float(rng.uniform(0.5, 0.8)),
        background=_background(rng),
        flicker=_flicker(rng),
        walkers=_near(rng, d, 12.0, 2.0),
    ),
    "focus": lambda rng, d: Phenomena(
        noise=float(rng.uniform(2, 3.5)),
        background=_background(rng),
        exposure_drift=0.05,
        focus=_refocus(rng, d, 14.0),
    ),
    "focuswalk": lambda rng, d: Phenomena(
        noise=float(rng.uniform(2, 3)),
        background=_background(rng),
        focus=_refocus(rng, d, 12.0),
        walkers=_near(rng, d, 12.0, 2.0),
    ),
}
_BUILDERS.update(_NEW)


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


#: Names the rendering: caches of rendered scenes (the suite's MP4 files, camsim's encoded
#: streams) are keyed by it and the scene's name. Change it whenever a scene renders
#: differently; ``RENDER_DIGEST`` (checked by tests/unit/test_scene.py) catches a forgotten
#: change. A new scene changes only the digest: no cache holds a rendering of its name.
RENDER_VERSION = "9e9ff89abe2c6609"
RENDER_DIGEST = "9e94b97cc04ec9e9"


def code_hash() -> str:
    """The key of rendered-scene caches (``RENDER_VERSION``)."""
    return RENDER_VERSION


def render_digest() -> str:
    """A digest of a few small frames of every scene: it changes when any rendering does."""
    import hashlib

    digest = hashlib.sha256()
    for name in SCENES:
        scene = make_scene(name, width=96, height=54, fps=5, seed=7, duration=40)
        for index in (0, 37, 111, 190):
            for plane in scene.render(index):
                digest.update(plane.tobytes())
    return digest.hexdigest()[:16]


__all__ = [
    "FIRST_SCENES",
    "QUIET_SCENES",
    "RENDER_DIGEST",
    "RENDER_VERSION",
    "SCENES",
    "Interval",
    "Phenomena",
    "Scene",
    "Walker",
    "code_hash",
    "make_scene",
    "render_digest",
]
