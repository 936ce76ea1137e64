"""Detection and event settings: the ``[cameras.detection]`` and ``[cameras.events]`` tables.

Frozen dataclasses with defaults that work for a typical outdoor camera, loadable by
``privastead.configfile`` (unknown keys are errors). Every size is relative to the frame, so
the same settings mean the same thing on a 640x360 substream and on a 4K main stream.
"""

from __future__ import annotations

from dataclasses import dataclass

#: A polygon as (x, y) vertices in normalised frame coordinates (0..1, origin top-left).
Polygon = tuple[tuple[float, ...], ...]


def _check_polygons(name: str, polygons: tuple[Polygon, ...]) -> None:
    for polygon in polygons:
        if len(polygon) < 3:
            raise ValueError(f"{name}: a polygon needs at least 3 points, got {len(polygon)}")
        for point in polygon:
            if len(point) != 2 or not all(-0.001 <= v <= 1.001 for v in point):
                raise ValueError(
                    f"{name}: points are [x, y] pairs between 0 and 1 "
                    f"(fractions of the frame), got {list(point)}"
                )


@dataclass(frozen=True)
class DetectionSettings:
    """How motion is found in one camera's frames (see docs/design/motion-detection.md)."""

    #: 0 (only large, high-contrast motion) .. 1 (faint and small changes). Sets the
    #: brightness-change floor and how far above its own noise a cell must move.
    sensitivity: float = 0.5
    #: Smallest object that counts, as a fraction of the frame area (default 0.00015: a
    #: person about 4 % of the frame height, i.e. far away, still counts).
    min_object_area: float = 0.00015
    #: Only motion inside these polygons counts (empty: the whole frame).
    zones: tuple[Polygon, ...] = ()
    #: Motion inside these polygons is ignored (timestamps, a busy road, a tree).
    masks: tuple[Polygon, ...] = ()
    #: Rows of the analysis grid: the frame is reduced to block means about this tall.
    analysis_height: int = 120
    #: Frames analysed per second (0: every decoded frame). Decoding still runs at full rate.
    detect_fps: float = 10.0
    #: Seconds a blob must persist (and be seen in at least 3 analysed frames) to be motion.
    persistence: float = 0.4
    #: A change over more than this fraction of the frame is a global change (light switch,
    #: IR switch, camera moved): the background re-bases instead of an event starting.
    global_change_fraction: float = 0.45
    #: Seconds after start-up or a global change during which the detector only learns.
    settle_seconds: float = 1.5
    #: Time constant of the background (seconds) where nothing moves.
    background_seconds: float = 5.0
    #: Time after which something that stopped (a parked car) becomes background.
    absorb_seconds: float = 90.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.sensitivity <= 1.0:
            raise ValueError("sensitivity must be between 0 and 1")
        if not 0.0 <= self.min_object_area < 0.5:
            raise ValueError("min_object_area is a fraction of the frame area, 0 .. 0.5")
        if not 8 <= self.analysis_height <= 1080:
            raise ValueError("analysis_height must be between 8 and 1080 rows")
        if self.detect_fps < 0:
            raise ValueError("detect_fps must be >= 0 (0 analyses every frame)")
        if not 0.05 <= self.global_change_fraction <= 1.0:
            raise ValueError("global_change_fraction must be between 0.05 and 1")
        for name in ("persistence", "settle_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 seconds")
        for name in ("background_seconds", "absorb_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0 seconds")
        _check_polygons("zones", self.zones)
        _check_polygons("masks", self.masks)

    @property
    def noise_floor(self) -> float:
        """Smallest block-mean change (luma levels) that can count, whatever the noise."""
        return 10.0 - 8.0 * self.sensitivity

    @property
    def noise_factor(self) -> float:
        """How many noise deviations (per cell, learned) a change must exceed."""
        return 5.0 - 2.0 * self.sensitivity

    @property
    def reach_factor(self) -> float:
        """How far beyond its reach (how far a fluctuating cell strays, learned) a change must
        go: foliage, water and flags stay under it."""
        return 1.4 - 0.4 * self.sensitivity


@dataclass(frozen=True)
class EventSettings:
    """How motion results become events (and clips)."""

    #: Motion must last this long (seconds, short gaps allowed) before an event starts.
    persistence: float = 0.3
    #: The event ends after this many seconds without motion (the clip's post-roll).
    post_roll: float = 5.0
    #: Seconds of video before the onset that the clip includes (the ring buffer's depth).
    pre_roll: float = 5.0
    #: An event longer than this ends and a new one continues at once (one clip each).
    max_length: float = 120.0
    #: After an event ends, no new event starts for this many seconds.
    cooldown: float = 0.0

    def __post_init__(self) -> None:
        for name in ("persistence", "post_roll", "pre_roll", "cooldown"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 seconds")
        if self.max_length < 1.0:
            raise ValueError("max_length must be at least 1 second")


__all__ = ["DetectionSettings", "EventSettings", "Polygon"]
