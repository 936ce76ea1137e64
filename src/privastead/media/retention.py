"""What the hub deletes, and in which order: retention by age, by size, and for a full disk.

A pure policy over a list of stored items (no file system, time injected as ``now``), so every
rule is testable without sleeping or filling a disk. ``plan`` returns the deletions in order
and what the disk would still lack; the hub (or ``apply``) carries them out.

Kinds and what may happen to them:

- ``segment``: continuous recording. Deleted by age, by the recordings' size cap, and first of
  all when the disk runs low (oldest first): it is the bulk and the least precious.
- ``clip`` and ``thumbnail``: events. Deleted by their own age and size rules; to make room
  only if ``events_for_space`` is on, and then only once no recording is left to delete
  (never before recordings). Off by default: an event is what the owner wants kept.
- ``state``: MLS state, keys, the outbox. Never deleted by retention, whatever the rules.

An item marked ``protected`` (a clip whose ciphertext is not durable yet, a segment being
played back) is never deleted either. Deleting everything allowed may still leave the disk
short: ``Plan.shortfall`` says by how much, for the hub to report (recording then pauses).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

Kind = Literal["segment", "clip", "thumbnail", "state"]
Reason = Literal["age", "size", "disk"]
DAY = 86_400.0
GB = 1_000_000_000


@dataclass(frozen=True)
class StoredItem:
    """One file (or set of files deleted together) on the hub's disk."""

    kind: Kind
    key: str  # what ``apply`` deletes: a path (segments: relative to the recordings root)
    bytes: int
    time: float  # wall clock, Unix seconds: when it was recorded
    camera: str = ""
    protected: bool = False


@dataclass(frozen=True)
class RetentionRules:
    """Limits per kind (None: no limit) and the free space to keep. Days and GB (10^9)."""

    segment_days: float | None = 7.0
    segment_gb: float | None = None
    clip_days: float | None = 30.0
    clip_gb: float | None = None
    thumbnail_days: float | None = 90.0
    thumbnail_gb: float | None = None
    min_free_gb: float = 2.0  # below this the disk is "low": make room
    min_free_percent: float = 5.0  # ... or below this share of the disk, whichever is more
    events_for_space: bool = False  # clips/thumbnails may go for space, after every segment

    def __post_init__(self) -> None:
        limits = (
            self.segment_days,
            self.segment_gb,
            self.clip_days,
            self.clip_gb,
            self.thumbnail_days,
            self.thumbnail_gb,
        )
        if any(v is not None and v <= 0 for v in limits):
            raise ValueError("retention ages and sizes must be positive (or absent)")
        if self.min_free_gb < 0 or not 0 <= self.min_free_percent < 100:
            raise ValueError("free space to keep must be >= 0 GB and 0-100 %")

    def max_age(self, kind: Kind) -> float | None:
        days = {"segment": self.segment_days, "clip": self.clip_days}.get(
            kind, self.thumbnail_days if kind == "thumbnail" else None
        )
        return None if days is None else days * DAY

    def max_bytes(self, kind: Kind) -> int | None:
        gb = {"segment": self.segment_gb, "clip": self.clip_gb}.get(
            kind, self.thumbnail_gb if kind == "thumbnail" else None
        )
        return None if gb is None else int(gb * GB)

    def min_free(self, total: int) -> int:
        """Bytes to keep free on a disk of ``total`` bytes."""
        return max(int(self.min_free_gb * GB), int(total * self.min_free_percent / 100))


@dataclass(frozen=True)
class Deletion:
    item: StoredItem
    reason: Reason


@dataclass(frozen=True)
class Plan:
    deletions: tuple[Deletion, ...] = ()
    shortfall: int = 0  # bytes the disk would still lack after the deletions
    freed: int = field(default=0)

    @property
    def keys(self) -> list[str]:
        return [d.item.key for d in self.deletions]


def _deletable(item: StoredItem) -> bool:
    return item.kind != "state" and not item.protected


def plan(
    items: Iterable[StoredItem],
    rules: RetentionRules,
    now: float,
    free: int | None = None,
    total: int | None = None,
) -> Plan:
    """The deletions ``rules`` ask for at ``now``; with ``free``/``total`` (bytes of the
    disk), also those that bring free space back to ``rules.min_free`` (plus 10 % so the hub
    does not delete a segment at every new one)."""
    candidates = sorted((i for i in items if _deletable(i)), key=lambda i: (i.time, i.key))
    chosen: dict[str, Deletion] = {}

    def take(item: StoredItem, reason: Reason) -> None:
        chosen.setdefault(item.key, Deletion(item, reason))

    for item in candidates:  # 1. age, each kind by its own rule
        limit = rules.max_age(item.kind)
        if limit is not None and now - item.time > limit:
            take(item, "age")
    kinds: tuple[Kind, ...] = ("segment", "clip", "thumbnail")
    for kind in kinds:  # 2. size caps per kind, oldest first
        cap = rules.max_bytes(kind)
        if cap is None:
            continue
        kept = [i for i in candidates if i.kind == kind and i.key not in chosen]
        size = sum(i.bytes for i in kept)
        for item in kept:
            if size <= cap:
                break
            take(item, "size")
            size -= item.bytes
    freed = sum(d.item.bytes for d in chosen.values())
    shortfall = 0
    if free is not None and total is not None:  # 3. a disk running low
        need = rules.min_free(total) - free - freed
        if need > 0:
            need += rules.min_free(total) // 10  # hysteresis
            order = [i for i in candidates if i.kind == "segment"]
            if rules.events_for_space:
                order += [i for i in candidates if i.kind in ("clip", "thumbnail")]
            for item in order:
                if need <= 0:
                    break
                if item.key not in chosen:
                    take(item, "disk")
                    need -= item.bytes
                    freed += item.bytes
            shortfall = max(0, need - rules.min_free(total) // 10)
    return Plan(tuple(chosen.values()), shortfall, freed)


EVENT_MEDIA = ("clip", "thumbnail")  # an event's files, beside its ``.json`` sidecar


def _drop_orphan_sidecar(media: Path) -> int:
    """An event's sidecar goes with the last of its media (clip ``.mp4`` and thumbnail
    ``.jpg`` share its stem): once neither is left it describes nothing. Bytes freed."""
    if media.with_suffix(".mp4").exists() or media.with_suffix(".jpg").exists():
        return 0
    sidecar = media.with_suffix(".json")
    try:
        size = sidecar.stat().st_size
        sidecar.unlink()
    except FileNotFoundError:
        return 0
    return size


def apply(
    deletions: Iterable[Deletion],
    root: Path,
    on_segments: Callable[[list[str]], None] | None = None,
) -> int:
    """Delete the files of ``deletions`` (keys relative to ``root`` or absolute); then the
    segments' keys go to ``on_segments`` (to drop them from the index, in one write). Bytes
    freed; a file that is already gone is not an error."""
    freed = 0
    done: list[Deletion] = []
    for deletion in deletions:
        path = Path(deletion.item.key)
        path = path if path.is_absolute() else root / path
        if deletion.item.kind == "state":  # defence in depth: plan never lists state
            raise ValueError(f"retention must never delete state: {path}")
        with contextlib.suppress(FileNotFoundError):
            size = path.stat().st_size
            path.unlink()
            freed += size
        done.append(deletion)
        item = deletion.item
        log.info("retention: deleted %s (%s, %d bytes)", path.name, deletion.reason, item.bytes)
        if item.kind in EVENT_MEDIA:
            freed += _drop_orphan_sidecar(path)
    # The index learns it after every file is gone: on a full disk, it needs that room itself.
    segments = [d.item.key for d in done if d.item.kind == "segment"]
    if segments and on_segments is not None:
        on_segments(segments)
    return freed


__all__ = [
    "DAY",
    "GB",
    "Deletion",
    "Kind",
    "Plan",
    "RetentionRules",
    "StoredItem",
    "apply",
    "plan",
]
