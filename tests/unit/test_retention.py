"""Retention: by age, by size, and for a full disk in the right order; the disk watcher."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from privastead.clock import FakeClock
from privastead.media.diskspace import DiskStatus, DiskWatcher
from privastead.media.retention import DAY, GB, RetentionRules, StoredItem, apply, plan

NOW = 2_000_000_000.0
MB = 1_000_000


def _item(kind: str, key: str, mb: float, days_ago: float, **kw: object) -> StoredItem:
    return StoredItem(kind, key, int(mb * MB), NOW - days_ago * DAY, **kw)  # type: ignore[arg-type]


HOME = [
    _item("segment", "seg-old", 500, 10),
    _item("segment", "seg-mid", 500, 3),
    _item("segment", "seg-new", 500, 0.01),
    _item("clip", "clip-old", 40, 40),
    _item("clip", "clip-new", 40, 1),
    _item("thumbnail", "thumb-old", 0.02, 100),
    _item("thumbnail", "thumb-new", 0.02, 1),
    _item("state", "mls-state", 1, 400),
]


def test_each_kind_expires_by_its_own_age() -> None:
    result = plan(HOME, RetentionRules(segment_days=7, clip_days=30, thumbnail_days=90), NOW)
    assert result.keys == ["thumb-old", "clip-old", "seg-old"]  # oldest first
    assert {d.reason for d in result.deletions} == {"age"}
    assert result.shortfall == 0


def test_size_caps_delete_the_oldest_of_that_kind_only() -> None:
    rules = RetentionRules(segment_days=None, clip_days=None, thumbnail_days=None, segment_gb=1.0)
    result = plan(HOME, rules, NOW)
    assert result.keys == ["seg-old"] and result.deletions[0].reason == "size"


def test_a_full_disk_takes_recordings_oldest_first_and_never_events_or_state() -> None:
    rules = RetentionRules(segment_days=None, clip_days=None, thumbnail_days=None, min_free_gb=1)
    # 10 GB disk, 0.3 GB free: 0.7 GB (+10 %) to find
    result = plan(HOME, rules, NOW, free=int(0.3 * GB), total=10 * GB)
    assert result.keys == ["seg-old", "seg-mid"]
    assert {d.reason for d in result.deletions} == {"disk"} and result.shortfall == 0
    # a disk that needs more than all recordings: the events and the MLS state still stay
    greedy = RetentionRules(segment_days=None, clip_days=None, thumbnail_days=None, min_free_gb=3)
    starved = plan(HOME, greedy, NOW, free=0, total=10 * GB)
    assert starved.keys == ["seg-old", "seg-mid", "seg-new"]
    assert starved.shortfall == 3 * GB - 1500 * MB  # what the hub must report


def test_events_may_go_for_space_only_after_every_recording() -> None:
    rules = RetentionRules(
        segment_days=None, clip_days=None, thumbnail_days=None, min_free_gb=2, events_for_space=True
    )
    result = plan(HOME, rules, NOW, free=int(0.4 * GB), total=10 * GB)
    kinds = [d.item.kind for d in result.deletions]
    assert kinds[:3] == ["segment"] * 3  # every recording before any event
    assert "state" not in kinds and "mls-state" not in result.keys


def test_protected_items_and_state_are_never_deleted() -> None:
    items = [
        _item("segment", "playing", 500, 30, protected=True),
        _item("clip", "not-uploaded", 40, 300, protected=True),
        _item("state", "outbox", 100, 1000),
    ]
    result = plan(items, RetentionRules(min_free_gb=5), NOW, free=0, total=10 * GB)
    assert result.keys == [] and result.shortfall == 5 * GB


def test_age_deletions_count_towards_the_free_space_needed() -> None:
    rules = RetentionRules(segment_days=7, min_free_gb=1)
    result = plan(HOME, rules, NOW, free=int(0.6 * GB), total=10 * GB)
    assert result.keys == ["thumb-old", "clip-old", "seg-old"]  # age alone frees enough


def test_bad_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        RetentionRules(clip_days=0)
    with pytest.raises(ValueError, match="free"):
        RetentionRules(min_free_percent=100)


def test_apply_deletes_files_and_tells_the_index(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "seg.mp4").write_bytes(b"x" * 10)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"y" * 5)
    items = [
        StoredItem("segment", "a/seg.mp4", 10, NOW - 30 * DAY),
        StoredItem("clip", str(clip), 5, NOW - 90 * DAY),
        StoredItem("segment", "a/gone.mp4", 7, NOW - 30 * DAY),  # already deleted: fine
    ]
    removed: list[str] = []
    chosen = plan(items, RetentionRules(), NOW)
    assert apply(chosen.deletions, tmp_path, removed.extend) == 15
    assert not clip.exists() and not (tmp_path / "a" / "seg.mp4").exists()
    assert sorted(removed) == ["a/gone.mp4", "a/seg.mp4"]
    with pytest.raises(ValueError, match="never delete state"):
        from privastead.media.retention import Deletion

        apply([Deletion(StoredItem("state", "k", 1, 0), "age")], tmp_path)


def test_a_sidecar_goes_with_the_last_of_its_events_media(tmp_path: Path) -> None:
    from privastead.media.retention import Deletion

    day = tmp_path / "2026-12-01"
    day.mkdir()
    stem = day / "door-1764547200000-abcd"
    for suffix, body in ((".mp4", b"c" * 50), (".jpg", b"t" * 20), (".json", b"{}")):
        stem.with_suffix(suffix).write_bytes(body)
    clip = StoredItem("clip", str(stem.with_suffix(".mp4")), 50, NOW - 40 * DAY)
    thumb = StoredItem("thumbnail", str(stem.with_suffix(".jpg")), 20, NOW - 100 * DAY)
    assert apply([Deletion(clip, "age")], tmp_path) == 50
    assert stem.with_suffix(".json").exists()  # the thumbnail still shows the event
    assert apply([Deletion(thumb, "age")], tmp_path) == 22  # and its sidecar with it
    assert list(day.iterdir()) == []


@dataclass
class _Vfs:
    f_frsize: int
    f_blocks: int
    f_bavail: int


def test_disk_watcher_states_with_hysteresis() -> None:
    disk = {"free": 50 * GB}
    watcher = DiskWatcher(
        Path("/data"),
        RetentionRules(min_free_gb=2, min_free_percent=1),
        floor=100 * MB,
        statvfs=lambda _p: _Vfs(4096, 100 * GB // 4096, disk["free"] // 4096),
    )
    seen = []
    for free in (50 * GB, 1.5 * GB, 2.1 * GB, 2.3 * GB, 0.05 * GB, 1 * GB, 3 * GB):
        disk["free"] = int(free)
        seen.append(watcher.check().state)
    assert seen == ["ok", "low", "low", "ok", "full", "low", "ok"]
    status = watcher.check()
    assert "GB free of" in status.detail


def test_disk_watcher_calls_back_on_changes_and_while_low(clock: FakeClock) -> None:
    frees = iter([10 * GB, 10 * GB, 1 * GB, 1 * GB, 10 * GB, 10 * GB])
    current = {"free": 10 * GB}

    def statvfs(_path: Path) -> _Vfs:
        return _Vfs(1, 100 * GB, current["free"])

    watcher = DiskWatcher(
        Path("/d"), RetentionRules(min_free_gb=2, min_free_percent=0), statvfs=statvfs
    )
    calls: list[tuple[str, bool]] = []
    stop = asyncio.Event()

    async def on_status(status: DiskStatus, changed: bool) -> None:
        calls.append((status.state, changed))

    async def drive() -> None:
        task = asyncio.ensure_future(watcher.run(on_status, interval=5, clock=clock, stop=stop))
        for free in frees:
            current["free"] = free
            await asyncio.sleep(0.01)
        stop.set()
        await task

    asyncio.run(drive())
    states = [s for s, _ in calls]
    assert states[0] == "ok" and "low" in states and states[-1] == "ok"
    assert all(changed for s, changed in calls if s == "ok")  # "ok" is only said on a change
    assert clock.monotonic() > 0  # time came from the injected clock
