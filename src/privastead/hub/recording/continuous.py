"""Continuous recording of one camera: its stream copied into segments, off the event loop.

``ContinuousRecorder`` is fed on the loop by its camera, like the clip recorder: the main
stream's connections (``connected``/``disconnected``), every packet (``push``) and the events
(``event_started``/``event_ended``, marked on the timeline in the segment index). The loop
only puts them on a queue; one thread per camera owns the ``media.segments.SegmentWriter`` and
does every file write, fsync and index write (the hub's concurrency rule: no blocking file
I/O on the loop). Packets are never dropped while the thread keeps up; if it falls
``MAX_BACKLOG`` seconds behind (a disk that stalls), packets are dropped up to the next
keyframe and counted, so memory stays bounded and the loop never waits.

A full disk pauses recording: before it happens when the hub's disk watcher sees free space
fall below its floor (``pause``), or when a write fails with ENOSPC (the writer drops packets
and says so with ``StorageFullError``; the recorder calls ``on_full`` so the hub's storage
keeper makes room at once). Recording goes on when ``resume`` is called after room was
made. ``state`` is what the camera's health reports: ``recording``, ``paused`` (disk full),
``stopped`` or ``off`` (a camera without continuous recording: its recorder only marks the
events).
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from privastead.errors import MediaError, StorageError, StorageFullError
from privastead.media.ingest import MediaPacket, StreamInfo
from privastead.media.segment_index import EventMark, Segment, SegmentIndex
from privastead.media.segments import SegmentSettings, SegmentWriter

log = logging.getLogger(__name__)

MAX_BACKLOG = 10.0  # seconds of video waiting for the writer thread before packets are dropped

RecorderState = Literal["recording", "paused", "stopped", "off"]


@dataclass(frozen=True)
class _Disconnected:
    pass


@dataclass(frozen=True)
class _Resume:
    pass


@dataclass(frozen=True)
class _Pause:
    pass


_Item = StreamInfo | MediaPacket | EventMark | _Disconnected | _Resume | _Pause | None


class ContinuousRecorder:
    def __init__(
        self,
        camera: str,
        root: Path,
        index: SegmentIndex,
        settings: SegmentSettings,
        *,
        record: bool = True,
        on_full: Callable[[str], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """Without ``record`` the camera is only marked (its events) on the timeline.
        ``on_full(camera)`` is called from the writer thread when the disk filled (it must only
        schedule work); ``wall_clock`` dates event marks."""
        self.camera = camera
        self.index = index
        self.record = record
        self.writer = SegmentWriter(root, camera, index, settings) if record else None
        self.on_full = on_full
        self.wall_clock = wall_clock
        self.segments = 0  # finished since start
        self.bytes = 0
        self.dropped = 0  # packets dropped because the writer fell behind
        self.full_events = 0
        self.last_error = ""
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        # Video packets queued (by the loop) and written (by the thread): each counter has one
        # writer, so the backlog needs no lock.
        self._queued = 0
        self._written = 0
        # Pause/resume are asked on the loop and done by the thread; until the thread has
        # done the last one asked, ``state`` reports what was asked (a heartbeat sent right
        # after the disk filled must already say "paused").
        self._wanted: RecorderState = "recording"
        self._asked = 0
        self._done = 0
        self._skipping = False
        self._fps = 30.0
        self._last_pts = 0.0
        self._thread = threading.Thread(target=self._run, name=f"segments-{camera}", daemon=True)
        self._thread.start()

    @property
    def state(self) -> RecorderState:
        if self.writer is None:
            return "off"
        if not self._thread.is_alive():
            return "stopped"
        if self._done < self._asked:
            return self._wanted
        return "paused" if self.writer.blocked else "recording"

    # -- fed by the camera, on the loop ---------------------------------------------------------
    def connected(self, info: StreamInfo) -> None:
        if self.writer is None:
            return
        if info.video.average_rate:
            self._fps = float(info.video.average_rate) or 30.0
        self._queue.put(info)

    def disconnected(self) -> None:
        if self.writer is not None:
            self._queue.put(_Disconnected())

    def push(self, packet: MediaPacket) -> None:
        if packet.kind == "video":
            self._last_pts = packet.pts  # event marks are dated through it
        if self.writer is None:
            return
        video = packet.kind == "video"
        if video:
            if self._skipping and not packet.keyframe:
                self.dropped += 1
                return
            if self._queued - self._written > MAX_BACKLOG * self._fps:
                self.dropped += 1
                self._skipping = True
                log.warning("%s: segment writer %.0f s behind; dropping", self.camera, MAX_BACKLOG)
                return
            self._skipping = False
            self._queued += 1
        elif self._skipping:
            self.dropped += 1
            return
        self._queue.put(packet)

    def event_started(self, event_id: str, at: float) -> None:
        """An event with onset at stream time ``at`` (dated through the newest packet)."""
        self._queue.put(EventMark(self.camera, event_id, self._wall(at), None))

    def event_ended(self, event_id: str, started: float, ended: float) -> None:
        self._queue.put(EventMark(self.camera, event_id, self._wall(started), self._wall(ended)))

    def resume(self) -> None:
        """Room was made on the disk: record again (at the next keyframe)."""
        self._ask("recording", _Resume())

    def pause(self) -> None:
        """The disk is nearly full: end the running segment and record nothing until
        ``resume``, so the last megabytes stay for what must never be lost (MLS state, event
        clips) rather than waiting for a write to fail."""
        self._ask("paused", _Pause())

    def _ask(self, wanted: RecorderState, item: _Pause | _Resume) -> None:
        self._wanted = wanted
        self._asked += 1
        self._queue.put(item)

    def close(self) -> None:
        """Finish the running segment and stop the thread (blocking: call it in a thread)."""
        self._queue.put(None)
        self._thread.join()

    def _wall(self, stream_time: float) -> float:
        return self.wall_clock() - max(0.0, self._last_pts - stream_time)

    # -- the writer thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                if self.writer is not None:
                    self._guard(self.writer.close)
                return
            self._guard(functools.partial(self._handle, item))

    def _handle(self, item: _Item) -> None:
        writer = self.writer
        if isinstance(item, EventMark):
            self.index.mark_event(item)
        elif writer is None:
            return
        elif isinstance(item, MediaPacket):
            if item.kind == "video":
                self._written += 1
            self._count(writer.write(item))
        elif isinstance(item, StreamInfo):
            self._count(writer.start(item))
        elif isinstance(item, _Disconnected):
            self._count(writer.close())
        elif isinstance(item, (_Pause, _Resume)):
            try:
                self._pause_or_resume(writer, item)
            finally:
                self._done += 1

    def _pause_or_resume(self, writer: SegmentWriter, item: _Pause | _Resume) -> None:
        if isinstance(item, _Pause):
            if not writer.blocked:
                log.warning("%s: the disk is full; continuous recording paused", self.camera)
                self._count(writer.close())
                writer.blocked = True
        else:
            if writer.blocked:
                log.info("%s: room made on the disk; continuous recording resumes", self.camera)
            writer.resume()

    def _count(self, segment: Segment | None) -> None:
        if segment is not None:
            self.segments += 1
            self.bytes += segment.bytes

    def _guard(self, step: Callable[[], object]) -> None:
        """One step of the thread: a full disk pauses, other trouble is logged; never dies."""
        try:
            step()
        except StorageFullError as exc:
            self.full_events += 1
            self.last_error = str(exc)
            log.warning("%s", exc)
            if self.on_full is not None:
                self.on_full(self.camera)
        except (MediaError, StorageError, OSError) as exc:
            self.last_error = str(exc)
            log.error("%s: continuous recording: %s", self.camera, exc)
        except Exception:  # a bug must not stop the recording thread for good
            log.exception("%s: continuous recording failed on an item", self.camera)


__all__ = ["MAX_BACKLOG", "ContinuousRecorder", "RecorderState"]
