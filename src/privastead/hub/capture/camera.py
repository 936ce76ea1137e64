"""One camera's pipeline: ingest -> ring -> decoder -> detector -> events -> clips.

Threads and the loop:
- the ingest reader thread(s) only read and hand packets to the event loop;
- on the loop, every main-stream packet goes into the pre-roll ring; the muxing it needs (the
  clip writer during an event, every livestream's fragmenter) runs on the camera's mux thread
  (``hub.recording.mux_thread``), in packet order, so the loop never parses boxes or writes a
  file per packet (``docs/design/hub-concurrency.md``);
- packets of the detection stream (the substream if configured, else the main stream) go to
  this camera's analysis thread through a bounded queue. It runs ``media.analysis.Analysis``
  (decoder, detector, event tracker, idle policy: the pipeline ``privastead-hub detect`` runs
  on files) and posts events back to the loop. If the analysis falls behind, packets are
  dropped up to the next keyframe (a decoder must never see a broken GOP) and counted;
  recording never drops.
- the continuous recorder (``hub.recording.continuous``) gets every main-stream packet and the
  events too; it only queues them on the loop: its own thread writes the segments.
- ``keyframes`` decode mode decodes only keyframes while idle and switches to full rate when
  the detector wakes (or an event runs), back to keyframes once the event has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from privastead.errors import CameraUnavailableError, MediaError
from privastead.hub.config import CameraConfig
from privastead.hub.recording.clips import ClipRecorder, ClipSink
from privastead.hub.recording.continuous import ContinuousRecorder
from privastead.media.analysis import Analysis
from privastead.media.decode import DecodeMode
from privastead.media.events import EventEnded, EventStarted
from privastead.media.ingest import (
    Disconnected,
    Health,
    Ingest,
    IngestEvent,
    IngestSettings,
    MediaPacket,
    StreamInfo,
)
from privastead.media.live import LiveSession, LiveSettings
from privastead.media.recorder import FragmentCallback
from privastead.media.ring import PacketRing

log = logging.getLogger(__name__)

ANALYSIS_QUEUE = 256  # packets: ~8 s at 30 fps before the analysis starts dropping GOPs
LIVE_BACKLOG = 60  # packets the mux thread may lag before livestreams skip to a keyframe


@dataclass(frozen=True)
class _DecoderTemplate:
    """What ``LumaDecoder`` reads from a stream: a decoder context and the time base."""

    codec_context: Any
    time_base: Fraction
    average_rate: Fraction | None = None


@dataclass
class CameraStats:
    events: int = 0
    clips: int = 0
    dropped: int = 0  # detection packets dropped because the analysis fell behind
    frames_analysed: int = 0
    last_event: str = ""
    errors: int = 0
    mode: DecodeMode = "full"
    clip_paths: list[Path] = field(default_factory=list)


class Camera:
    """Runs one camera until ``stop()``; never raises for camera trouble, only logs it."""

    def __init__(
        self,
        config: CameraConfig,
        clips_dir: Path,
        *,
        ingest_settings: IngestSettings | None = None,
        sink: ClipSink | None = None,
        on_fragment: FragmentCallback | None = None,
        continuous: ContinuousRecorder | None = None,
    ) -> None:
        """``sink`` gets events, fragments and clip ends (delivery); without one, only
        ``on_fragment`` (a plain fragment callback) sees the fragments. ``continuous``
        records the main stream 24/7 and marks the events (closed when the camera stops)."""
        self.config = config
        self.continuous = continuous
        self.sink = sink
        self.name = config.name
        self.clips_dir = clips_dir
        self.ingest_settings = ingest_settings or IngestSettings()
        self.on_fragment = on_fragment
        self.stats = CameraStats(mode=config.decode)
        events = config.events
        detection = config.detection
        # Enough to start a clip at onset - pre_roll after persistence and analysis lag.
        keep = events.pre_roll + events.persistence + detection.persistence + 3.0
        self.ring = PacketRing(keep_seconds=keep)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main_info: StreamInfo | None = None
        self._last_main_pts = 0.0
        self._last_detect_pts = 0.0
        # The recording stage: clips cut from the ring, handed to the sink.
        self.recorder = ClipRecorder(
            self.name,
            clips_dir,
            self.ring,
            self.stats,
            sink=sink,
            fragments=self._fragment_sink,
            to_main_time=self._to_main_time,
            substream=config.substream_url is not None,
        )
        # Unbounded as a queue, bounded for packets in _on_detect_stream: connection events
        # (StreamInfo, Disconnected) must never be dropped.
        self._queue: queue.Queue[IngestEvent | None] = queue.Queue()
        self._halt = threading.Event()
        self._skip_to_keyframe = False
        self._ingests: list[Ingest] = []
        self._analysis: threading.Thread | None = None
        self._stopped = asyncio.Event()
        self._live: set[LiveSession] = set()  # livestreams fed from the main stream

    # -- lifecycle ------------------------------------------------------------------------------
    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        cfg = self.config
        separate = cfg.substream_url is not None
        settings = cfg.ingest_settings(self.ingest_settings)  # the camera's transport, audio
        main = Ingest(
            cfg.with_credentials(cfg.url),
            self._from_thread(self._on_main),
            settings,
            name=self.name,
        )
        self._ingests = [main]
        if separate:
            assert cfg.substream_url is not None
            sub = Ingest(
                cfg.with_credentials(cfg.substream_url),
                self._from_thread(self._on_detect_stream),
                dataclasses.replace(settings, audio=False),  # detection reads no audio
                name=f"{self.name}/sub",
            )
            self._ingests.append(sub)
        self._analysis = threading.Thread(
            target=self._analyse, name=f"analysis-{self.name}", daemon=True
        )
        self._analysis.start()
        for ingest in self._ingests:
            ingest.start()
        try:
            await self._stopped.wait()
        finally:
            await self._shutdown()

    def stop(self) -> None:
        self._stopped.set()

    async def _shutdown(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(i.stop) for i in self._ingests))
        self._halt.set()
        self._queue.put_nowait(None)
        if self._analysis is not None:
            await asyncio.to_thread(self._analysis.join, 5.0)
        await self.recorder.close()
        if self.continuous is not None:
            await asyncio.to_thread(self.continuous.close)

    def health(self) -> Health:
        return (
            self._ingests[0].health()
            if self._ingests
            else Health("connecting", 0.0, 0.0, None, 0, "")
        )

    def status_line(self) -> str:
        h = self.health()
        age = "-" if h.last_packet_age is None else f"{h.last_packet_age:.1f}s"
        s = self.stats
        rec = " REC" if self.recorder.recording else ""
        line = (
            f"{self.name}: {h.state}{rec} {h.fps:.1f} fps {h.bitrate / 1e6:.2f} Mbit/s "
            f"mode={s.mode} events={s.events} clips={s.clips} last_packet={age} "
            f"reconnects={h.reconnects}"
        )
        if s.dropped:
            line += f" dropped={s.dropped}"
        continuous = self.continuous
        if continuous is not None and continuous.record:
            line += f" continuous={continuous.state} segments={continuous.segments}"
            if continuous.dropped:
                line += f" segment_drops={continuous.dropped}"
        if s.last_event:
            line += f" last_event={s.last_event}"
        if h.state != "connected" and h.last_error:
            line += f" ({h.last_error[:80]})"
        return line

    def _fragment_sink(self, clip_id: str, index: int, data: bytes, is_init: bool) -> None:
        """Hand fragments to ``on_fragment`` on the event loop, whichever thread muxed them
        (the last one is flushed by ``close`` in a worker thread)."""
        if self.sink is not None:
            self._post(self.sink.on_fragment, self.name, clip_id, index, data, is_init)
        elif self.on_fragment is not None:
            self._post(self.on_fragment, clip_id, index, data, is_init)

    def _from_thread(self, handler: Any) -> Any:
        def sink(event: IngestEvent) -> None:
            loop = self._loop
            if loop is not None and not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # loop closing at shutdown
                    loop.call_soon_threadsafe(handler, event)

        return sink

    # -- loop side: packets -----------------------------------------------------------------------
    def start_live(self, settings: LiveSettings | None = None) -> LiveSession:
        """A livestream of the main stream, starting at the ring's newest keyframe. It is fed
        on the camera's mux thread next to the clip writer (a stream-copy mux per packet), so
        motion detection and recording go on. Raises ``CameraUnavailableError`` while
        disconnected."""
        if self._main_info is None:
            raise CameraUnavailableError(f"{self.name}: not connected, no livestream possible")
        session = LiveSession(self._main_info, None, settings)
        # The newest GOP first, then every packet routed after this call, in order.
        self.recorder.mux.put(session.push_backlog, self.ring.since(float("inf")))
        self._live.add(session)
        return session

    def _stop_live(self, reason: str) -> None:
        for session in list(self._live):
            session.stop(reason)
        self._live.clear()

    def _on_main(self, event: IngestEvent) -> None:
        continuous = self.continuous
        if isinstance(event, StreamInfo):
            self._main_info = self.recorder.info = event
            if continuous is not None:
                continuous.connected(event)
        elif isinstance(event, Disconnected):
            self._stop_live("camera disconnected")  # a new connection needs a new init
            self.recorder.disconnected()
            if continuous is not None:
                continuous.disconnected()
        elif isinstance(event, MediaPacket):
            self.ring.push(event)
            if self._live:
                self._to_live(event)
            if event.kind == "video":
                self._last_main_pts = event.pts
            self.recorder.push(event)
            if continuous is not None:
                continuous.push(event)
        if self.config.substream_url is None:
            self._on_detect_stream(event)

    def _to_live(self, event: MediaPacket) -> None:
        for session in [s for s in self._live if s.ended is not None]:
            self._live.discard(session)  # stopped, timed out or reconnected
        if self.recorder.mux.backlog < LIVE_BACKLOG:
            self.recorder.mux.put(_push_live, tuple(self._live), event)
        else:  # the mux thread is far behind: live viewers skip, clips keep theirs
            for session in self._live:
                session.behind()

    def _on_detect_stream(self, event: IngestEvent) -> None:
        if isinstance(event, MediaPacket):
            if event.kind != "video":
                return
            self._last_detect_pts = event.pts
            if self._skip_to_keyframe and not event.keyframe:
                self.stats.dropped += 1
                return
            if self._queue.qsize() >= ANALYSIS_QUEUE:
                self.stats.dropped += 1
                self._skip_to_keyframe = True
                return
            self._skip_to_keyframe = False
        self._queue.put_nowait(event)

    # -- analysis thread --------------------------------------------------------------------------
    def _analyse(self) -> None:
        """The analysis thread: the same pipeline ``privastead-hub detect`` runs on files."""
        cfg = self.config
        analysis = Analysis(cfg.detection, cfg.events, mode=cfg.decode)
        connected = False
        while not self._halt.is_set():
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, StreamInfo):
                template = _DecoderTemplate(item.decoder, item.time_base, item.video.average_rate)
                analysis.connect(template)
                connected = True
                continue
            if isinstance(item, Disconnected) or not connected:
                continue
            try:
                for batch in analysis.feed(item.packet, item.pts):
                    self._post(self._on_events, list(batch.changes), batch.frame_time)
            except MediaError as exc:
                self.stats.errors += 1
                log.warning("%s: analysis error: %s", self.name, exc)
            except Exception:  # a detector bug must not kill the camera
                self.stats.errors += 1
                log.exception("%s: analysis failed on a packet", self.name)
            self.stats.frames_analysed = analysis.frames_analysed
            self.stats.mode = analysis.mode

    def _post(self, handler: Any, *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(handler, *args)

    # -- loop side: events and clips --------------------------------------------------------------
    def _to_main_time(self, detect_time: float) -> float:
        """Detection-stream time on the main stream's timeline (both are near real time)."""
        if self.config.substream_url is None:
            return detect_time
        return detect_time + (self._last_main_pts - self._last_detect_pts)

    def _on_events(self, changes: list[EventStarted | EventEnded], frame_time: float) -> None:
        split = any(isinstance(c, EventEnded) for c in changes)
        for change in changes:
            if isinstance(change, EventEnded):
                self.recorder.event_ended(change)
                if self.continuous is not None:
                    started = self._to_main_time(change.started_at)
                    ended = self._to_main_time(change.at)
                    self.continuous.event_ended(change.event_id, started, ended)
            else:
                self.stats.events += 1
                self.stats.last_event = time.strftime("%H:%M:%S")
                self.recorder.event_started(change.event_id)
                onset = self._to_main_time(change.at)
                if self.continuous is not None:
                    self.continuous.event_started(change.event_id, onset)
                start = onset if split else onset - self.config.events.pre_roll
                self.recorder.start(change, start, self._to_main_time(frame_time))


def _push_live(sessions: tuple[LiveSession, ...], packet: MediaPacket) -> None:
    """On the mux thread: one packet into every livestream of the camera."""
    for session in sessions:
        session.push(packet)


__all__ = ["Camera", "CameraStats", "ClipSink"]
