"""The recording stage: one camera's event clips, cut from the pre-roll ring by stream copy.

``ClipRecorder`` is fed by its camera on the event loop: every main-stream packet (``push``),
the detector's events (``start``/``end``) and connection losses (``disconnected``). A clip
starts ``pre_roll`` before the event's onset (the ring keeps enough), is written as fMP4 by
``media.recorder.ClipWriter`` (muxing appends to a file: no ``fsync``, memory speed) and ends
with the event; closing it, its thumbnail and its sidecar JSON run in threads. An event that
outlives a reconnect goes on in a new part at the next connection's first keyframe. Events,
fragments and clip ends go to the camera's ``ClipSink`` (delivery), which only queues them.
"""

from __future__ import annotations

import asyncio
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
from privastead.media.events import EventEnded, EventStarted
from privastead.media.ingest import MediaPacket, StreamInfo
from privastead.media.recorder import ClipSummary, ClipWriter
from privastead.media.ring import PacketRing
from privastead.media.thumbnail import thumbnail_from_packets

if TYPE_CHECKING:
    from privastead.hub.capture.camera import CameraStats

log = logging.getLogger(__name__)

FragmentSink = Callable[[str, int, bytes, bool], None]


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
    writer: ClipWriter
    thumbnail: Path
    trigger: float
    score: float
    boxes: list[dict[str, float]]
    part: int = 1


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
        if rec is not None and rec.writer.info.epoch == packet.epoch:
            try:
                rec.writer.write(packet)
            except (av.FFmpegError, OSError, MediaError) as exc:
                # A muxer or disk error ends this clip (what is written stays playable);
                # the event goes on and the camera keeps running.
                self.stats.errors += 1
                log.error("%s: clip %s write failed: %s", self.name, rec.event_id, exc)
                self.end(None)

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
        try:
            writer = ClipWriter(event.event_id, info, path, on_fragment=self.fragments)
        except (OSError, MediaError) as exc:
            self.stats.errors += 1
            log.error("%s: cannot start clip %s: %s", self.name, path, exc)
            return
        packets = self.ring.since(start)
        for packet in packets:
            writer.write(packet)
        boxes = [asdict(b) for b in event.boxes]
        self.current = _Recording(
            event.event_id, writer, path.with_suffix(".jpg"), trigger, event.score, boxes, part
        )
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
            summary: ClipSummary = await asyncio.to_thread(rec.writer.close)
        except (MediaError, OSError) as exc:
            self.stats.errors += 1
            log.warning("%s: clip %s failed: %s", self.name, rec.event_id, exc)
            return
        self.stats.clips += 1
        self.stats.clip_paths.append(summary.path)
        if self.sink is not None:
            self.sink.on_clip_end(self.name, rec.writer.clip_id, summary.path)
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
