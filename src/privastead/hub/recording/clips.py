"""The recording stage: one camera's event clips, cut from the pre-roll ring by stream copy.

``ClipRecorder`` is fed by its camera on the event loop: every main-stream packet (``push``),
the detector's events (``start``/``end``) and connection losses (``disconnected``). A clip
starts ``pre_roll`` before the event's onset (the ring keeps enough), is written as fMP4 by
``media.recorder.ClipWriter`` and ends with the event. The loop only decides: opening the
clip file, muxing every packet into it (box parsing, ``write`` + ``flush`` per fragment) and
closing it run on the camera's ``MuxThread`` (``recording.mux_thread``), in order; the
thumbnail and the sidecar JSON run in threads. A write that fails, or a mux thread that falls
``MAX_BACKLOG`` packets behind (a stalled disk), ends the clip: logged and counted, what was
written stays playable and is delivered. An event that outlives a reconnect goes on in a new
part at the next connection's first keyframe. Events, fragments and clip ends go to the
camera's ``ClipSink`` (delivery), which only queues them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import av

from privastead.atomic_file import write_atomic
from privastead.compat import UTC
from privastead.errors import MediaError
from privastead.hub.recording.mux_thread import MuxThread
from privastead.media.events import EventEnded, EventStarted
from privastead.media.ingest import MediaPacket, StreamInfo
from privastead.media.recorder import ClipSummary, ClipWriter
from privastead.media.ring import PacketRing
from privastead.media.thumbnail import thumbnail_from_packets

if TYPE_CHECKING:
    from privastead.hub.capture.camera import CameraStats

log = logging.getLogger(__name__)

FragmentSink = Callable[[str, int, bytes, bool], None]

# Packets the mux thread may lag behind before the clip is ended: ~20 s of 30 fps video with
# audio. Only a disk that stalls for that long gets there; memory stays bounded.
MAX_BACKLOG = 1200


@dataclass(frozen=True)
class EventNotice:
    """What the hub tells clients about an event: at start (no thumbnail) and once the
    thumbnail exists (same event id; clients upsert)."""

    camera: str
    event_id: str
    at: float  # wall clock, Unix seconds
    score: float
    boxes: tuple[tuple[float, float, float, float], ...]
    thumbnail: bytes = b""


class ClipSink(Protocol):
    """Where a camera's events and clips go (``delivery.delivery.Delivery`` with a relay).

    Called on the event loop; an implementation must return at once (it queues the work: the
    hub's concurrency rule, ``docs/design/hub-concurrency.md``)."""

    def on_event(self, notice: EventNotice) -> None:
        """An event started (no thumbnail), then the same event with its thumbnail."""

    def on_fragment(self, camera: str, clip: str, index: int, data: bytes, is_init: bool) -> None:
        """One fMP4 fragment of recorder clip ``clip`` (index 0: the init segment)."""

    def on_clip_end(self, camera: str, clip: str, path: Path) -> None:
        """The clip's file is complete; every fragment was handed over before."""


@dataclass
class _Recording:
    event_id: str
    path: Path
    epoch: int  # the connection the clip belongs to
    thumbnail: Path
    trigger: float
    score: float
    boxes: list[dict[str, float]]
    part: int = 1
    # Set and used on the mux thread only: the writer once the file is open, and whether a
    # write failed (the loop learns it through ``_write_failed``).
    writer: ClipWriter | None = None
    failed: bool = False


class ClipRecorder:
    def __init__(
        self,
        name: str,
        clips_dir: Path,
        ring: PacketRing,
        stats: CameraStats,
        *,
        sink: ClipSink | None,
        fragments: FragmentSink,
        to_main_time: Callable[[float], float],
        substream: bool,
    ) -> None:
        """``fragments`` gets each fMP4 fragment from whichever thread muxed it (the camera
        posts it to the loop); ``to_main_time`` maps detection-stream time onto the main
        stream's."""
        self.name = name
        self.clips_dir = clips_dir
        self.ring = ring
        self.stats = stats
        self.sink = sink
        self.fragments = fragments
        self.to_main_time = to_main_time
        self.substream = substream
        self.info: StreamInfo | None = None  # the main stream's current connection
        self.last_pts = 0.0  # of the newest main-stream video packet
        self.current: _Recording | None = None
        self.resume: _Recording | None = None  # an event cut by a reconnect, to continue
        self.active_event: str | None = None
        self._pending: set[asyncio.Task[Any]] = set()
        self._stopped = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.mux = MuxThread(name)

    @property
    def recording(self) -> bool:
        return self.current is not None

    # -- fed by the camera, on the loop ----------------------------------------------------------
    def push(self, packet: MediaPacket) -> None:
        if packet.kind == "video":
            self.last_pts = packet.pts
        resume = self.resume
        video_key = packet.kind == "video" and packet.keyframe
        if resume is not None and self.current is None and video_key:
            self.resume = None
            again = EventStarted(resume.event_id, packet.pts, (), resume.score)
            self.start(again, packet.pts, resume.trigger, part=resume.part + 1)
        rec = self.current
        if rec is not None and rec.epoch == packet.epoch:
            if self.mux.backlog >= MAX_BACKLOG:
                self._write_failed(rec, f"the disk fell {MAX_BACKLOG} packets behind")
                return
            self.mux.put(self._write, rec, packet)

    def disconnected(self) -> None:
        if self.current is not None:
            # The clip cannot continue across a reconnect (new codec parameters): close it;
            # the event continues in a new part at the next connection's first keyframe.
            self.end(None, keep_event=True)

    def event_started(self, event_id: str) -> None:
        self.active_event = event_id
        self.resume = None
        self.end(None)  # nothing should be running; never write two clips

    def event_ended(self, ended: EventEnded) -> None:
        self.resume = None
        self.active_event = None
        self.end(ended)

    async def close(self) -> None:
        """At the camera's stop: finish what runs, so the last clip stays playable."""
        self._stopped = True
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self.current is not None:
            rec, self.current = self.current, None
            await self._finish_clip(rec, self.last_pts, None)
        await asyncio.to_thread(self.mux.close)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def start(self, event: EventStarted, start: float, trigger: float, part: int = 1) -> None:
        info = self.info
        if self._stopped:
            return
        if info is None:
            log.warning("%s: event %s but no stream yet; not recorded", self.name, event.event_id)
            return
        day = time.strftime("%Y-%m-%d")
        stem = f"{self.name}-{time.strftime('%H%M%S')}-{event.event_id[:8]}"
        if part > 1:
            stem += f"-part{part}"
        path = self.clips_dir / day / f"{stem}.mp4"
        self._loop = asyncio.get_running_loop()
        packets = self.ring.since(start)
        boxes = [asdict(b) for b in event.boxes]
        rec = _Recording(
            event.event_id,
            path,
            info.epoch,
            path.with_suffix(".jpg"),
            trigger,
            event.score,
            boxes,
            part,
        )
        self.current = rec
        # The file is created and the pre-roll muxed on the mux thread, before any later packet.
        self.mux.put(self._open, rec, info, packets)
        log.info("%s: event %s started, recording %s", self.name, event.event_id, path.name)
        if part == 1:
            notice = EventNotice(
                self.name,
                event.event_id,
                time.time(),
                event.score,
                tuple((b.x, b.y, b.w, b.h) for b in event.boxes),
            )
            if self.sink is not None:
                self.sink.on_event(notice)
            self._spawn(self._thumbnail(info, packets, trigger, path.with_suffix(".jpg"), notice))

    async def _thumbnail(
        self,
        info: StreamInfo,
        packets: list[MediaPacket],
        at: float,
        path: Path,
        notice: EventNotice,
    ) -> None:
        try:
            jpeg = await asyncio.to_thread(thumbnail_from_packets, info, packets, at)
            await asyncio.to_thread(_write_atomic, path, jpeg)
            if self.sink is not None:
                self.sink.on_event(dataclasses.replace(notice, thumbnail=jpeg))
        except (MediaError, OSError) as exc:
            self.stats.errors += 1
            log.warning("%s: no thumbnail: %s", self.name, exc)

    def end(self, ended: EventEnded | None, *, keep_event: bool = False) -> None:
        """Detach the running clip now (so a clip started right after, e.g. at a max-length
        split, is not touched) and close it in the background."""
        rec, self.current = self.current, None
        if rec is None:
            return
        end = self.to_main_time(ended.at) if ended is not None else self.last_pts
        self._spawn(self._finish_clip(rec, end, ended, keep_event=keep_event))

    # -- on the mux thread ----------------------------------------------------------------
    def _open(self, rec: _Recording, info: StreamInfo, packets: list[MediaPacket]) -> None:
        try:
            rec.writer = ClipWriter(rec.event_id, info, rec.path, on_fragment=self.fragments)
            for packet in packets:
                rec.writer.write(packet)
        except (av.FFmpegError, OSError, MediaError) as exc:
            self._failed_on_thread(rec, f"cannot start clip {rec.path}: {exc}")

    def _write(self, rec: _Recording, packet: MediaPacket) -> None:
        if rec.writer is None or rec.failed:
            return
        try:
            rec.writer.write(packet)
        except (av.FFmpegError, OSError, MediaError) as exc:
            self._failed_on_thread(rec, f"clip {rec.event_id} write failed: {exc}")

    def _close(self, rec: _Recording) -> ClipSummary | None:
        """Flush and publish the clip's file; None if it never opened (reported already)."""
        return None if rec.writer is None else rec.writer.close()

    def _failed_on_thread(self, rec: _Recording, message: str) -> None:
        rec.failed = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(self._write_failed, rec, message)

    # -- back on the loop ----------------------------------------------------------------
    def _write_failed(self, rec: _Recording, message: str) -> None:
        """A muxer or disk error ends this clip (what is written stays playable and is
        delivered); the event goes on and the camera keeps running."""
        if self.current is not rec:
            return  # ended already: counted once
        self.stats.errors += 1
        log.error("%s: %s; the clip ends here", self.name, message)
        self.end(None)

    async def _finish_clip(
        self,
        rec: _Recording | None,
        end: float,
        ended: EventEnded | None,
        *,
        keep_event: bool = False,
    ) -> None:
        if rec is None:
            return
        try:
            summary = await self.mux.call(self._close, rec)  # after the clip's last packet
        except (av.FFmpegError, MediaError, OSError) as exc:
            self.stats.errors += 1
            log.warning("%s: clip %s failed: %s", self.name, rec.event_id, exc)
            return
        if summary is None:
            return  # the file never opened: counted and logged by _write_failed
        self.stats.clips += 1
        self.stats.clip_paths.append(summary.path)
        if self.sink is not None:
            self.sink.on_clip_end(self.name, rec.event_id, summary.path)
        # Timeline seconds -> wall clock, through the newest packet's arrival (close enough
        # for people; the timeline itself is what the clip's timestamps use).
        wall = time.time() - (self.last_pts - summary.start)
        sidecar = {
            "wall_clip_start": datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds"),
            "event_id": rec.event_id,
            "camera": self.name,
            "part": rec.part,
            "clip": summary.path.name,
            "thumbnail": rec.thumbnail.name if rec.part == 1 else None,
            "clip_start": round(summary.start, 3),
            "clip_end": round(summary.end, 3),
            "event_start": round(ended.started_at, 3) if ended else None,
            "event_end": round(ended.at, 3) if ended else round(end, 3),
            "trigger": round(rec.trigger, 3),
            "score": round(ended.peak_score if ended else rec.score, 5),
            "boxes": [asdict(b) for b in ended.boxes] if ended else rec.boxes,
            "frames": summary.video_frames,
            "bytes": summary.bytes,
            "fragments": summary.fragments,
            "completed": ended is not None,
        }
        if ended is not None and self.substream:
            sidecar["event_start"] = round(self.to_main_time(ended.started_at), 3)
            sidecar["event_end"] = round(self.to_main_time(ended.at), 3)
        data = json.dumps(sidecar, indent=2).encode()
        await asyncio.to_thread(_write_atomic, summary.path.with_suffix(".json"), data)
        log.info(
            "%s: clip %s done: %d frames, %.1f s",
            self.name,
            summary.path.name,
            summary.video_frames,
            summary.end - summary.start,
        )
        if keep_event and not self._stopped and self.active_event == rec.event_id:
            self.resume = rec  # the event goes on: continue in a new part once the stream is back


def _write_atomic(path: Path, data: bytes) -> None:
    """A thumbnail or sidecar: plaintext about someone's home, so 0600 like the clip."""
    write_atomic(path, data)


__all__ = ["ClipRecorder", "ClipSink", "EventNotice"]
