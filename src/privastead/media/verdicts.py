"""What the detector makes of each blob in a frame, and the record of it for ``--explain``.

``judge`` turns the blob statistics of ``kernels.labels`` into verdicts:

- *small*: fewer cells than the smallest object (``min_object_area``), or too weak for its
  size (its summed excess over the threshold is under ``STRENGTH`` smallest objects' worth:
  a few cells barely over threshold are noise or a residue of light, not a visitor): rain,
  snow, noise;
- *coherent*: at least ``COHERENT_SHARE`` of its cells were flagged, nearby, in the previous
  analysed frame too (an object overlaps itself; streaks and flakes do not);
- *thin*: one cell wide or tall (a streak, an edge shimmering), whatever its length;
- *ghost*: the contrast across its border is in the background, not in the frame: the
  frame shows the scene as it is and the background is wrong there (it learned an object
  that has left, or a light change by mistake); it is re-based at once;
- *soft*: a brightening whose border has little contrast in the frame compared with how far
  the blob strays from the background: a pool of light fading out at its edges (headlights
  sweeping a dark yard, a lamp over bare ground, where there is no texture for the light
  test); an object ends at its edges, and a car in its own headlights is darker than the
  pool. It is taken for light and re-based;
- *chronic*: its cells strayed beyond their noise often lately (foliage, water, flags, heavy
  rain), whether or not their learned reach kept them from being flagged: there, only a
  blob that goes somewhere becomes an object (``media.tracks``);
- *sharp*: it has at least ``SHARP_MIN`` sharp steps (``kernels.labels``: neighbouring cells
  whose ratios to the background differ by more than twice the detection threshold). Light
  and shadow multiply the scene by a smooth field (a cloud's shadow drifting over bare
  ground, a headlight pool, an exposure ramp, a big soft flake right in front of the lens):
  their blobs have almost no such steps, whatever their size or how they move. An object
  replaces what is behind it: its outline is sharp, and so is its inside over textured
  ground. Only a track seen sharp becomes an object (``media.tracks``); once it is one, a
  frame where it looks smooth (a car mostly seen as its own headlight pool) does not break
  it;
- *sudden*: its cells changed mostly since the previous frame (something appeared), not
  through a slow drift (a cloud's shadow creeping over an untextured patch, where the light
  test cannot see the texture). Only a sudden blob may become an object without moving.

(Cells changed by light were un-flagged before: ``kernels.grid.light_cells``.) Candidates
(object-sized, not thin, ghost or soft) go to the tracker; ``wake`` tells an idle decoder
that something object-sized changed, wherever it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from privastead.media.kernels import labels as L

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

#: Share of a blob's cells that must have been flagged in the previous frame (coherence).
COHERENT_SHARE = 0.5
#: Mean activity (share of recent time spent beyond the noise) above which an area is chronic.
CHRONIC = 0.1
#: Least summed excess (threshold multiples) of a blob, in units of min_cells.
STRENGTH = 3.0
#: A blob is sudden when its frame-to-frame change is at least this share of its deviation.
SUDDEN_SHARE = 0.5
#: A ghost has this much more contrast across its border in the background than in the frame.
GHOST_EDGES = 1.5
#: A blob is soft when the frame's contrast across its border, per border cell, is under this
#: share of its mean deviation from the background.
SOFT_EDGES = 0.3
#: ...and at least this share of its cells brighter than the background.
SOFT_BRIGHTER = 0.9
#: A blob is sharp with at least this many sharp steps: part of the outline of the smallest
#: object. (On the tuning scenes, cloud shadows and headlight pools of up to 300 cells had
#: none; the outline of a distant walker has a dozen or more, whatever else its blob holds.)
SHARP_MIN = 4.0


@dataclass
class Blobs:
    """Per-blob statistics and verdicts of one frame (arrays of the same length)."""

    cells: F64
    boxes: F64  # n x [row0, col0, row1, col1], end exclusive
    big: B
    thin: B
    ghost: B
    soft: B
    coherent: B
    chronic: B
    sudden: B
    sharp: B
    motion: B = field(default_factory=lambda: np.zeros(0, bool))
    fresh: B = field(default_factory=lambda: np.zeros(0, bool))
    born: F64 = field(default_factory=lambda: np.zeros(0))
    #: What an object left behind: its track was let go and it stands still (``media.tracks``).
    left: B = field(default_factory=lambda: np.zeros(0, bool))
    #: Let go by its track but still moving: light passing, not taken (``media.tracks``).
    trailing: B = field(default_factory=lambda: np.zeros(0, bool))

    def __post_init__(self) -> None:
        self.candidate: B = self.big & ~self.thin & ~self.ghost & ~self.soft

    @property
    def shaped(self) -> B:
        """Not a smooth drift of light: sharp edges, or a sudden change. A slow, smooth change
        (a cloud's shadow creeping over bare ground, an exposure ramp) is light; a fast one
        may be a car seen mostly as its own headlight pool at night, where the dark street
        shows no sharp edge, so it is left to the other tests."""
        result: B = self.sharp | self.sudden
        return result

    @property
    def wake(self) -> B:
        """Worth a look at full rate (idle mode): object-sized, soft ones too (a car in its
        own headlights looks like a pool of light a second apart), in chronic areas too (a
        person walking in front of swaying bushes is seen there in the keyframe; only full
        rate can tell them from the bushes, and waiting for a keyframe that shows them
        elsewhere started such events seconds late). Bushes wake the decoder now and then:
        on the quiet scenes idle mode decoded 29.4 % of the frames instead of 28.2 %."""
        result: B = self.big & ~self.thin & ~self.ghost
        return result

    def set_motion(
        self,
        motion: B,
        fresh: B,
        born: F64,
        coherent: B,
        *,
        left: B | None = None,
        trailing: B | None = None,
    ) -> None:
        """Scatter the tracker's answers (for the candidates) onto all blobs; ``coherent``:
        what it counted as coherent (a blob its track carried whole from a coherent frame
        too, ``media.tracks``); ``left``: what an object left behind; ``trailing``: what a
        let-go track still moves."""
        index = np.flatnonzero(self.candidate)
        self.coherent = self.coherent.copy()
        self.coherent[index] |= coherent

        def onto_all(values: npt.NDArray[Any] | None, dtype: type = bool) -> npt.NDArray[Any]:
            every: npt.NDArray[Any] = np.zeros(len(self.cells), dtype)
            if values is not None:
                every[index] = values
            return every

        self.motion, self.fresh = onto_all(motion), onto_all(fresh)
        self.born = onto_all(born, np.float64)
        self.left, self.trailing = onto_all(left), onto_all(trailing)

    def reason(self, i: int) -> str:
        """Why blob ``i`` did or did not count, in words."""
        if not self.big[i]:
            return "too small or too faint"
        if self.thin[i]:
            return "one cell thin (a streak or an edge)"
        if self.ghost[i]:
            return "ghost (edges in the background, not in the frame)"
        if self.soft[i]:
            return "soft edges: a pool of light"
        if self.motion[i]:
            return "object (new)" if self.fresh[i] else "object"
        if self.left[i]:
            return "left behind by an object (taken into the background)"
        if self.trailing[i]:
            return "what a passing object trails, still moving (taken once it stands still)"
        if not self.coherent[i]:
            return "not coherent (does not overlap the previous frame)"
        if not self.shaped[i]:
            return "smooth, slow change without a sharp edge (light or shadow)"
        if self.chronic[i]:
            return "in a chronic-motion area, not moving"
        return "tracking, not moving yet"


def judge(stats: F64, min_cells: int, floor: float) -> Blobs:
    """Verdicts for the blobs described by ``stats`` (``kernels.labels`` columns)."""
    n = stats[:, L.CELLS]
    safe = np.maximum(n, 1.0)
    tall = stats[:, L.ROW1] - stats[:, L.ROW0]
    wide = stats[:, L.COL1] - stats[:, L.COL0]
    return Blobs(
        cells=n,
        boxes=stats[:, L.ROW0 : L.COL1 + 1],
        big=(n >= min_cells) & (stats[:, L.EXCESS] >= STRENGTH * min_cells),
        thin=np.minimum(tall, wide) < 2,
        ghost=stats[:, L.EDGE_BG] > GHOST_EDGES * stats[:, L.EDGE_M] + 1.0,
        soft=(
            stats[:, L.EDGE_M] / np.maximum(stats[:, L.BORDER], 1.0)
            < SOFT_EDGES * stats[:, L.DEVIATION] / safe
        )
        & (stats[:, L.BRIGHTER] >= SOFT_BRIGHTER * n),
        coherent=stats[:, L.PERSISTENT] >= COHERENT_SHARE * n,
        chronic=stats[:, L.ACTIVITY] / safe >= CHRONIC,
        sudden=stats[:, L.CHANGE] >= SUDDEN_SHARE * stats[:, L.DEVIATION],
        sharp=stats[:, L.SHARP] >= SHARP_MIN,
    )


@dataclass(frozen=True)
class FrameExplain:
    """What the detector saw in one analysed frame (``note`` says why it did not look)."""

    t: float
    note: str
    count: int = 0  # cells over their threshold (and not changed by light or focus)
    lit: int = 0  # cells changed by light or focus (un-flagged)
    gain: tuple[float, float] = (1.0, 0.0)  # the brightness model m ~ g * bg + o
    rows: int = 0  # grid rows with a light of their own (a mains light's bands), re-lit
    blobs: Blobs | None = None


__all__ = ["Blobs", "FrameExplain", "judge"]
