"""Scene synthesis: deterministic, well-formed planes, ground truth that matches the pixels."""

from __future__ import annotations

import numpy as np
import pytest

from privastead.camsim.lens import Refocus, radius, soften
from privastead.camsim.lighting import Flicker, flicker_gain
from privastead.camsim.mount import Knock, offset, shift
from privastead.camsim.scene import (
    QUIET_SCENES,
    RENDER_DIGEST,
    RENDER_VERSION,
    SCENES,
    make_scene,
    render_digest,
)


@pytest.mark.parametrize("name", sorted(SCENES))
def test_planes_are_yuv420_and_deterministic(name: str) -> None:
    a = make_scene(name, width=160, height=90, fps=5, seed=3, duration=20)
    b = make_scene(name, width=160, height=90, fps=5, seed=3, duration=20)
    for index in (0, 17, 63):
        ya, ua, va = a.render(index)
        yb, ub, vb = b.render(index)
        assert ya.shape == (90, 160) and ua.shape == va.shape == (45, 80)
        assert ya.dtype == ua.dtype == np.uint8
        assert np.array_equal(ya, yb) and np.array_equal(ua, ub) and np.array_equal(va, vb)


def test_seed_changes_the_scene() -> None:
    a = make_scene("walkers", width=160, height=90, seed=1).render(0)[0]
    b = make_scene("walkers", width=160, height=90, seed=2).render(0)[0]
    assert not np.array_equal(a, b)


def test_quiet_scenes_have_no_truth_and_object_scenes_do() -> None:
    for name in SCENES:
        scene = make_scene(name, width=160, height=90, fps=5, seed=0)
        if name in QUIET_SCENES:
            assert scene.truth == ()
        else:
            assert scene.truth, name
            assert all(0 <= i.start < i.end <= scene.duration + 1e-6 for i in scene.truth)


def test_truth_matches_where_the_pixels_change() -> None:
    # Without noise sources the frame differs from the empty background exactly when an
    # object is in view: the ground truth is about pixels, not about the script alone.
    scene = make_scene("demo", width=320, height=180, fps=5, seed=0, duration=30)
    scene.phenomena = type(scene.phenomena)(noise=0.0, walkers=scene.phenomena.walkers)
    empty = make_scene("static", width=320, height=180, fps=5, seed=0, duration=30)
    empty_phen = type(empty.phenomena)(noise=0.0)
    base = type(scene)("demo", empty_phen, width=320, height=180, fps=5, seed=0, duration=30)
    base._salt = scene._salt  # same background texture
    for k in range(scene.frame_count):
        t = k / scene.fps
        inside = any(i.start <= t < i.end for i in scene.truth)
        diff = np.abs(scene.render(k)[0].astype(int) - base.render(k)[0].astype(int))
        assert (diff.max() > 10) == inside, (k, t)


def test_ir_switch_turns_colour_grey() -> None:
    scene = make_scene("ir", width=160, height=90, fps=5, seed=0)
    first = scene.phenomena.ir_switches[0]
    _, u_day, _ = scene.render(int(first * scene.fps) - 2)
    _, u_ir, _ = scene.render(int(first * scene.fps) + 2)
    assert np.abs(u_day.astype(int) - 128).mean() > 5
    assert np.abs(u_ir.astype(int) - 128).mean() < 3


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="unknown scene"):
        make_scene("nope")
    with pytest.raises(ValueError, match="even"):
        make_scene("static", width=161, height=90)


def test_the_render_version_names_the_rendering() -> None:
    # Cached renders (the detection suite, camsim streams) are keyed by RENDER_VERSION: a
    # change to any scene's pixels must come with a new version, or stale caches are used.
    assert render_digest() == RENDER_DIGEST, (
        f"scenes render differently: set a new RENDER_VERSION (now {RENDER_VERSION}) "
        f"and RENDER_DIGEST = {render_digest()!r} in camsim/scene.py"
    )


def test_a_knock_moves_the_whole_view_rings_and_stays() -> None:
    knock = Knock(t=2.0, dx=3 / 360, dy=-2 / 360)  # 3 px right, 2 px up at 360 rows
    assert offset((knock,), 1.9, 360) == (0, 0)
    assert offset((knock,), 2.0, 360) == (-4, 6)  # it overshoots at first
    assert offset((knock,), 3.5, 360) == (-2, 3)  # and settles where it ended up
    plane = np.arange(40 * 60, dtype=np.float32).reshape(40, 60)
    moved = shift(plane, -2, 3)
    assert np.array_equal(moved[:-2, 3:], plane[2:, :-3])  # content moved up and right
    assert np.array_equal(moved[:, 0], np.r_[plane[2:, 0], plane[-1, 0], plane[-1, 0]])


def test_the_knock_scene_moves_every_edge_and_nothing_else() -> None:
    scene = make_scene("knock", width=640, height=360, fps=5, seed=1, duration=30)
    knock = scene.phenomena.knocks[0]
    before = scene.render(int((knock.t - 0.5) * 5))[0].astype(np.float64)
    after = scene.render(int((knock.t + 1.5) * 5))[0].astype(np.float64)
    dy, dx = offset(scene.phenomena.knocks[:1], knock.t + 1.5, 360)
    assert (dy, dx) != (0, 0)
    # Moved back by the knock, the later frame is the earlier one up to sensor noise.
    back = after[max(0, dy) : 360 + min(0, dy), max(0, dx) : 640 + min(0, dx)]
    same = before[max(0, -dy) : 360 + min(0, -dy), max(0, -dx) : 640 + min(0, -dx)]
    assert np.abs(back - same).mean() < 4.0
    assert np.abs(after - before).mean() > np.abs(back - same).mean() + 1.0


def test_a_refocus_ramps_the_blur_and_hunts_back_part_of_the_way() -> None:
    changes = (Refocus(2.0, 4 / 720, ramp=0.5), Refocus(3.0, 2 / 720), Refocus(9.0, 0.0))
    assert radius(changes, 1.9, 720) == 0.0
    assert radius(changes, 2.25, 720) == pytest.approx(2.0)  # halfway up the ramp
    assert radius(changes, 2.9, 720) == pytest.approx(4.0)
    assert radius(changes, 3.0, 1440) == pytest.approx(4.0)  # scales with the frame
    assert radius(changes, 9.5, 720) == 0.0


def test_softening_keeps_the_light_and_blurs_the_edges() -> None:
    rng = np.random.default_rng(2)
    plane = np.kron(rng.uniform(40, 200, (12, 20)), np.ones((10, 10))).astype(np.float32)
    assert soften(plane, 0.8) is plane  # under a pixel's worth: sharp
    soft = soften(plane, 4.0)
    assert soft.shape == plane.shape and soft.dtype == np.float32
    assert abs(float(soft.mean()) - float(plane.mean())) < 1.0
    # Inside a patch nothing changes; across its edges the steps spread over pixels.
    assert soft[5, 5] == pytest.approx(plane[5, 5])
    steps = np.abs(np.diff(plane, axis=1)).max()
    assert np.abs(np.diff(soft, axis=1)).max() < 0.5 * steps


def test_the_focus_scene_softens_every_edge_and_moves_nothing() -> None:
    scene = make_scene("focus", width=640, height=360, fps=5, seed=0, duration=30)
    change = scene.phenomena.focus[0]
    assert change.blur > 0
    before = scene.render(int((change.t - 1.0) * 5))[0].astype(np.float64)
    after = scene.render(int((change.t + 1.5) * 5))[0].astype(np.float64)
    detail = [float(np.abs(np.diff(p, axis=1)).mean()) for p in (before, after)]
    assert detail[1] < 0.8 * detail[0]  # sensor noise included, the edges are softer
    assert abs(after.mean() - before.mean()) < 3.0  # ...and the light the same


def test_a_mains_light_bands_the_rows_and_the_bands_jump() -> None:
    # 100 Hz pulses, a shutter rolling over 90 % of a 15 fps frame: six bands, each frame
    # starting 6.67 cycles later than the one before (two thirds of a band on).
    flicker = Flicker(depth=0.1, pulses=100.0, readout=0.9, phase=0.1)
    rows = flicker_gain(flicker, 0.0, 720, 15.0)[:, 0]
    assert rows.shape == (720,)
    assert rows.min() == pytest.approx(0.9, abs=1e-3) and rows.max() == pytest.approx(1.1, abs=1e-3)
    crossings = np.count_nonzero(np.diff(rows > 1.0))
    assert crossings == 12  # six bands: twelve crossings of the mean
    later = flicker_gain(flicker, 1 / 15, 720, 15.0)[:, 0]
    shift = round(720 * (2 / 3) / 6)  # two thirds of a band (120 rows) earlier in the frame
    np.testing.assert_allclose(later[: 720 - shift], rows[shift:], atol=1e-4)


def test_the_flicker_scene_bands_the_rows_and_nothing_else() -> None:
    scene = make_scene("flicker", width=640, height=360, fps=5, seed=2, duration=10)
    flicker = scene.phenomena.flicker
    assert flicker is not None
    a, b = (scene.render(i)[0].astype(np.float64) for i in (10, 11))
    want = flicker_gain(flicker, 11 / 5, 360, 5.0) / flicker_gain(flicker, 10 / 5, 360, 5.0)
    # Row by row, one frame is the other times the ratio of their bands (up to noise).
    ratio = np.median((b + 0.5) / (a + 0.5), axis=1)
    np.testing.assert_allclose(ratio, want[:, 0], atol=0.03)
