"""What is on the hub's disk, and making room: the retention policy applied to real files.

``catalog`` lists the deletable media: continuous-recording segments from their index, event
clips (``*.mp4``) and thumbnails (``*.jpg``) from the clips directory (``<day>/<camera>-...``),
each with its size and time. Sidecars (``*.json``, an event's description) are small: one
goes when the last of its event's clip and thumbnail is deleted (``retention.apply``).
Nothing else under the hub's data directory (MLS state, outbox) is ever listed, so retention
cannot reach it. ``make_room`` plans with ``retention.plan`` for the disk's current free space
and deletes.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from privastead.media.diskspace import DiskStatus
from privastead.media.retention import Kind, Plan, RetentionRules, StoredItem, apply, plan
from privastead.media.segment_index import SegmentIndex

log = logging.getLogger(__name__)

_EVENT_KINDS: dict[str, Kind] = {".mp4": "clip", ".jpg": "thumbnail"}


@dataclass(frozen=True)
class Places:
    """Where the media lives: the recordings root and its index, the clips directory."""

    recordings: Path | None = None
    index: SegmentIndex | None = None
    clips: Path | None = None


def catalog(places: Places, protected: Collection[str] = ()) -> list[StoredItem]:
    """The deletable media; items whose key is in ``protected`` are marked so (a clip not
    yet durable as ciphertext, a segment being played back)."""
    items: list[StoredItem] = []
    if places.index is not None:
        for segment in places.index.all():
            key = segment.path
            items.append(
                StoredItem(
                    "segment", key, segment.bytes, segment.start, segment.camera, key in protected
                )
            )
    if places.clips is not None and places.clips.is_dir():
        for path in sorted(places.clips.glob("*/*")):
            kind = _EVENT_KINDS.get(path.suffix)
            if kind is None or not path.is_file():
                continue
            stat = path.stat()
            camera = path.stem.rsplit("-", 2)[0]
            key = str(path)
            items.append(
                StoredItem(kind, key, stat.st_size, stat.st_mtime, camera, key in protected)
            )
    return items


def make_room(
    places: Places,
    rules: RetentionRules,
    now: float,
    disk: DiskStatus | None = None,
    protected: Collection[str] = (),
) -> tuple[Plan, int]:
    """Apply the retention rules (and, with ``disk``, make its free space ``min_free``):
    the plan carried out and the bytes actually freed."""
    items = catalog(places, protected)
    chosen = plan(
        items,
        rules,
        now,
        disk.free if disk is not None else None,
        disk.total if disk is not None else None,
    )
    index = places.index
    root = places.recordings or Path("/nonexistent")
    freed = apply(chosen.deletions, root, index.remove if index is not None else None)
    if chosen.deletions:
        log.info(
            "retention: %d file(s), %.1f MB freed%s",
            len(chosen.deletions),
            freed / 1e6,
            f"; still {chosen.shortfall / 1e6:.1f} MB short" if chosen.shortfall else "",
        )
    return chosen, freed


__all__ = ["Places", "catalog", "make_room"]
