"""Tracks in chronic areas, fragments, broken blobs and light steps: what churns in place,
lights up beside something that was already there, breaks in two, or appears along the edges
as the exposure steps, has gone nowhere and is not an object; what goes somewhere is.

Synthetic blob sequences straight into ``media.tracks.Tracks`` (boxes on a 60 x 120 grid,
10 analysed frames a second, every blob coherent and sharp unless said otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Container

import numpy as np
import numpy.typing as npt

from privastead.media.detector import MotionDetector
from privastead.media.settings import DetectionSettings
from privastead.media.tracks import Tracks
from privastead.media.verdicts import Blobs

FPS = 10.0
YES, NO = np.ones(1, bool), np.zeros(1, bool)


def _run(
    frames: list[tuple[list[list[float]], list[bool]]],
    activity: Callable[[int], npt.NDArray[np.float32]] | None = None,
    *,
    early: int = 0,
    let_go: list[bool] | None = None,
    trailing: list[bool] | None = None,
) -> list[bool]:
    """Feed (boxes, chronic per blob) per frame, and the detector's map of chronic motion in
    each frame if given, the first ``early`` frames as the start-up's; return whether any
    blob was motion (and append to ``let_go`` whether any blob was taken into the background
    as what a let-go track left, to ``trailing`` whether one was let go but still moving)."""
    tracks = Tracks((60, 120))
    out = []
    for i, (boxes, chronic) in enumerate(frames):
        n = len(boxes)
        motion, _, _ = tracks.update(
            np.array(boxes, np.float64).reshape(n, 4),
            np.ones(n, bool),
            np.array(chronic, bool),
            np.zeros(n, bool),
            i / FPS,
            0.4,
            np.ones(n, bool),
            activity=None if activity is None else activity(i),
            early=i < early,
        )
        out.append(bool(motion.any()))
        if let_go is not None:
            let_go.append(bool(tracks.left.any()))
        if trailing is not None:
            trailing.append(bool(tracks.trailing.any()))
    return out


def _walk(steps: int, chronic: list[bool] | bool, *, start: int = 10) -> list[tuple]:
    """A 6 x 6 blob moving a cell a frame to the right."""
    flags = chronic if isinstance(chronic, list) else [chronic] * steps
    return [([[20.0, start + i, 26.0, start + 6 + i]], [flags[i]]) for i in range(steps)]


def test_a_blob_travelling_inside_a_chronic_area_is_not_an_object() -> None:
    # glints running across water, never leaving it: 3 sizes of travel, 4 s
    assert not any(_run(_walk(40, True)))


def test_a_blob_that_comes_out_of_a_chronic_area_is_an_object() -> None:
    # the same travel, but seen once where nothing churns (it went somewhere)
    flags = [True] * 40
    flags[25] = False
    seen = _run(_walk(40, flags))
    assert any(seen)
    assert not any(seen[:25])


def test_a_blob_that_walks_into_a_chronic_area_is_an_object() -> None:
    flags = [False] * 3 + [True] * 37  # born outside, then in front of a bush
    assert any(_run(_walk(40, flags)))


def _pond(learned_by: int) -> Callable[[int], npt.NDArray[np.float32]]:
    """The map of chronic motion over a pond (rows 15-35, columns 5-70) that is learned from
    its left end to its right: columns 5-30 are known from the start, the rest from frame
    ``learned_by`` on; the lawn around it stays quiet."""
    known = np.zeros((60, 120), np.float32)
    known[15:35, 5:30] = 0.4
    later = known.copy()
    later[15:35, 5:70] = 0.4
    return lambda i: later if i >= learned_by else known


def test_a_patch_seen_outside_only_where_the_map_had_not_learned_yet_is_not_an_object() -> None:
    # a patch of ripples drifting right across the pond, born in the part of the water the
    # map has not learned yet ("outside" chronic areas for its first frames); by the time it
    # has travelled far enough, the map covers where it was seen outside
    flags = [False] * 2 + [True] * 38
    assert not any(_run(_walk(40, flags, start=32), _pond(learned_by=2)))
    # the same track, judged as if the map had never learned that part: it went somewhere
    assert any(_run(_walk(40, flags, start=32), _pond(learned_by=10_000)))


def test_a_person_who_steps_out_of_the_pond_onto_the_lawn_is_an_object() -> None:
    # seen outside on the lawn, which stays quiet: the map does not cover where they went
    flags = [True] * 30 + [False] * 10
    walk = [([[20.0, 10.0 + 2 * i, 26.0, 16.0 + 2 * i]], [flags[i]]) for i in range(40)]
    assert any(_run(walk, _pond(learned_by=0)))


def test_a_person_who_comes_from_the_lawn_into_the_pond_is_an_object() -> None:
    # born on the lawn (first seen outside there), then wading in: chronic from then on
    flags = [False] * 3 + [True] * 37
    walk = [([[20.0, 75.0 - 2 * i, 26.0, 81.0 - 2 * i]], [flags[i]]) for i in range(40)]
    assert any(_run(walk, _pond(learned_by=0)))


def test_a_track_that_turned_chronic_must_move_its_centre() -> None:
    # born at a bush's edge (not chronic), then the bush's blob: it only grows to one side
    # (the sides move, the centre moves by half as much), never going anywhere
    frames = [([[20.0, 10.0, 26.0, 16.0]], [False])]
    frames += [([[20.0, 10.0, 26.0, 16.0 + min(i, 8)]], [True]) for i in range(1, 40)]
    assert not any(_run(frames))


def test_a_fragment_lighting_up_beside_a_blob_does_not_move_its_track() -> None:
    # two still fragments of the same churning thing: the second appears a few cells away
    # (within reach of the track, not touching it) and stays; neither moves
    first = [20.0, 40.0, 24.0, 44.0]
    second = [16.0, 33.0, 19.0, 38.0]
    frames = [([first], [False])] * 2 + [([first, second], [False, False])] * 30
    assert not any(_run(frames))


def test_a_blob_that_splits_in_two_has_not_moved() -> None:
    # a still patch (a cloud's shadow thinning out) that breaks into two halves which stay
    # where they were: each half's centre lies a quarter of the whole's width off its centre
    whole = [[20.0, 40.0, 30.0, 60.0]]
    halves = [[20.0, 40.0, 30.0, 49.0], [20.0, 51.0, 30.0, 60.0]]
    frames = [(whole, [False])] * 10 + [(halves, [False, False])] * 30
    assert not any(_run(frames))


def test_a_patch_breaking_up_and_joining_again_in_the_startup_has_not_moved() -> None:
    # a bush not yet known as chronic, in the start-up: its blob breaks in two and joins again
    # in place, every frame or every few; where the joined blob took one piece's place, each
    # cycle added the offset between them to its travel
    whole = ([[20.0, 40.0, 30.0, 60.0]], [False])
    halves = ([[20.0, 40.0, 30.0, 49.0], [20.0, 51.0, 30.0, 60.0]], [False, False])
    for period in (1, 3):
        frames = [whole if (i // period) % 2 == 0 else halves for i in range(60)]
        assert not any(_run(frames, early=60)), period


def test_a_walker_whose_blob_breaks_up_and_joins_again_is_an_object() -> None:
    # a person's blob splits (legs apart from the body) every third frame as they walk:
    # the walking counts, the breaking up does not take it back
    frames: list[tuple[list[list[float]], list[bool]]] = []
    for i in range(30):
        c = 10.0 + i
        body = [[20.0, c, 30.0, c + 6.0]]
        if i % 3 == 2:
            body = [[20.0, c, 25.0, c + 6.0], [26.0, c, 30.0, c + 6.0]]
        frames.append((body, [False] * len(body)))
    assert any(_run(frames)[:15])


def test_a_walker_is_still_an_object() -> None:
    seen = _run(_walk(30, False))
    assert any(seen[:10])


def _stride(heights: list[float]) -> list[bool]:
    """A blob 8 cells wide crossing at 37.5 cells a second, analysed ten times a second from
    a 15 fps camera (two frames of every three: 0.067 s, then 0.133 s between them). After
    the long gap it has moved 5 cells and overlaps itself by less than half: not coherent.
    ``heights``: its height in each frame, in turn."""
    tracks = Tracks((120, 213))
    seen, t, col = [], 0.0, 0.0
    for i in range(30):
        long_gap = i % 2 == 0 and i > 0
        t += 2 / 15 if long_gap else 1 / 15
        col += 5.0 if long_gap else 2.5
        box = np.array([[60.0, col, 60.0 + heights[i % len(heights)], col + 8.0]])
        coherent = np.array([not long_gap])
        motion, _, _ = tracks.update(box, coherent, NO, NO, t, 0.4, YES)
        seen.append(bool(motion.any()))
    return seen


def test_a_brisk_walker_at_uneven_frame_intervals_is_an_object() -> None:
    # every other frame not coherent, it never had three coherent frames in a row; carried
    # whole from a coherent frame, it is coherent there too
    assert any(_stride([30.0])[:12])


def test_a_blob_that_changes_shape_after_a_coherent_one_was_not_carried() -> None:
    # what follows a coherent blob with another shape (chance streaks of rain next to
    # something) is not that blob carried on
    assert not any(_stride([30.0, 15.0]))


def test_explain_says_a_carried_blob_was_counted_coherent() -> None:
    # --explain tells an owner why a blob did not count; one the tracks carried on whole was
    # counted coherent, so "not coherent" would send them looking for the wrong cause
    tracks = Tracks((120, 213))
    tracks.update(np.array([[60.0, 0.0, 90.0, 8.0]]), YES, NO, NO, 0.0, 0.4, YES)
    box = np.array([[60.0, 5.0, 90.0, 13.0]])
    tracks.update(box, NO, NO, NO, 2 / 15, 0.4, YES)
    assert list(tracks.coherent) == [True]
    one = np.ones(1, bool)
    blobs = Blobs(np.array([240.0]), box, one, ~one, ~one, ~one, ~one, ~one, ~one, one)
    blobs.set_motion(~one, ~one, np.zeros(1), ~one)
    assert "not coherent" in blobs.reason(0)
    blobs.set_motion(~one, ~one, np.zeros(1), tracks.coherent)
    assert blobs.reason(0) == "tracking, not moving yet"


#: A small car far away at night, traced from a night scene at 1024x576 (12.5 fps): times,
#: and the columns its blob spanned (rows 88-92). It moves more than its own length between
#: some analysed frames, and its box stretches and shrinks as its headlights' smear joins it.
_CAR = [
    (0.00, 3, 7), (0.16, 4, 16), (0.24, 16, 20), (0.32, 20, 25), (0.40, 18, 29),
    (0.56, 27, 38), (0.64, 37, 42), (0.72, 37, 46), (0.80, 45, 51), (0.96, 45, 59),
    (1.04, 41, 53),
]  # fmt: skip


def _drive(
    trace: list[tuple[float, int, int]],
    *,
    chronic: bool = False,
    early: int = 0,
    light_steps: Container[int] = (),
) -> list[bool]:
    """Feed a trace of (time, first column, end column) as blobs that are never coherent, the
    first ``early`` frames as the start-up's, the light over the whole view stepping in the
    frames ``light_steps`` holds."""
    tracks = Tracks((144, 256))
    seen = []
    for i, (t, c0, c1) in enumerate(trace):
        box = np.array([[88.0, c0, 92.0, c1]])
        chronic_now = np.array([chronic])
        motion, _, _ = tracks.update(
            box, NO, chronic_now, NO, t, 0.4, YES, early=i < early, light_step=i in light_steps
        )
        seen.append(bool(motion.any()))
    return seen


#: 5 analysed frames a second: a thing six cells wide that moves four a frame overlaps
#: itself by a third, never coherent (a brisk walker).
_BRISK = [(i * 0.2, 10 + 4 * i, 16 + 4 * i) for i in range(20)]


def test_a_small_fast_car_at_night_is_an_object() -> None:
    # its blob overlaps itself in few frames and is seldom the same shape twice, so it is
    # never coherent; followed frame to frame, it goes steadily on
    assert any(_drive(_CAR))


def test_a_car_seen_as_the_smooth_smear_of_its_headlights_is_motion_while_it_goes_on() -> None:
    # traced from a night scene at 640x360: sharp in its first two frames, then only the
    # smear of its headlights, which has no sharp edge, growing ahead of it and then moving
    # on whole; confirmed early, it is motion once it has gone steadily further than its size
    tracks = Tracks((180, 320))
    seen = []
    for i in range(40):
        c1 = 205.0 if i < 20 else 205.0 - 4 * (i - 20)
        box = np.array([[101.0, 196.0 - 4 * i, 110.0, c1]])
        motion, _, _ = tracks.update(box, YES, NO, NO, i / FPS, 0.4, np.array([i < 2]))
        seen.append(bool(motion.any()))
    assert any(seen[30:])


def test_a_chance_chain_going_this_way_and_that_is_not_steady() -> None:
    # object-sized chance blobs of rain, each touching the last, four cells on and two back:
    # after 30 frames the chain is far from where it began, but most of the way it went was
    # back and forth
    trace = [(i * 0.08, 10 + (i // 2) * 2 + 4 * (i % 2), 15 + (i // 2) * 2 + 4 * (i % 2))
             for i in range(30)]  # fmt: skip
    assert not any(_drive(trace))


def test_a_walker_that_came_in_as_head_and_body_goes_steadily_on_once_whole() -> None:
    # traced from a walker coming in at 6 fps (960x540): never coherent (it moves half its
    # width a frame), and its first blobs were its head and body, now apart, now whole,
    # the track's centre hopping up and down between them; once it walks on whole it goes
    # steadily on, as it would had it come in whole (what went this way and that a second
    # ago no longer counts against it)
    tracks = Tracks((120, 213))
    split = [True, False, True, False, True, True, True, True, False, True]
    seen = []
    for i in range(26):
        c0 = 6.0 * i
        parts = [(74, 84), (85, 115)] if i < len(split) and split[i] else [(74, 115)]
        boxes = np.array([[r0, c0, r1, c0 + 11] for r0, r1 in parts], np.float64)
        n = len(boxes)
        never = np.zeros(n, bool)
        motion, _, _ = tracks.update(boxes, never, never, never, i / 6, 0.4, np.ones(n, bool))
        seen.append(bool(motion.any()))
    assert any(seen)


def _brisk_walker(split: Container[int] = ()) -> list[bool]:
    """A walker crossing a 640x360 view right to left at 5 analysed frames a second, traced
    from a lamp-lit scene onto a grid of 8-pixel cells (45 x 80): 5 cells wide, 2.6 cells a
    frame, never coherent. In the frames
    ``split`` holds its blob breaks in two across its waist (a band of it matched what is
    behind) and joins again in the next."""
    tracks = Tracks((45, 80))
    seen = []
    for i in range(14):
        c0 = 75.0 - 2.6 * i
        parts = [(24, 29), (30, 43)] if i in split else [(24, 43)]
        boxes = np.array([[r0, c0, r1, c0 + 5] for r0, r1 in parts], np.float64)
        never = np.zeros(len(boxes), bool)
        motion, _, _ = tracks.update(boxes, never, never, never, i / 5, 0.4, ~never)
        seen.append(bool(motion.any()))
    return seen


def test_a_walker_whose_blob_breaks_for_a_frame_goes_on_steadily_all_the_same() -> None:
    # each piece's centre lies off the whole's: frame to frame the track's centre hopped
    # down the body and back, and the walker was taken for wandering for a second (in idle
    # mode, where the background learned while idle differs a little, 0.8 s late); the way
    # the whole went is the same as when it does not break
    whole = _brisk_walker()
    assert any(whole)
    for frame in (4, 5, 6):
        assert _brisk_walker({frame}).index(True) == whole.index(True), frame


def _leaping(step: tuple[float, float], size: tuple[float, float], fps: float) -> list[bool]:
    """A blob of ``size`` (rows, columns) on a 640x360 view's grid (120 x 213) that moves by
    ``step`` (rows, columns) every analysed frame, ``fps`` a second, never coherent."""
    tracks = Tracks((120, 213))
    seen = []
    for i in range(int(3 * fps)):
        r0, c0 = 10.0 + step[0] * i, 200.0 - size[1] + step[1] * i
        boxes = np.array([[r0, c0, r0 + size[0], c0 + size[1]]])
        motion, _, _ = tracks.update(boxes, NO, NO, NO, i / fps, 0.4, YES)
        seen.append(bool(motion.any()))
    return seen


def test_a_thin_walker_that_clears_its_own_width_every_frame_is_an_object() -> None:
    # traced from a small walker at 5 fps (640x360): two cells wide, three cells a frame,
    # its blob never touches the one before; it was taken for a new thing lighting up beside
    # the last, frame after frame, and never went anywhere
    assert any(_leaping((0.0, -3.0), (6.0, 2.0), 5.0))


def test_a_flake_falling_clear_of_itself_every_frame_is_not_an_object() -> None:
    # traced from a blizzard at 7.5 fps: a big flake close to the lens falls a little more
    # than its own height a frame, as straight as the walker walks; being round, it clears
    # its box only by going further than its length, which a walker, narrow and upright,
    # never does. So too blown sideways, or drawn out by motion blur along the way it goes
    for step, size in (
        ((9.0, -0.5), (6.0, 5.0)),
        ((3.0, -8.0), (6.0, 6.0)),
        ((9.0, 0.0), (8.0, 2.0)),
    ):
        assert not any(_leaping(step, size, 7.5)), (step, size)


def test_a_steady_chain_in_a_chronic_area_is_not_an_object() -> None:
    # (a guard: a chronic track must also be seen outside chronic areas) where rain or
    # foliage churns, a chain of its blobs that happens to go one way is not taken for a car
    assert not any(_drive(_CAR, chronic=True))


def test_a_track_born_in_the_start_up_goes_on_steadily_once_it_is_over() -> None:
    # a brisk walker born in the start-up and going on after it is an object once it has
    # gone on steadily in frames after the start-up; what the start-up's frames alone show
    # (a flake falling straight through them) is not
    assert any(_drive(_BRISK, early=10)[10:])
    assert not any(_drive(_BRISK, early=20))


def _reshape(light_step: bool, *, early: bool = False) -> list[bool]:
    """A sharp blob that grows to one side (a side moves, its centre half as much), born in a
    frame where the light over the whole view stepped or not, in the detector's start-up or
    not."""
    tracks = Tracks((60, 120))
    seen = []
    for i in range(30):
        grow = min(i, 9)
        box = np.array([[20.0, 10.0, 26.0, 16.0 + grow]])
        step, start = light_step and i == 0, early and i < 5
        motion, _, _ = tracks.update(
            box, YES, NO, NO, i / FPS, 0.4, YES, light_step=step, early=start
        )
        seen.append(bool(motion.any()))
    return seen


def test_a_walker_born_as_the_light_stepped_goes_on_steadily_once_it_is_steady() -> None:
    # a walker under a light on mains power: its own blob can make the light look as if it
    # stepped in the frame it came in (and in some after); it goes on steadily in the frames
    # where the light does not step. What goes on only while the light steps is not steady
    assert any(_drive(_BRISK, light_steps={0}))
    assert any(_drive(_BRISK, light_steps=range(0, 20, 4)))
    assert not any(_drive(_BRISK, light_steps=range(20)))


def test_a_blob_born_with_a_light_step_must_carry_its_centre() -> None:
    # an auto-exposure step: a residue along a strong edge that clips, reshaping as the
    # step ramps; the same reshaping blob born at another moment counts (a car coming in)
    assert not any(_reshape(True))
    assert any(_reshape(False))


def test_the_light_steps_with_an_auto_exposure_ramp_not_with_drift() -> None:
    settings = DetectionSettings()
    floor = settings.noise_floor

    def steps(gains: list[float], dt: float) -> list[bool]:
        det = MotionDetector(settings, 320, 180)
        return [det._light_step(i * dt, dt, g, 0.0, floor) for i, g in enumerate(gains)]

    # exposure drifting 25 % over 40 s: under 0.4 % a frame at 10 fps
    assert not any(steps([1.004] * 50, 0.1))
    # an auto-exposure step of x1.1 ramped over 0.3 s
    assert any(steps([1.0] * 5 + [1.033] * 3 + [1.0] * 5, 0.1))
    # idle mode, keyframes a second apart: drift (4 % a second at most) is not a step, the
    # same auto-exposure step is
    assert not any(steps([1.04] * 5, 1.0))
    assert any(steps([1.0, 1.1, 1.0], 1.0))


def test_a_blob_born_in_the_startup_must_carry_its_centre() -> None:
    # what sways in place while the start-up is looked at again (a bush not yet known as
    # chronic) changes shape without going anywhere; a walker born then goes on walking
    assert not any(_reshape(False, early=True))
    assert any(_run(_walk(30, False), early=5)[:15])


def test_a_fragment_lighting_up_at_the_corner_of_a_startup_blob_has_not_moved() -> None:
    # a bush not yet known as chronic, in the start-up: a leaf lights up at a corner of its
    # blob (adjoining it, not overlapping), then the blob takes in both; the fragment's centre
    # lies most of a size off the blob's, and travel measured from the blob's centre made an
    # object of a bush that never moved
    blob = [20.0, 40.0, 29.0, 44.0]
    frames = [([blob], [False])] * 3 + [([[17.0, 44.0, 20.0, 48.0], blob], [False, False])]
    frames += [([[15.0, 40.0, 29.0, 48.0]], [False])] * 3 + [([[15.0, 44.0, 19.0, 48.0]], [False])]
    frames += [([blob], [False])] * 30
    assert not any(_run(frames, early=len(frames)))


def test_a_startup_blob_falling_back_into_a_corner_of_itself_has_not_moved() -> None:
    # a bush not yet known as chronic, swaying in the start-up: as it swings back its blob
    # falls into a corner of itself, then swells again where it was; the corner's centre
    # lies more than half a size off the whole's, but no side of the box went anywhere the
    # other side of its axis did not
    whole = ([[20.0, 40.0, 40.0, 60.0]], [False])
    corner = ([[20.0, 56.0, 24.0, 60.0]], [False])
    frames = [whole] * 3 + ([corner] * 2 + [whole] * 4) * 5
    assert not any(_run(frames, early=len(frames)))


def test_a_startup_blob_swelling_and_falling_back_into_its_far_corner_has_not_moved() -> None:
    # a bush not yet known as chronic, swaying in the start-up: its blob swells up and to the
    # left, then falls back into its upper left corner. Against the box it was born with, that
    # corner moved half of the largest size as a whole (both sides of each axis shifted the
    # same way); from one frame to the next, no side moved with the other side of its axis
    born = ([[20.0, 40.0, 27.0, 44.0]], [False])
    swell = ([[16.0, 35.0, 27.0, 44.0]], [False])
    corner = ([[16.0, 35.0, 20.0, 40.0]], [False])
    frames = [born] * 3 + ([swell] * 2 + [corner] * 2 + [swell] * 2 + [born] * 3) * 4
    assert not any(_run(frames, early=len(frames)))


def test_a_startup_walker_whose_front_flickers_is_an_object() -> None:
    # a walker born in the start-up whose blob's front reaches two cells further every other
    # frame (a stride): in half its frames its box moves as a whole, which carries it
    frames = [([[20.0, 10.0 + i, 26.0, 16.0 + i + 2.0 * (i % 2)]], [False]) for i in range(30)]
    assert any(_run(frames, early=len(frames))[:20])


def test_a_car_coming_in_at_the_edge_in_the_startup_is_an_object() -> None:
    # a car 10 cells long (its headlights' beam, first seen a cell in from the edge): while
    # it comes in, its back stays where the view begins and only its front moves; its centre
    # carries it, half a size by the time it is all in (its back moving too counts only
    # four frames later)
    frames = [([[30.0, max(1.0, i - 8.0), 36.0, 2.0 + i]], [False]) for i in range(30)]
    assert any(_run(frames, early=5)[:13])


def _appear(early: bool) -> list[bool]:
    """A blob that appears at once and stays where it is (someone stepping out of a door)."""
    tracks = Tracks((60, 120))
    box = np.array([[20.0, 10.0, 30.0, 16.0]])
    return [
        bool(tracks.update(box, YES, NO, YES, i / FPS, 0.4, YES, early=early and i < 5)[0].any())
        for i in range(20)
    ]


def test_a_blob_born_in_the_startup_is_never_placed() -> None:
    # appearing at once means nothing where the frame before is the start-up's median
    assert any(_appear(False))
    assert not any(_appear(True))


def test_the_light_steps_when_auto_exposure_hunts() -> None:
    settings = DetectionSettings()
    floor = settings.noise_floor

    def steps(gains: list[float]) -> list[bool]:
        det = MotionDetector(settings, 320, 180)
        return [det._light_step(i * 0.1, 0.1, g, 0.0, floor) for i, g in enumerate(gains)]

    # up 3 % and back down every frame: no net change, every strong edge flickers
    assert any(steps([1.03, 1 / 1.03] * 5))
    # the fit's own jitter is not a hunt
    assert not any(steps([1.002, 1 / 1.002] * 25))


def test_what_a_walker_leaves_at_the_edge_of_the_view_is_let_go() -> None:
    # A walker leaves at the right edge; what stays in the last column (the background under
    # the last of them was not learning) is not them. Kept as the walker, it went on as
    # motion until the next visitor came, and handed them its history.
    walk = [([[20.0, 74.0 + i, 32.0, 80.0 + i]], [False]) for i in range(40)]  # 12 x 6
    leaving = [([[20.0, 114.0 + i, 32.0, 120.0]], [False]) for i in range(1, 6)]
    remnant = [([[24.0, 119.0, 28.0, 120.0]], [False])] * 30  # a third of their size
    left: list[bool] = []
    motion = _run(walk + leaving + remnant, let_go=left)
    assert any(motion[:40]) and motion[39]  # the walker
    assert not any(motion[-25:])  # not what they left
    # let go as it shrank (frame 45); what stays still from the next frame on is for the
    # background to take
    assert left.index(True) == 46 and all(left[46:])


def test_only_what_a_let_go_track_leaves_still_is_taken() -> None:
    # A car's headlight smear shrinks to a remnant of the car as it drives off, and goes on
    # moving: that is light passing, not something left behind. Only what stands still is
    # taken into the background.
    drive = [([[20.0, 10.0 + 2 * i, 32.0, 22.0 + 2 * i]], [False]) for i in range(30)]  # 12 x 12
    smear = [([[24.0, 70.0 + 2 * i, 28.0, 74.0 + 2 * i]], [False]) for i in range(10)]
    stays = [([[24.0, 90.0, 28.0, 94.0]], [False])] * 10
    left: list[bool] = []
    moving: list[bool] = []
    motion = _run(drive + smear + stays, let_go=left, trailing=moving)
    assert motion[29] and not any(motion[30:])  # the car, let go as it shrank
    assert not any(left[:40])  # not while its smear moves on
    assert all(left[41:])  # what it left still, from the frame after it stopped
    # --explain says why the moving smear is neither an object nor taken
    assert not any(moving[:30]) and all(moving[30:41]) and not any(moving[41:])
    one = np.ones(1, bool)
    blobs = Blobs(
        np.array([16.0]), np.array(stays[0][0]), one, ~one, ~one, ~one, ~one, ~one, ~one, one
    )
    blobs.set_motion(~one, ~one, np.zeros(1), one, trailing=one)
    assert blobs.reason(0).startswith("what a passing object trails, still moving")
