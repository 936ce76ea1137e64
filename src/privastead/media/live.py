"""Livestream fragments: fMP4 by stream copy, a few frames per fragment, bounded memory.

A session starts at the newest keyframe in the camera's packet ring (the first picture comes at
once instead of after up to one GOP), emits one init segment and then fragments of
``frames_per_fragment`` video frames or ``max_fragment_seconds`` of media, whichever comes
first, each a run of ``moof+mdat`` pairs that Media Source Extensions append as they are.

The MP4 muxer cuts a fragment at every packet (``fmp4.PER_PACKET_FRAGMENTS``): it writes a
frame's ``moof+mdat`` as soon as the next packet tells it that frame's duration, so a fragment
leaves one frame period after its newest frame arrived (there is no way to flush the muxer
early through PyAV); audio samples ride in the same fragments. A fragment is
only ever cut before a keyframe or after its frame budget, never by the consumer.

Back-pressure: fragments wait in a queue of at most ``max_queued`` (+2). While it is full,
or after the consumer calls ``behind()``, the session drops packets up to the next keyframe
and moves its output timeline back by the skipped time, so the player sees one continuous
timeline and jumps forward in content instead of stalling on a gap. Memory never grows with a
slow viewer.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from privastead.clock import SYSTEM_CLOCK, Clock
from privastead.errors import MediaError
from privastead.media.fmp4 import (
    PER_PACKET_FRAGMENTS,
    BoxSplitter,
    copy_packet,
    fragment_info,
    open_muxer,
)
from privastead.media.ingest import MediaPacket, StreamInfo
from privastead.media.ring import PacketRing


@dataclass(frozen=True)
class LiveSettings:
    frames_per_fragment: int = 3  # 100 ms at 30 fps, 200 ms at 15 fps
    max_fragment_seconds: float = 0.2
    max_queued: int = 30  # fragments waiting for a slow consumer before skipping
    max_session_seconds: float = 600.0

    def __post_init__(self) -> None:
        if self.frames_per_fragment < 1 or self.max_fragment_seconds <= 0 or self.max_queued < 1:
            raise ValueError("live fragments need >= 1 frame, a positive duration and a queue")


@dataclass(frozen=True)
class LiveFragment:
    """One message of a livestream. ``index`` 0 is the init segment (no media)."""

    index: int
    data: bytes
    is_init: bool
    media_time: float  # seconds on the session's output timeline of its first video frame
    source_first: float  # camera-timeline seconds of its first video frame
    source_pts: float  # camera-timeline seconds of its newest video frame
    arrived: float  # wall-clock seconds when its newest video packet reached the hub
    emitted: float  # wall-clock seconds when it was cut
    frames: int
    keyframe: bool  # starts with a keyframe (a viewer may join here)


@dataclass
class _Muxed:
    """A video packet handed to the muxer, waiting for its fragment to be written."""

    source_pts: float
    media_time: float  # on the output timeline (the offset may change before it is written)
    arrived: float
    keyframe: bool


class LiveFragmenter:
    """Packets in, fragments out; not thread-safe (``LiveSession`` wraps it)."""

    def __init__(
        self, info: StreamInfo, settings: LiveSettings | None = None, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.info, self.clock = info, clock
        self.settings = settings or LiveSettings()
        self._ready: list[LiveFragment] = []
        self._pieces: list[bytes] = []  # moof+mdat pairs of the fragment being assembled
        self._frames = 0
        self._group: list[_Muxed] = []
        self._muxed: deque[_Muxed] = deque()
        self._index = 0
        self._splitter = BoxSplitter(self._on_piece)
        self._out, self._video, self._audio = open_muxer(
            self._splitter, info, **PER_PACKET_FRAGMENTS
        )
        self._offset: float | None = None  # camera seconds at output time zero
        self._last_video: float | None = None  # camera pts of the last video packet muxed
        self._frame_step = 1 / 30
        self._last_audio_dts = -1
        self._skipping = False
        self.skipped_packets = 0
        self.closed = False

    @property
    def skipping(self) -> bool:
        return self._skipping

    def skip_to_keyframe(self) -> None:
        """Drop packets until the next video keyframe (the consumer is behind)."""
        self._skipping = True

    def push(self, packet: MediaPacket) -> list[LiveFragment]:
        """Mux ``packet``; the fragments completed by it (possibly none)."""
        if self.closed:
            raise MediaError("live fragmenter already closed")
        if packet.epoch != self.info.epoch:
            raise MediaError("the camera reconnected; start a new live session")
        is_video = packet.kind == "video"
        if not self._admit(packet):
            return []
        assert self._offset is not None
        out = copy_packet(packet, self._offset)
        if out is None:
            return self._take()
        if is_video:
            if self._last_video is not None and packet.pts > self._last_video:
                self._frame_step = packet.pts - self._last_video
            self._last_video = packet.pts
            out.stream = self._video
            self._muxed.append(
                _Muxed(packet.pts, packet.pts - self._offset, packet.arrived, packet.keyframe)
            )
        elif self._audio is not None:
            if out.dts is None or out.dts <= self._last_audio_dts:
                return self._take()  # audio overlapping a skip: the muxer needs rising dts
            self._last_audio_dts = out.dts
            out.stream = self._audio
        else:
            return self._take()
        self._out.mux(out)
        return self._take()

    def _admit(self, packet: MediaPacket) -> bool:
        """Whether to mux ``packet``: the stream starts, and resumes after a skip, on a
        video keyframe."""
        is_key = packet.kind == "video" and packet.keyframe
        if self._offset is None:
            if is_key:
                self._offset = packet.pts
            return is_key
        if self._skipping:
            if not is_key:
                self.skipped_packets += 1
                return False
            self._skipping = False
            if self._last_video is not None:
                # Close the gap: the keyframe follows the last frame sent one frame later.
                self._offset += packet.pts - self._last_video - self._frame_step
        return True

    def close(self) -> list[LiveFragment]:
        """Flush the muxer; the last fragments."""
        if self.closed:
            return []
        self.closed = True
        self._out.close()
        self._splitter.finish()
        self._cut()
        return self._take()

    def _on_piece(self, data: bytes, is_init: bool) -> None:
        if is_init:
            self._emit(data, is_init=True, group=[])
            return
        video_track = 1  # the video stream is added first
        frames = sum(r.samples for r in fragment_info(data) if r.track_id == video_track)
        entries = [self._muxed.popleft() for _ in range(min(frames, len(self._muxed)))]
        if entries and entries[0].keyframe:
            self._cut()  # a viewer can join at every fragment that starts with a keyframe
        self._group.extend(entries)
        self._pieces.append(data)
        self._frames += frames
        # Cut when the budget of frames is spent or one more frame would overrun the duration.
        next_span = self._span() + self._frame_step
        if self._frames >= self.settings.frames_per_fragment or next_span > (
            self.settings.max_fragment_seconds + 1e-6
        ):
            self._cut()

    def _span(self) -> float:
        if not self._group:
            return 0.0
        # Output time, not camera time: a skip inside the group must not look like a long span.
        return self._group[-1].media_time - self._group[0].media_time + self._frame_step

    def _cut(self) -> None:
        if self._pieces:
            self._emit(b"".join(self._pieces), is_init=False, group=self._group)
        self._pieces, self._group, self._frames = [], [], 0

    def _emit(self, data: bytes, *, is_init: bool, group: list[_Muxed]) -> None:
        newest = group[-1] if group else None
        first = group[0] if group else None
        self._ready.append(
            LiveFragment(
                self._index,
                data,
                is_init,
                first.media_time if first else 0.0,
                first.source_pts if first else 0.0,
                newest.source_pts if newest else 0.0,
                newest.arrived if newest else 0.0,
                self.clock.time(),
                len(group),
                bool(first and first.keyframe),
            )
        )
        self._index += 1

    def _take(self) -> list[LiveFragment]:
        ready, self._ready = self._ready, []
        return ready


class LiveSession:
    """One livestream of one camera: a producer thread pushes packets, consumers ``get``.

    Thread-safe. Ends on ``stop()``, after ``max_session_seconds``, or when the camera
    reconnects (its codec parameters may have changed); ``get`` then returns None once the
    queue is drained.
    """

    def __init__(
        self,
        info: StreamInfo,
        ring: PacketRing | None = None,
        settings: LiveSettings | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings or LiveSettings()
        self.clock = clock
        self._fragmenter = LiveFragmenter(info, self.settings, clock)
        self._queue: deque[LiveFragment] = deque()
        self._cond = threading.Condition()
        self._deadline = clock.monotonic() + self.settings.max_session_seconds
        self.ended: str | None = None
        self.skips = 0
        self.fragments = 0
        self.init: LiveFragment | None = None
        if ring is not None:
            self.push_backlog(ring.since(float("inf")))

    def push_backlog(self, packets: list[MediaPacket]) -> None:
        """The ring's newest GOP, pushed before any live packet (the first picture at once,
        no back-pressure): by the constructor, or by a caller that muxes in its own thread."""
        with self._cond:
            for packet in packets:
                if self.ended is not None:
                    return
                self._push_locked(packet)

    def push(self, packet: MediaPacket) -> None:
        with self._cond:
            if self._over():
                return
            if len(self._queue) >= self.settings.max_queued:
                # The consumer is behind: drop this packet and everything up to a keyframe
                # that arrives when there is room again. Nothing already muxed is lost, so
                # the output stays decodable.
                self._skip_locked()
                self._fragmenter.skipped_packets += 1
                return
            self._push_locked(packet)

    def _push_locked(self, packet: MediaPacket) -> None:
        try:
            fragments = self._fragmenter.push(packet)
        except MediaError as exc:
            self._end_locked(str(exc))
            return
        self._deliver(fragments)

    def _deliver(self, fragments: list[LiveFragment]) -> None:
        for fragment in fragments:
            if fragment.is_init:
                self.init = fragment
            self._queue.append(fragment)  # one push completes at most two: bounded overshoot
            self.fragments += 1
        if fragments:
            self._cond.notify_all()

    def _skip_locked(self) -> None:
        if not self._fragmenter.skipping:
            self.skips += 1
            self._fragmenter.skip_to_keyframe()

    def behind(self) -> None:
        """The consumer cannot keep up: skip to the next keyframe."""
        with self._cond:
            self._skip_locked()

    def catch_up(self) -> None:
        """The consumer comes back after a pause (its channel was lost, or nobody watched):
        what queued meanwhile is stale, so drop it and go on from the next keyframe."""
        with self._cond:
            if self.ended is None:  # an ended session's queue holds its tail: keep it
                self._queue.clear()
                self._skip_locked()

    def get(self, timeout: float | None = None) -> LiveFragment | None:
        """The next fragment (the init segment first); None when the session has ended and
        everything was taken, or on timeout."""
        with self._cond:
            # checked here too: a silent camera pushes nothing, the viewer still polls
            if not self._queue and not self._over():
                self._cond.wait(timeout)
                self._over()
            if self._queue:
                return self._queue.popleft()
            return None

    def _over(self) -> bool:
        """Whether the session has ended (ending it first when its time is up)."""
        if self.ended is None and self.clock.monotonic() >= self._deadline:
            self._end_locked("time limit reached")
        return self.ended is not None

    @property
    def queued(self) -> int:
        with self._cond:
            return len(self._queue)

    def stop(self, reason: str = "stopped") -> None:
        with self._cond:
            self._end_locked(reason)

    def _end_locked(self, reason: str) -> None:
        if self.ended is not None:
            return
        self.ended = reason
        try:
            last = self._fragmenter.close()
        except (MediaError, OSError):
            last = []
        for fragment in last:  # ending is not back-pressure: the tail is at most one fragment
            self._queue.append(fragment)
        self._cond.notify_all()


__all__ = ["LiveFragment", "LiveFragmenter", "LiveSession", "LiveSettings"]
