"""``[storage]`` of ``hub.toml``: how long the hub keeps what it records, and its disk's floor.

Continuous recording, event clips and thumbnails each have an age limit (days; 0: none) and
an optional size cap (GB, 10^9 bytes); a camera may set its own recording limits
(``recording_days``, ``recording_gb`` in its ``[[cameras]]`` block). Below ``min_free_gb`` (or
``min_free_percent`` of the disk, whichever is more) the hub deletes the oldest continuous
recording to make room; event clips, thumbnails and the MLS state are never deleted for
space. The policy itself is ``media.retention``; this is only its configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

from privastead.media.retention import RetentionRules


def _limit(value: float | None) -> float | None:
    """0 in the file means "no limit"."""
    return None if value is None or value == 0 else value


@dataclass(frozen=True)
class StorageSection:
    """Retention and the full disk (``[storage]``); cameras may override the recording limits."""

    #: Default length of a continuous-recording segment, in seconds (cut at the next keyframe).
    segment_seconds: float = 60.0
    #: Days of continuous recording to keep (0: no age limit).
    recording_days: float = 7.0
    #: GB of continuous recording to keep at most, all cameras together (absent: no cap).
    recording_gb: float | None = None
    #: Days to keep event clips on the hub (0: no age limit).
    clip_days: float = 30.0
    #: GB of event clips to keep at most (absent: no cap).
    clip_gb: float | None = None
    #: Days to keep event thumbnails on the hub (0: no age limit).
    thumbnail_days: float = 90.0
    #: GB of thumbnails to keep at most (absent: no cap).
    thumbnail_gb: float | None = None
    #: Free space (GB) below which the disk counts as low: the oldest recording is deleted.
    min_free_gb: float = 2.0
    #: ... or this share of the disk (percent), whichever is more.
    min_free_percent: float = 5.0
    #: Free space (MB) below which the disk counts as full: continuous recording pauses.
    full_below_mb: float = 64.0
    #: Seconds between looks at the disk's free space.
    check_interval: float = 10.0
    #: Seconds between retention sweeps (age and size) while the disk is fine.
    sweep_interval: float = 300.0

    def __post_init__(self) -> None:
        if self.segment_seconds <= 0 or self.check_interval <= 0 or self.sweep_interval <= 0:
            raise ValueError("segment_seconds, check_interval and sweep_interval must be > 0")
        if self.full_below_mb < 0:
            raise ValueError("full_below_mb must be >= 0")
        days = (self.recording_days, self.clip_days, self.thumbnail_days)
        sizes = (self.recording_gb, self.clip_gb, self.thumbnail_gb)
        if any(d < 0 for d in days) or any(g is not None and g <= 0 for g in sizes):
            raise ValueError("retention days must be >= 0 (0: no limit) and sizes > 0")
        self.rules()  # the remaining checks (free space) are the policy's own

    def rules(self) -> RetentionRules:
        """The hub-wide rules (every camera's recording, all clips and thumbnails)."""
        return RetentionRules(
            segment_days=_limit(self.recording_days),
            segment_gb=self.recording_gb,
            clip_days=_limit(self.clip_days),
            clip_gb=self.clip_gb,
            thumbnail_days=_limit(self.thumbnail_days),
            thumbnail_gb=self.thumbnail_gb,
            min_free_gb=self.min_free_gb,
            min_free_percent=self.min_free_percent,
        )

    def camera_rules(self, days: float | None, gb: float | None) -> RetentionRules | None:
        """A camera's own recording limits (None: it has none, the hub-wide ones apply)."""
        if days is None and gb is None:
            return None
        return RetentionRules(
            segment_days=_limit(days) if days is not None else _limit(self.recording_days),
            segment_gb=gb,
            clip_days=None,
            thumbnail_days=None,
            min_free_gb=0.0,
            min_free_percent=0.0,
        )


__all__ = ["StorageSection"]
