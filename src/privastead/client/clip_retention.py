"""How long this device keeps decrypted clips: ``<data_dir>/client.toml``, ``[clips]``.

    [clips]
    keep_days = 30      # delete clips older than this (0: keep them regardless of age)
    keep_gb = 20        # and the oldest past this much (absent: no size cap)

The file is optional (defaults: 90 days, no size cap) and strict like every config file. A
running ``listen`` or ``ui`` applies the rules at start and every ``SWEEP_INTERVAL`` seconds:
complete clips (``clips/<clip>.mp4`` with their record) are deleted oldest first, and the
event log marks the event's clip ``expired`` (the event and its thumbnail stay: they are
small). A clip still arriving is never touched. The policy is ``media.retention``'s.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from privastead import configfile
from privastead.client.eventlog import ClipState, EventLog
from privastead.media.retention import RetentionRules, StoredItem, plan

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 600.0  # seconds between two sweeps of a running client
CONFIG_NAME = "client.toml"


@dataclass(frozen=True)
class ClipKeeping:
    """Retention of decrypted clips on this device (``[clips]``)."""

    #: Days to keep a clip (0: no age limit).
    keep_days: float = 90.0
    #: GB (10^9 bytes) of clips to keep at most, the oldest deleted first (absent: no cap).
    keep_gb: float | None = None

    def __post_init__(self) -> None:
        if self.keep_days < 0 or (self.keep_gb is not None and self.keep_gb <= 0):
            raise ValueError("keep_days must be >= 0 (0: no limit) and keep_gb > 0")

    def rules(self) -> RetentionRules:
        return RetentionRules(
            segment_days=None,
            clip_days=self.keep_days or None,
            clip_gb=self.keep_gb,
            thumbnail_days=None,
            min_free_gb=0.0,
            min_free_percent=0.0,
        )

    def describe(self) -> str:
        age = f"{self.keep_days:g} days" if self.keep_days else "no age limit"
        size = f"{self.keep_gb:g} GB at most" if self.keep_gb is not None else "no size cap"
        return f"kept {age}, {size}"


@dataclass(frozen=True)
class ClientConfig:
    """``<data_dir>/client.toml``: this device's own settings (optional)."""

    clips: ClipKeeping = field(default_factory=ClipKeeping)


def load_config(root: Path) -> ClientConfig:
    """The data directory's ``client.toml`` (defaults without one; ``ConfigError`` naming
    the line when it is wrong)."""
    path = root / CONFIG_NAME
    if not path.exists():
        return ClientConfig()
    return configfile.load(path, ClientConfig)


@dataclass(frozen=True)
class ClipUsage:
    clips: int
    bytes: int

    def as_dict(self, keeping: ClipKeeping) -> dict[str, Any]:
        return {"clips": self.clips, "bytes": self.bytes, "keeping": keeping.describe()}


def _stored(clips_dir: Path) -> list[StoredItem]:
    items = []
    for path in sorted(clips_dir.glob("*.mp4")):
        with contextlib.suppress(FileNotFoundError):
            st = path.stat()
            items.append(StoredItem("clip", str(path), st.st_size, st.st_mtime))
    return items


def usage(clips_dir: Path) -> ClipUsage:
    items = _stored(clips_dir)
    return ClipUsage(len(items), sum(i.bytes for i in items))


def prune(clips_dir: Path, events: EventLog, keeping: ClipKeeping, now: float) -> int:
    """Delete the complete clips ``keeping`` no longer allows; how many."""
    chosen = plan(_stored(clips_dir), keeping.rules(), now)
    for deletion in chosen.deletions:
        path = Path(deletion.item.key)
        clip_id = path.stem
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)
        record = events.find(clip_id)
        if record is not None and record.clip_id == clip_id:
            events.record_clip(
                camera=record.camera,
                event_id=record.event_id,
                clip_id=clip_id,
                state=ClipState.EXPIRED,
                path=None,
            )
        log.info("clip %s deleted (%s)", path.name, deletion.reason)
    return len(chosen.deletions)


__all__ = [
    "CONFIG_NAME",
    "SWEEP_INTERVAL",
    "ClientConfig",
    "ClipKeeping",
    "ClipUsage",
    "load_config",
    "prune",
    "usage",
]
