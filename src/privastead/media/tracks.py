"""Blob tracks: which blobs are the same thing from frame to frame, and which are objects.

A blob matches a track when its box overlaps the track's box grown by about the track's own
size (an object moves at most about its size per analysed frame). A track becomes an object
(*confirmed*) once it has

- lived ``persistence`` seconds,
- been seen *coherent* in about three analysed frames in a row (most of its cells were
  flagged in the previous frame too: it overlaps itself; rain streaks and flakes that
  happen to fall near each other do not, and a track that only lives on such chance
  matches never builds up its coherence score; or its blob is the one of a coherent frame
  carried on whole, the same shape shifted: a brisk walker that moved more than half its
  width since the previous analysed frame, ``_carried``; or its track goes steadily on, a
  size or more and nearly straight over a few frames, outside chronic areas: a small car far
  away at night that moves more than its own length between frames, and stretches and
  shrinks with its headlights' smear, ``_steady``; the way the whole thing went: a walker
  whose blob broke in two for a frame went on, its centre did not hop down its body and
  back, ``_pieces``), and
- been seen *sharp* in at least ``SHARP_FRAMES`` analysed frames (its change has sharp steps:
  an object's outline, not the smooth field of light or shadow; ``media.verdicts``), and
- either moved (a side of its box has travelled by at least ``MOVED`` of the largest size
  it has had, and ``MIN_TRAVEL`` cells: a car coming in at the edge of the view moves its
  front, not yet its centre; in areas of chronic motion, where foliage, water and flags
  sway in place and their blobs split and merge, its centre must travel ``MOVED_CHRONIC``
  sizes, and the track must have been seen outside chronic areas at least once, at a place
  the map of chronic motion still sees as quiet when the track is judged: churning stays
  where it churns, an object comes from or goes to where nothing churns; ripples drifting
  through a part of a pond the map had not learned yet were never anywhere else), or appeared
  at once (*sudden* at birth) where nothing moves chronically and stayed ``STATIC_AGE``
  seconds: someone stepping out of a door and standing. A track is chronic once its blob was
  in a chronic area in any frame before it was confirmed (a bush's blob born at the bush's
  edge is still the bush), and stays as it was once confirmed: a person who stops in front
  of a bush stays a person, and a slow walker who lingers at the edge of the view, making the
  area look chronic by being there, has been seen outside it.

A track born while the light over the whole view stepped (an auto-exposure step: every
strong edge changes at once, and where the sensor clips or the tone curve bends, not as the
global brightness model says, so blobs appear along those edges and change shape as the step
ramps) is judged like one in a chronic area: its centre must travel ``MOVED_CHRONIC`` sizes,
and it is never an object for having appeared at once. Someone walking in during the step
goes on walking, and goes on steadily (``_steady``) in the frames where the light does not
step: what a step leaves along the edges reshapes in place and never goes a size away in a
straight line, while under a light on mains power a walker's own blob pulls the fit of the
light enough that the light seems to step in the frame the walker comes in, and in some after.

A track born in the detector's start-up, looked at again once the background is known, is
judged with what a few seconds taught about the scene: a bush that swayed little in them is
not yet known as chronic. Its box must move as a whole, frame after frame (``MOVED`` sizes
summed over its moves, both sides of an axis shifting the same way in each: a swaying bush's
blob that swells and falls back into a corner of itself carries its centre back and forth,
and even its box against the box it was born with, but never moves it as a whole from one
frame to the next; ``_step``), and it is never an object for having appeared at once (the
frame before is the start-up's median, not a frame of the stream). It goes on steadily
(``_steady``) only in frames after the start-up: while the start-up is looked at again, what
moves chronically is not known yet, and a big flake right in front of the lens falls as
straight through those frames as a walker walks. A walker who goes on after the start-up is
followed on like any track; at 5 analysed frames a second, where a brisk walker clears most
of its width between frames and its blob never overlaps itself by half, that is what finds
someone who came in during the start-up.

Travel is measured from where the track's blob came from: a blob that does not touch the box
its track had in the previous frame (a fragment of foliage lighting up beside another, a
second thing appearing near the first; for a start-up track, that does not overlap it: a
leaf lighting up at its corner) continues the track but has not carried it anywhere, so its
own place becomes the place travel is measured from (a start-up track keeps the sum of its
moves so far, without the jump). Unless the thing leapt: a blob of the same height and width
as the track's, gone less far than its length, where no blob of this frame touches the
track's box any more (a walker two cells wide at 5 fps clears its own width every frame; a
fragment lighting up beside another leaves the other where it was; a flake falling close to
the lens must go further than its length to clear its box; ``_leapt``). A blob that broke
off from another within the box they came from changed shape, not place: its centre lies off
the whole's by up to half a size, so it keeps the displacement its track had, measured from
a place shifted with it; pieces of a track judged by its centre alone that join again keep
the mean of theirs (``_hold_shape``).

A confirmed track stays confirmed while blobs keep matching it, so a person who stops stays
an object (a standing person is coherent: the same cells stay flagged); its blob counts as
motion in the frames where it is coherent and sharp (a cloud's shadow that swallowed the
blob of a person walking under it, and goes on after they left, is not them), or where its
track goes steadily on (a car at night seen as the smooth smear of its headlights). A track
confirmed without ever moving is let go after ``STATIC_HOLD`` seconds (what appears and
never moves at all is more often a change in the scene than a visitor), and so is one whose
blob has shrunk to a ``REMNANT`` of its largest size (what is left in the background where a
car drove by, or the last of a car leaving the view). What a track let go leaves where it
stands still is taken into the background (``left``), from the first frame its box is the
same as in the frame before: left as a blob, it kept its track alive, and the next car to
come by inherited that track's history (its size, and the chronic area the blob had made of
its place) and was never an object. What a let-go track's blob does while it still moves is
not left behind: the smear of a car's headlights shrinking as the car drives off is light
passing, and painted into the background it put light there that the road does not have,
until the background learned the road again. An unmatched track is forgotten after ``GRACE``
seconds.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from privastead.media.verdicts import CHRONIC as CHRONIC_ACTIVITY

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

#: Coherence score a track needs besides its age: the score halves each analysed frame and
#: gains 1 per coherent one, so 1.74 means three coherent frames in a row.
COHERENT = 1.74
#: Seconds an unmatched track is remembered (a blob that drops out for a frame or two).
GRACE = 0.5
#: Distance (in units of the track's largest size) that makes a track an object; more in
#: areas of chronic motion; and at least MIN_TRAVEL cells (a small blob's centre jitters).
MOVED, MOVED_CHRONIC, MIN_TRAVEL = 0.5, 1.5, 3.0
#: Seconds a sudden, unmoving blob must stay to be an object; and how long it stays one.
STATIC_AGE, STATIC_HOLD = 1.0, 8.0
#: A confirmed track whose size has fallen under this share of its largest is let go.
REMNANT = 0.35
#: Analysed frames a track must have been seen sharp in (not only a smooth field of light).
SHARP_FRAMES = 2
#: A blob whose height and width are each within this share (or a cell) of its track's box
#: in the previous frame has kept its shape; cells a box must move as a whole to have left
#: the overlap with itself the coherence test looks for (flagged cells next to flagged ones).
SAME_SHAPE, CARRIED = 0.25, 2.0
#: A track is steady (``_steady``) once it has been followed over this many frames from where
#: its travel is measured, its centre has gone at least a size (and MIN_TRAVEL cells) from
#: there, and at least this share of the way its centre went lately, frame to frame, was
#: progress; the way and the progress both fade with this time constant (seconds).
STEADY_FRAMES, STRAIGHT, STEADY_SECONDS = 4, 0.8, 1.0

# Track columns: box (rows, cols; end exclusive), birth time, last seen, coherent hits,
# birth centre, size at birth, largest size, largest distance travelled (in sizes),
# confirmed flag, sudden at birth, seen in a chronic area before it was confirmed, box at
# birth, frames seen sharp, seen outside chronic areas, born while the light over the whole
# view stepped, born in the detector's start-up; the boxes it had when it was first and last
# seen outside chronic areas; the sum of its box's frame-to-frame moves as a whole (rows,
# columns; ``_step``); coherent in its last frame (``_carried``); the length of the way its
# centre went lately, frame to frame, the progress it made on it (rows, columns; both fading,
# ``STEADY_SECONDS``), and the frames it was followed over, since the place its travel is
# measured from (``_steady``); let go (``_keep``) and not confirmed again since (``left``).
(R0, C0, R1, C1, BORN, LAST, HITS, CY0, CX0, SIZE0, SIZEMAX, TRAVEL, CONFIRMED, SUDDEN,
 CHRONIC, BR0, BC0, BR1, BC1, SHARPS, LEFT, LIT, EARLY,
 FR0, FC0, FR1, FC1, LR0, LC0, LR1, LC1, MY, MX, COH, PATH, WY, WX, STEPS,
 RELEASED) = range(39)  # fmt: skip
COLUMNS = 39
#: Where a track was first and last seen outside chronic areas.
FIRST_OUT, LAST_OUT = slice(FR0, FC1 + 1), slice(LR0, LC1 + 1)


class Tracks:
    """The tracks of one detector (a few dozen at most)."""

    def __init__(self, grid: tuple[int, int]) -> None:
        self.grid = grid  # rows, columns of the analysis grid
        self.rows: F64 = np.zeros((0, COLUMNS), np.float64)
        #: Per blob of the last update: coherent as the tracks counted it (carried ones too).
        self.coherent: B = np.zeros(0, bool)
        #: Per blob of the last update: its track was let go (``_keep``) and its box is the
        #: same as in the frame before: what an object left behind, or a change in the scene,
        #: for the background to take.
        self.left: B = np.zeros(0, bool)
        #: Per blob of the last update: its track was let go but it still moves (the smear of
        #: a car's headlights shrinking as it drives off): not taken (``--explain`` says so).
        self.trailing: B = np.zeros(0, bool)

    def clear(self) -> None:
        self.rows = self.rows[:0]

    def update(  # noqa: PLR0917 -- per-blob arrays of one frame
        self,
        boxes: F64,
        coherent: B,
        chronic: B,
        sudden: B,
        t: float,
        persistence: float,
        sharp: B,
        light_step: bool = False,
        early: bool = False,
        activity: npt.NDArray[np.float32] | None = None,
    ) -> tuple[B, B, F64]:
        """Match this frame's blobs (``boxes``: n x [r0, c0, r1, c1]) to the tracks.

        Returns per blob: motion (a confirmed object, coherent in this frame), newly
        confirmed in this frame, and the birth time of its track. ``sharp`` says which blobs
        have an object's sharp edges in this frame; ``light_step`` that the light over the
        whole view stepped just now (blobs born now are judged like chronic motion);
        ``early`` that the frame is one of the detector's start-up, looked at again (blobs
        born then must carry their centre, and are never placed). ``activity`` is the
        detector's map of chronic motion as it is now: a place where a track was seen outside
        chronic areas counts only while it is still outside them (see ``_went``).
        """
        tracks = self.rows[t - self.rows[:, LAST] <= GRACE]
        n = len(boxes)
        if n == 0:
            self.rows = tracks
            nothing = np.zeros(0, bool)
            self.coherent = self.left = self.trailing = nothing
            return nothing, nothing, np.zeros(0)
        size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        # Each blob as a new track; matched ones then inherit from their tracks.
        new = np.zeros((n, COLUMNS))
        new[:, R0 : C1 + 1] = boxes
        new[:, BORN], new[:, LAST], new[:, HITS] = t, t, coherent
        new[:, CY0 : CX0 + 1] = _centre(boxes)
        new[:, SIZE0], new[:, SIZEMAX] = size, size
        new[:, SUDDEN], new[:, CHRONIC] = sudden, chronic
        new[:, BR0 : BC1 + 1] = boxes
        new[:, SHARPS] = sharp
        new[:, LEFT] = ~chronic
        new[:, FIRST_OUT] = new[:, LAST_OUT] = np.where(~chronic[:, None], boxes, -1.0)
        new[:, LIT] = light_step
        new[:, EARLY] = early
        new[:, COH] = coherent
        was = steady = still = np.zeros(n, bool)
        if len(tracks) and n:
            was, steady, still = _inherit(
                new, tracks, coherent, size, sharp, chronic, self.grid,
                early=early, light_step=light_step,
            )  # fmt: skip
            coherent = new[:, COH] > 0
            tracks = tracks[~_hits(boxes, tracks).any(axis=0)]  # the rest wait out their grace
        confirmed = was | self._confirm(new, boxes, t, persistence, _went(new, activity))
        kept = self._keep(new, size, t)
        released = np.where(confirmed & kept, 0.0, new[:, RELEASED])
        new[:, RELEASED] = np.where(was & ~kept, 1.0, released)
        confirmed &= kept
        self.left = (new[:, RELEASED] > 0) & still
        self.trailing = (new[:, RELEASED] > 0) & ~self.left
        new[:, CONFIRMED] = confirmed
        self.rows = np.concatenate([tracks, new])
        self.coherent = coherent
        # Motion where the object shows: coherent, and sharp (a confirmed track that a smooth
        # blob of light or shadow matched, where the object left, is not the object); or
        # going steadily on, smooth or not (a car at night seen as the smear of its
        # headlights, which has no sharp edge: what was left behind stays where it was).
        motion: B = confirmed & ((coherent & sharp) | steady)
        return motion, confirmed & ~was, new[:, BORN].copy()

    def _confirm(self, new: F64, boxes: F64, t: float, persistence: float, went: B) -> B:
        chronic = new[:, CHRONIC] > 0
        # Born as the light over the whole view stepped: an auto-exposure step changes every
        # strong edge at once, and where the sensor clips or the tone curve bends the change
        # is not the global model's, so blobs appear along those edges and change shape as
        # the step ramps. Like churning, that goes nowhere; an object must carry its centre.
        steady = chronic | (new[:, LIT] > 0)
        centre = _gone(new)
        # A side that moves with the centre (half as far when the other side stays at the
        # edge of the view) is travel; a side that jumps while the centre stays is a blob
        # changing shape.
        sides = np.minimum(np.abs(boxes - new[:, BR0 : BC1 + 1]).max(axis=1), 2.0 * centre)
        # Born in the start-up, where what moves chronically has been learned from a few
        # seconds only: a swaying bush not yet known as one changes shape in place (swelling
        # and falling back into a corner of itself, it carries its centre, and even its box
        # against the box it was born with), an object moves its box as a whole, frame
        # after frame.
        early = np.hypot(new[:, MY], new[:, MX])
        shift = np.where(new[:, EARLY] > 0, early, np.where(steady, centre, sides))
        scale = np.maximum(new[:, SIZEMAX], 1.0)
        new[:, TRAVEL] = np.maximum(
            new[:, TRAVEL], np.where(shift >= MIN_TRAVEL, shift / scale, 0.0)
        )
        age = t - new[:, BORN]
        ready = (
            (new[:, HITS] >= COHERENT)
            & (age >= persistence - 1e-9)
            & (new[:, SHARPS] >= SHARP_FRAMES)
        )
        moved = new[:, TRAVEL] >= np.where(steady, MOVED_CHRONIC, MOVED)
        # Churning stays where it churns (a bush swings back, glints run across the water and
        # never leave it); an object goes somewhere: in a chronic area, a track is an object
        # once it has also been seen outside it (it came from, or went to, where nothing
        # churns: ``_went``).
        went = ~chronic | went
        placed = (new[:, SUDDEN] > 0) & ~steady & (new[:, EARLY] == 0) & (age >= STATIC_AGE)
        result: B = ready & ((moved & went) | placed)
        return result

    def _keep(self, new: F64, size: F64, t: float) -> B:
        """Let go of what never moved after a while, and of remnants (at the edges of the
        view too: what a car leaving the view left in the last column was kept as the car,
        where nothing learns, and went on as motion until the next visitor came)."""
        steady = (new[:, CHRONIC] > 0) | (new[:, LIT] > 0)
        moved = new[:, TRAVEL] >= np.where(steady, MOVED_CHRONIC, MOVED)
        keep: B = (moved | (t - new[:, BORN] <= STATIC_HOLD)) & (size >= REMNANT * new[:, SIZEMAX])
        return keep


def _went(new: F64, activity: npt.NDArray[np.float32] | None) -> B:
    """Per track: it has been seen outside chronic areas, at a place that is still outside
    them.

    What moves chronically is learned as it moves: just after the start-up, or when the wind
    rises, part of a pond or a bush is not yet known as chronic, and a patch of ripples that
    drifts across the water is seen "outside" while it is in that part. Seconds later the
    map covers it. So the first and the last place a track was seen outside are looked at
    again in the map as it is now: a person who came from the lawn (first) or went to it
    (last) was there; a patch of ripples was only where the map had not yet learned the
    water. (Under a person who walks there, the map does not learn: ``kernels.grid``.)
    """
    left: B = new[:, LEFT] > 0
    if activity is None:
        return left

    def quiet(box: F64) -> bool:
        r0, c0, r1, c1 = (int(v) for v in box)
        return r1 > r0 and c1 > c0 and activity[r0:r1, c0:c1].mean() < CHRONIC_ACTIVITY

    # Only chronic tracks are asked whether they went somewhere (``_confirm``).
    for i in np.flatnonzero(left & (new[:, CHRONIC] > 0)):
        left[i] = quiet(new[i, FIRST_OUT]) or quiet(new[i, LAST_OUT])
    return left


def _whole(boxes: F64, prev: F64) -> F64:
    """How far each box moved as a whole since the previous frame (``prev``), signed, per
    axis (rows, columns): the shift both sides made in the same direction (the smaller of
    the two). A blob that grew or shrank on one side, or swelled and fell back into a corner
    of itself, did not move."""
    lo, hi = boxes[:, :2] - prev[:, :2], boxes[:, 2:] - prev[:, 2:]
    moved: F64 = np.where(lo * hi > 0, np.sign(lo) * np.minimum(np.abs(lo), np.abs(hi)), 0.0)
    return moved


def _step(whole: F64, shift: F64, birth: F64, grid: tuple[int, int]) -> F64:
    """A start-up track's move in this frame, per axis: its box's move as a whole
    (``whole``, from ``_whole``). Summed over frames, that leaves a swaying bush where it was,
    while a walker's box moves as a whole nearly every frame. Along an axis where the blob
    was born at the edge of the view, or a cell from it (a car coming in: where its back
    was, the view did not show), the centre's shift (``shift``)."""
    grid_end = np.array(grid, np.float64)
    cut = (birth[:, :2] <= 1) | (birth[:, 2:] >= grid_end - 1)
    moved: F64 = np.where(cut, shift, whole)
    return moved


def _carried(whole: F64, boxes: F64, origin: F64, kept: B) -> B:
    """Per blob: its track carried it here whole from a coherent frame, so it is coherent too.

    A thing that moved more than about half its width since the previous analysed frame
    overlaps itself by less than half, and the coherence test (most of its cells flagged
    next to cells flagged before) fails: a brisk walker, where the frames analysed are
    unevenly spaced (ten a second from a 15 fps camera leaves 0.13 s between some of them),
    fails it in every other frame and never builds up the coherent frames in a row a track
    needs. Such a blob is the track's blob of the previous frame, coherent then, moved as a
    whole (``whole``, from ``_whole``): the same height and width, shifted by at least
    ``CARRIED`` cells. Rain streaks and flakes that happen to make an object-sized blob are
    not coherent to begin with, and the next chance blob has neither their place nor their
    shape.
    """
    prev = origin[:, R0 : C1 + 1]
    size, before = boxes[:, 2:] - boxes[:, :2], prev[:, 2:] - prev[:, :2]
    same = _same_shape(size, before)
    far = np.abs(whole).max(axis=1) >= CARRIED
    carried: B = kept & same & far & (origin[:, COH] > 0)
    return carried


def _same_shape(size: F64, before: F64) -> B:
    """Per row: height and width (``size``) each within ``SAME_SHAPE`` (or a cell) of ``before``."""
    same: B = np.all(np.abs(size - before) <= np.maximum(1.0, SAME_SHAPE * before), axis=1)
    return same


def _centre(boxes: F64) -> F64:
    """Per box: its centre (row, column)."""
    mid: F64 = (boxes[:, :2] + boxes[:, 2:]) / 2
    return mid


def _gone(new: F64) -> F64:
    """Per track: how far its centre is from the place its travel is measured from."""
    mid = _centre(new[:, R0 : C1 + 1])
    gone: F64 = np.hypot(mid[:, 0] - new[:, CY0], mid[:, 1] - new[:, CX0])
    return gone


def _steady(new: F64, chronic: B, *, early: bool, light_step: bool) -> B:
    """Per blob: its track goes on steadily, so it is coherent too.

    A small car far away at night, driving across the view, moves more than its own length
    between analysed frames (0.08 s apart), and its box stretches and shrinks as the smear of
    its headlights joins and leaves it: its blob seldom overlaps itself, and is seldom the
    same shape twice, so neither the coherence test nor ``_carried`` holds. What it does is
    go on: followed over ``STEADY_FRAMES`` frames, its centre has gone a size or more from
    where it came from, and nearly all the way it went lately (the last second or so,
    ``STEADY_SECONDS``), frame to frame, was progress (``STRAIGHT``). A chain of rain
    streaks or flakes that happen to make object-sized blobs near each other goes this way
    and that, as does a bush's blob; where either churns, the area is chronic, and a blob
    there is not steady. Nor is a track born in the start-up while the start-up's frames are
    looked at again (``early``: what moves chronically is not known yet, and a big flake
    falls as straight through them as a walker walks), or one born as the light over the
    whole view stepped, in a frame where the light steps (``light_step``). Either may go on
    steadily in the frames after. To be counted coherent, the blob must be sharp too
    (``_inherit``).
    """
    net = _gone(new)
    far = net >= np.maximum(new[:, SIZEMAX], MIN_TRAVEL)
    doubtful = ((new[:, EARLY] > 0) & early) | ((new[:, LIT] > 0) & light_step)
    plain = (new[:, CHRONIC] == 0) & ~doubtful & ~chronic
    lately = np.hypot(new[:, WY], new[:, WX])
    straight = lately >= STRAIGHT * new[:, PATH]
    steady: B = (new[:, STEPS] >= STEADY_FRAMES) & far & straight & plain
    return steady


def _hits(boxes: F64, tracks: F64) -> B:
    """blobs x tracks: the blob's box overlaps the track's box grown by about its size."""
    tsize = np.maximum(tracks[:, R1] - tracks[:, R0], tracks[:, C1] - tracks[:, C0])
    grow = 1.0 + 0.75 * tsize
    hit: B = (
        (boxes[:, 0, None] < (tracks[:, R1] + grow)[None, :])
        & (boxes[:, 2, None] > (tracks[:, R0] - grow)[None, :])
        & (boxes[:, 1, None] < (tracks[:, C1] + grow)[None, :])
        & (boxes[:, 3, None] > (tracks[:, C0] - grow)[None, :])
    )
    return hit


def _touch(boxes: F64, tracks: F64) -> B:
    """blobs x tracks: the blob's box overlaps or adjoins the track's box; for a track born
    in the start-up, overlaps (it is judged by how far its box moved as a whole, and a
    fragment lighting up at its corner did not come from it)."""
    m = (tracks[:, EARLY] > 0)[None, :].astype(np.float64)
    touch: B = (
        (boxes[:, 0, None] + m <= tracks[None, :, R1])
        & (boxes[:, 2, None] >= tracks[None, :, R0] + m)
        & (boxes[:, 1, None] + m <= tracks[None, :, C1])
        & (boxes[:, 3, None] >= tracks[None, :, C0] + m)
    )
    return touch


def _leapt(boxes: F64, tracks: F64, hit: B, touch: B, *, early: bool, light_step: bool) -> B:
    """blobs x tracks: the blob is the track's blob of the previous frame, moved clear of it.

    A walker far away, two cells wide, that crosses the view at 5 analysed frames a second moves
    three cells between frames: its blob never touches the one before, so each frame it was
    taken for a second thing lighting up beside the first, its travel measured anew from its own
    place, and it never went steadily on. What a thing that leapt leaves is its place empty: no
    blob of this frame touches the track's box any more (a fragment of foliage lighting up
    beside another leaves the other where it was), and it has the same height and width (within
    ``SAME_SHAPE`` or a cell), and it went less far than its own length: it cleared its box
    across its thin side. A person is upright and narrow, and walking they clear their width,
    never their height; a flake or a drop close to the lens is round, or drawn out along the way
    it falls by motion blur, and to clear its box it must go further than its length (a big
    flake at 7.5 fps falls a little more than its height a frame, as straight as a walker walks,
    blown sideways or not). As for ``_steady``, not a track born in the start-up while the
    start-up's frames are looked at again, nor one born as the light over the whole view stepped
    in a frame where it steps: what blinks off in one place and on in another then is a bush not
    yet known as one, or the light along the edges.
    """
    doubtful = ((tracks[:, EARLY] > 0) & early) | ((tracks[:, LIT] > 0) & light_step)
    leapt: B = hit & ~touch & (~touch.any(axis=0) & ~doubtful)[None, :]
    blob, track = np.nonzero(leapt)  # few pairs, if any: a track whose place is empty
    if len(blob):
        size = boxes[blob, 2:] - boxes[blob, :2]
        before = tracks[track, R1 : C1 + 1] - tracks[track, R0 : C0 + 1]
        same = _same_shape(size, before)
        went = _centre(boxes[blob]) - _centre(tracks[track, R0 : C1 + 1])
        short = np.hypot(went[:, 0], went[:, 1]) <= size.max(axis=1)
        leapt[blob, track] = same & short
    return leapt


def _hold_shape(new: F64, tracks: F64, touch: B, came: npt.NDArray[np.intp], kept: B) -> None:
    """Blobs that only changed shape keep their tracks' displacement (in place).

    A blob that broke off within the box it came from (another blob of this frame came from
    the same box) has not gone anywhere: a piece's centre lies off the whole's by up to half
    its size (a cloud's shadow that thinned out and broke in two made an object of one half).
    It keeps the displacement its track had in the previous frame, measured from a place
    shifted with it. Pieces of a track judged by its centre alone (born in the start-up or as
    the light stepped) that join again within their boxes keep the mean of theirs: joined
    from one piece's place, a patch breaking up and joining again in place added the offset
    up, cycle after cycle. Other merges are left as they are: a car's blob grows into the pool
    its headlights lit a frame before, which is travel (holding every merge lost a night car).
    ``kept``: blobs that continue the track they came from (``came``), not jumped ones.
    """

    def within(lo: F64, hi: F64) -> B:
        inside: B = np.all(new[:, R0 : C0 + 1] >= lo, axis=1) & np.all(
            new[:, R1 : C1 + 1] <= hi, axis=1
        )
        return inside

    origin = tracks[came]
    split = (touch.sum(axis=0)[came] > 1) & within(origin[:, R0 : C0 + 1], origin[:, R1 : C1 + 1])
    born = np.where(touch, tracks[None, :, BORN], np.inf)
    pieces: B = touch & (born == born.min(axis=1, keepdims=True))  # of the oldest track touched
    joined: B = (
        (pieces.sum(axis=1) > 1)
        & (pieces.sum(axis=1) == touch.sum(axis=1))
        & ((origin[:, EARLY] > 0) | (origin[:, LIT] > 0))
        & within(
            np.where(touch[:, :, None], tracks[None, :, R0 : C0 + 1], np.inf).min(axis=1),
            np.where(touch[:, :, None], tracks[None, :, R1 : C1 + 1], -np.inf).max(axis=1),
        )
    )
    shaped = kept & (split | joined)
    if not shaped.any():
        return
    # Each track's displacement: its centre from its place of origin, its sides from its
    # birth box; a piece takes its track's, a joined blob the mean of its pieces'.
    centre = _centre(tracks[:, R0 : C1 + 1]) - tracks[:, CY0 : CX0 + 1]
    sides = tracks[:, R0 : C1 + 1] - tracks[:, BR0 : BC1 + 1]
    weight = np.where(joined[:, None], pieces, np.eye(len(tracks), dtype=bool)[came])
    weight = weight / weight.sum(axis=1, keepdims=True)
    box = new[:, R0 : C1 + 1]
    new[:, BR0 : BC1 + 1] = np.where(shaped[:, None], box - weight @ sides, new[:, BR0 : BC1 + 1])
    mid = _centre(box)
    place = mid - weight @ centre
    new[:, CY0] = np.where(shaped, place[:, 0], new[:, CY0])
    new[:, CX0] = np.where(shaped, place[:, 1], new[:, CX0])


def _pieces(
    boxes: F64, tracks: F64, touch: B, came: npt.NDArray[np.intp], kept: B
) -> tuple[F64, F64]:
    """Per blob: the box of the whole thing it is a piece of, now and in the previous frame.

    A walker's blob breaks in two for a frame where a band of it matches what is behind (a
    coat the colour of the wall, a belt, the light on a car's roof) and joins again in the
    next. Each piece's centre lies off the whole's by up to half its size, so frame to frame
    the centre hops across the body and back, and the way it went looks like wandering where
    the walker went straight on. Now, the whole is the union of the blobs that came from the
    same track (``came``); before, the union of the tracks this blob touches that were born
    with the one it came from (the pieces of one thing keep its birth). A blob that is not a
    piece, or did not continue its track (``kept``), is its own whole.
    """

    def union(member: B, lo: F64, hi: F64) -> F64:
        """Per row of ``member``: the box around the members' boxes (``lo``/``hi``: k x 2)."""
        inside = member[:, :, None]
        united: F64 = np.concatenate(
            [
                np.where(inside, lo[None], np.inf).min(axis=1),
                np.where(inside, hi[None], -np.inf).max(axis=1),
            ],
            axis=1,
        )
        return united

    now, before = boxes, tracks[came, R0 : C1 + 1]
    # Most frames have no pieces, and every blob is its own whole: the unions are worked out
    # only for blobs that share their track with another, or touch more than one.
    shared = np.bincount(came[kept], minlength=len(tracks))[came] > 1
    whole = kept & (shared | (touch.sum(axis=1) > 1))
    if whole.any():
        same: B = kept[None, :] & (came[whole][:, None] == came[None, :])
        kin: B = touch[whole] & (tracks[None, :, BORN] == tracks[came[whole], BORN][:, None])
        now, before = now.copy(), before.copy()
        now[whole] = union(same, boxes[:, :2], boxes[:, 2:])
        before[whole] = union(kin, tracks[:, R0 : C0 + 1], tracks[:, R1 : C1 + 1])
    return now, before


def _inherit(  # noqa: PLR0917 -- per-blob arrays of one frame
    new: F64,
    tracks: F64,
    coherent: B,
    size: F64,
    sharp: B,
    chronic: B,
    grid: tuple[int, int],
    *,
    early: bool,
    light_step: bool,
) -> tuple[B, B, B]:
    """Matched blobs inherit their tracks' history (in place); returns which were confirmed,
    which go steadily on (``_steady``), and which continue their track with the box it had in
    the previous frame (standing still: what a let-go track leaves there is taken, ``left``)."""
    hit = _hits(new[:, R0 : C1 + 1], tracks)
    matched = hit.any(axis=1)
    # A blob that matches several tracks (two people meeting) inherits the oldest.
    oldest = tracks[np.where(hit, tracks[None, :, BORN], np.inf).argmin(axis=1)]
    # A blob that does not touch the box its track had in the previous frame did not come
    # from there: a fragment of foliage lighting up beside another, a second thing near the
    # first. It continues the track (no new event) but has not carried it anywhere: its own
    # place is where the track's travel is measured from. (An object overlaps itself from
    # frame to frame, which the coherence test expects anyway.)
    touch = hit & _touch(new[:, R0 : C1 + 1], tracks)
    touch |= _leapt(new[:, R0 : C1 + 1], tracks, hit, touch, early=early, light_step=light_step)
    jumped = matched & ~touch.any(axis=1)
    came = np.where(touch, tracks[None, :, BORN], np.inf).argmin(axis=1)
    origin = tracks[came]
    for column in (BORN, SIZE0, SUDDEN, CHRONIC, LEFT, LIT, EARLY, RELEASED, *range(FR0, LC1 + 1)):
        new[:, column] = np.where(matched, oldest[:, column], new[:, column])
    kept: B = np.logical_and(matched, ~jumped)
    for column in (CY0, CX0, BR0, BC0, BR1, BC1):
        new[:, column] = np.where(kept, origin[:, column], new[:, column])
    _hold_shape(new, tracks, touch, came, kept)
    # The box's moves as a whole, summed from frame to frame; a start-up track is judged by
    # them (``_confirm``). A jumped blob keeps its track's sum without adding the jump: a
    # fragment lighting up beside the track did not carry it there, and a small walker that
    # cleared its own width between two analysed frames has still walked as far as before.
    box, prev = new[:, R0 : C1 + 1], origin[:, R0 : C1 + 1]
    whole = _whole(box, prev)
    still: B = kept & (box == prev).all(axis=1)
    shift = _centre(box) - _centre(prev)
    step = _step(whole, shift, new[:, BR0 : BC1 + 1], grid)
    for column, axis in ((MY, 0), (MX, 1)):
        new[:, column] = np.where(
            kept, origin[:, column] + step[:, axis], np.where(matched, oldest[:, column], 0.0)
        )

    def best(column: int) -> F64:
        found: F64 = np.where(hit, tracks[None, :, column], 0).max(axis=1)
        return found

    # The way the centre went lately, frame to frame, and the progress made on it, from where
    # travel is measured (a jumped blob starts them again, with its own place). Both fade: a
    # walker whose first blobs were its head and body in turn, the centre hopping up and
    # down between them, goes steadily on once it walks on whole, as it would had it come in
    # whole; a chain of chance blobs that goes this way and that does so all along. The way
    # is the whole thing's (``_pieces``): a walker whose blob broke in two for a frame, where
    # its coat matched the wall behind, walked on; each piece's centre did not hop.
    fade = np.exp(-(new[:, LAST] - origin[:, LAST]) / STEADY_SECONDS)
    now, before = _pieces(box, tracks, touch, came, kept)
    went = _centre(now) - _centre(before)
    way = np.hypot(went[:, 0], went[:, 1])
    new[:, PATH] = np.where(kept, fade * origin[:, PATH] + way, 0.0)
    new[:, WY] = np.where(kept, fade * origin[:, WY] + went[:, 0], 0.0)
    new[:, WX] = np.where(kept, fade * origin[:, WX] + went[:, 1], 0.0)
    new[:, STEPS] = np.where(kept, origin[:, STEPS] + 1, 0.0)
    new[:, SIZEMAX] = np.where(matched, np.maximum(best(SIZEMAX), size), size)
    steady = _steady(new, chronic, early=early, light_step=light_step)
    coherent = coherent | _carried(whole, box, origin, kept) | (steady & sharp)
    new[:, COH] = coherent
    new[:, HITS] = np.where(matched, 0.5 * best(HITS) + coherent, new[:, HITS])
    new[:, TRAVEL] = np.where(matched, best(TRAVEL), 0.0)
    new[:, SHARPS] = np.where(matched, best(SHARPS) + sharp, sharp)
    was: B = matched & (best(CONFIRMED) > 0)
    # Chronic once seen in a chronic area before it was confirmed (a bush's blob born at the
    # bush's edge is still the bush), kept as it was once confirmed (a person who stops in
    # front of a bush stays a person); seen outside chronic areas once, it went somewhere.
    # Its travel so far was measured by its sides; in a chronic area only its centre counts.
    turned = matched & ~was & chronic & (new[:, CHRONIC] == 0)
    new[:, TRAVEL] = np.where(turned, 0.0, new[:, TRAVEL])
    new[:, CHRONIC] = np.where(turned, 1.0, new[:, CHRONIC])
    out = matched & ~chronic
    new[:, LEFT] = np.where(out, 1.0, new[:, LEFT])
    new[:, LAST_OUT] = np.where(out[:, None], box, new[:, LAST_OUT])
    new[:, FIRST_OUT] = np.where((out & (new[:, FR1] < 0))[:, None], box, new[:, FIRST_OUT])
    return was, steady, still


__all__ = [
    "COHERENT",
    "COLUMNS",
    "GRACE",
    "MIN_TRAVEL",
    "MOVED",
    "MOVED_CHRONIC",
    "REMNANT",
    "SHARP_FRAMES",
    "STATIC_AGE",
    "STATIC_HOLD",
    "Tracks",
]
