"""The hub's recordings and its disk: continuous recorders, retention, and the disk's health.

``Recordings`` owns the segment index (``HubDataDir.recordings_index``), hands each camera its
``ContinuousRecorder`` (recording 24/7 if the camera has ``continuous = true``, otherwise only
marking its events on the timeline) and keeps the disk in order (``run``):

- every ``check_interval`` it reads the disk's free space (``media.diskspace.DiskWatcher``):
  ``ok``, ``low`` (below ``min_free``: the oldest continuous recording is deleted until there
  is room again) or ``full`` (continuous recording pauses);
- every ``sweep_interval``, and at once while the disk is not ok or a recorder hit a full disk,
  it applies the retention rules (``media.retention``): recordings by age and size (per camera
  where a camera sets its own limits), clips and thumbnails by theirs, the oldest recording
  first for space. Clips, thumbnails and MLS state are never deleted for space;
- while the disk is full (below ``full_below_mb``, even after deleting every recording allowed)
  the recorders pause, so the last megabytes stay for the MLS state and event clips; after
  room was made they resume; a change of the disk's state is reported to
  ``on_change`` (the hub sends every camera's heartbeat at once, so clients hear of it).

Every file operation runs in a thread; the loop only schedules.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from privastead.clock import Clock
from privastead.hub.config import CameraConfig
from privastead.hub.recording.continuous import ContinuousRecorder
from privastead.hub.state.datadir import HubDataDir
from privastead.hub.storage_config import StorageSection
from privastead.media.diskspace import MB, DiskStatus, DiskWatcher
from privastead.media.retention import DAY, Deletion, RetentionRules, StoredItem, apply, plan
from privastead.media.segment_files import recover
from privastead.media.segment_index import SegmentIndex
from privastead.media.segments import SegmentSettings, private_dir
from privastead.media.storage import Places, catalog

log = logging.getLogger(__name__)

URGENT_GAP = 1.0  # seconds between two sweeps a full disk asks for


class Recordings:
    def __init__(
        self,
        storage: StorageSection,
        cameras: Sequence[CameraConfig],
        clock: Clock,
        *,
        root: Path,
        index: SegmentIndex,
        clips: Path,
        watch: Path | None = None,
        statvfs: Callable[[Path], Any] | None = None,
    ) -> None:
        """``root``: the recordings directory; ``watch``: a path on the disk to watch (default:
        ``root``: the hub's data directory's disk, where the MLS state lives too)."""
        self.storage = storage
        self.cameras = {c.name: c for c in cameras}
        self.root = root
        self.index = index
        self.clips = clips
        self.clock = clock
        self.rules = storage.rules()
        self.watcher = DiskWatcher(
            watch or root, self.rules, floor=int(storage.full_below_mb * MB), statvfs=statvfs
        )
        self.recorders: dict[str, ContinuousRecorder] = {}  # the running cameras'
        self.protected: set[str] = set()  # segment paths being played back: never deleted
        self.deleted = 0  # files deleted by retention since start
        self.freed = 0
        self._urgent: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def open(
        cls,
        storage: StorageSection,
        cameras: Sequence[CameraConfig],
        clock: Clock,
        paths: HubDataDir,
    ) -> Recordings:
        """Open (blocking: call in a thread) the index, finishing the segments a crash left
        (``.part`` files) and rebuilding the index from the files if it was lost."""
        root = private_dir(paths.recordings)
        rebuild = not paths.recordings_index.exists()
        index = SegmentIndex(paths.recordings_index)
        recovered = recover(root, index, rebuild=rebuild)
        if recovered:
            log.info("recordings: %d segment(s) recovered or re-indexed", len(recovered))
        return cls(storage, cameras, clock, root=root, index=index, clips=paths.clips)

    def close(self) -> None:
        self.index.close()

    # -- the cameras' recorders ----------------------------------------------------------------
    def recorder(self, camera: CameraConfig) -> ContinuousRecorder:
        """A new recorder for ``camera`` (the camera closes it when it stops)."""
        seconds = camera.segment_seconds or self.storage.segment_seconds
        recorder = ContinuousRecorder(
            camera.name,
            self.root,
            self.index,
            SegmentSettings(seconds=seconds),
            record=camera.continuous,
            on_full=self._disk_full,
            wall_clock=self.clock.time,
        )
        self.recorders[camera.name] = recorder
        return recorder

    def _disk_full(self, camera: str) -> None:
        """From a writer thread: make room now."""
        loop, urgent = self._loop, self._urgent
        if loop is not None and urgent is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(urgent.set)

    # -- what clients hear ---------------------------------------------------------------------
    def facts(self, camera: str) -> dict[str, Any]:
        """The disk and this camera's recording, for its heartbeat (flat scalars)."""
        status = self.watcher.status
        recorder = self.recorders.get(camera)
        cfg = self.cameras.get(camera)
        recording = "off"
        if cfg is not None and cfg.continuous:
            recording = recorder.state if recorder is not None else "stopped"
        facts: dict[str, Any] = {"recording": recording}
        if status is not None:
            facts |= {"disk": status.state, "disk_free": status.free, "disk_detail": status.detail}
        return facts

    # -- keeping the disk in order ---------------------------------------------------------------
    async def run(self, on_change: Callable[[DiskStatus], None]) -> None:
        """Watch the disk and apply retention until cancelled; ``on_change`` on each change
        of the disk's state."""
        self._loop = asyncio.get_running_loop()
        self._urgent = urgent = asyncio.Event()
        last_sweep = float("-inf")
        reported: str | None = "ok"  # clients assume a fine disk until told otherwise
        while True:
            status = await asyncio.to_thread(self.watcher.check)
            now = self.clock.monotonic()
            due = now - last_sweep >= self.storage.sweep_interval
            # "low" inside the hysteresis band (already above min_free) has nothing to delete:
            # only sweep (which lists every segment) when there is room to make.
            short = status.free < self.rules.min_free(status.total) or status.state == "full"
            if due or short or urgent.is_set() or self._paused():
                urgent.clear()
                last_sweep = now
                try:
                    await asyncio.to_thread(self.sweep, status)
                except OSError as exc:  # StorageError included: report, try again later
                    log.error("retention failed: %s", exc)
                status = await asyncio.to_thread(self.watcher.check)
            for recorder in list(self.recorders.values()):
                if status.state == "full" and recorder.state == "recording":
                    recorder.pause()  # keep the last megabytes for state and events
                elif status.state != "full" and recorder.state == "paused":
                    recorder.resume()
            if status.state != reported:
                reported = status.state
                log.log(
                    logging.INFO if status.state == "ok" else logging.WARNING,
                    "disk %s: %s",
                    status.state,
                    status.detail,
                )
                on_change(status)
            await self._pause(urgent)

    async def _pause(self, urgent: asyncio.Event) -> None:
        """Until the next check, or sooner (but ``URGENT_GAP`` at least) if a recorder hit a
        full disk."""
        sleep = asyncio.ensure_future(self.clock.sleep(self.storage.check_interval))
        wake = asyncio.ensure_future(urgent.wait())
        try:
            await asyncio.wait({sleep, wake}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleep.cancel()
            wake.cancel()
        if urgent.is_set():
            await self.clock.sleep(URGENT_GAP)

    def _paused(self) -> bool:
        return any(r.state == "paused" for r in self.recorders.values())

    def sweep(self, disk: DiskStatus | None = None) -> int:
        """Apply the retention rules once (blocking); with ``disk``, make its free space the
        rules' ``min_free``. Files deleted."""
        now = self.clock.time()
        items = catalog(Places(self.root, self.index, self.clips), self.protected)
        deletions = self.plan(items, now, disk)
        freed = apply(deletions, self.root, self.index.remove)
        self.deleted += len(deletions)
        self.freed += freed
        if deletions:
            log.info("retention: %d file(s) deleted, %.1f MB freed", len(deletions), freed / 1e6)
        days, clip_days = self.rules.segment_days, self.rules.clip_days
        if days is not None and clip_days is not None:  # a mark outlives what it points at
            self.index.forget_marks_before(now - max(days, clip_days) * DAY)
        return len(deletions)

    def plan(self, items: list[StoredItem], now: float, disk: DiskStatus | None) -> list[Deletion]:
        """Per camera its recording's own limits (or the hub-wide ones), then the hub-wide
        rules for everything else: recordings' total size, clips, thumbnails, free space."""
        chosen: list[Deletion] = []
        by_camera: dict[str, list[StoredItem]] = {}
        for item in items:
            if item.kind == "segment":
                by_camera.setdefault(item.camera, []).append(item)
        for camera, segments in by_camera.items():
            chosen += plan(segments, self._segment_rules(camera), now).deletions
        gone = {d.item.key for d in chosen}
        rest = [i for i in items if i.key not in gone]
        hub_wide = dataclasses.replace(self.rules, segment_days=None)  # ages were per camera
        free = disk.free + sum(d.item.bytes for d in chosen) if disk is not None else None
        result = plan(rest, hub_wide, now, free, disk.total if disk is not None else None)
        return chosen + list(result.deletions)

    def _segment_rules(self, camera: str) -> RetentionRules:
        cfg = self.cameras.get(camera)
        own = self.storage.camera_rules(cfg.recording_days, cfg.recording_gb) if cfg else None
        if own is not None:
            return own
        return RetentionRules(
            segment_days=self.rules.segment_days,
            clip_days=None,
            thumbnail_days=None,
            min_free_gb=0.0,
            min_free_percent=0.0,
        )


__all__ = ["Recordings"]
