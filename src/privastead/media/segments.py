"""Continuous recording: the camera's stream copied into fMP4 segments of N seconds.

Each segment is a complete fragmented MP4 of its own (init segment, then ~1 s fragments), cut
at the first video keyframe after ``SegmentSettings.seconds``, so it plays alone and playback
of any moment can start at a keyframe. Packets are copied as they are (no decoding); video and
audio timestamps start at zero in each file.

Layout and rights: ``<root>/<camera>/<YYYY-MM-DD>/<start in Unix ms>.mp4`` (UTC dates),
directories 0700, files 0600: a recording is plaintext video of someone's home. A segment
being written is ``<name>.mp4.part``; when it ends it is flushed, fsynced, renamed and added
to the ``SegmentIndex``. ``recover`` finishes the ``.part`` files a crash left (cut back to
their last complete fragment) and can rebuild the whole index from the files.

A full disk is expected, not exceptional: when a write fails with ENOSPC (or EDQUOT) the
writer cuts the segment back to its last complete fragment, keeps and indexes it, and raises
``StorageFullError``; it then drops packets (``blocked``) until ``resume()`` is called, after
retention has made room. Wall-clock times come from the packets' arrival times (the hub's
clock): a segment starts at its first frame's arrival less the network jitter seen so far.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import av

from privastead.errors import MediaError, StorageFullError
from privastead.media.fmp4 import (
    BoxSplitter,
    copy_packet,
    fragment_info,
    open_muxer,
    starts_with_sync_sample,
    track_timescales,
)
from privastead.media.ingest import MediaPacket, StreamInfo
from privastead.media.segment_index import Segment, SegmentIndex

log = logging.getLogger(__name__)

_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class SegmentSettings:
    seconds: float = 60.0  # cut at the first keyframe after this much
    fragment_seconds: float = 1.0  # fragments inside a segment (the seeking granularity)

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.fragment_seconds <= 0:
            raise ValueError("segments and fragments need positive lengths")


def private_dir(path: Path) -> Path:
    """``path`` (and missing parents) as a 0700 directory."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def segment_path(root: Path, camera: str, start: float) -> Path:
    day = datetime.datetime.fromtimestamp(start, datetime.timezone.utc).strftime("%Y-%m-%d")
    return root / camera / day / f"{round(start * 1000)}.mp4"


@dataclass
class _Open:
    """The segment being written."""

    path: Path
    part: Path
    file: int  # file descriptor
    out: av.container.OutputContainer
    video: object
    audio: object
    splitter: BoxSplitter
    start_pts: float
    start_wall: float
    written: int = 0  # bytes of complete pieces on disk
    frames: int = 0  # video frames in those pieces
    media_end: float = 0.0  # seconds: the end of the last video sample on disk
    muxed_frames: int = 0
    last_pts: float = 0.0
    frame_step: float = 0.0
    timescale: int = 0
    keyframes: list[tuple[float, int]] = field(default_factory=list)
    failed: OSError | None = None


class SegmentWriter:
    """Writes one camera's packets into segments. Not thread-safe: feed it from one thread."""

    def __init__(
        self,
        root: Path,
        camera: str,
        index: SegmentIndex,
        settings: SegmentSettings | None = None,
    ) -> None:
        self.root, self.camera, self.index = root, camera, index
        self.settings = settings or SegmentSettings()
        private_dir(root / camera)
        self.info: StreamInfo | None = None
        self.blocked = False  # the disk filled: packets are dropped until resume()
        self.dropped = 0
        self._open: _Open | None = None
        self._wall_offset: float | None = None  # wall clock minus stream time, least delayed
        self.unindexed: list[Segment] = []  # finished but not in the index yet (disk was full)

    def start(self, info: StreamInfo) -> Segment | None:
        """A (new) connection's streams: ends the running segment (new codec parameters)."""
        finished = self._finish()
        self.info = info
        self._wall_offset = None
        return finished

    def resume(self) -> None:
        """Room was made: index what could not be indexed, start again at the next keyframe."""
        self.blocked = False
        self._index_pending()

    def _index_pending(self) -> None:
        """Add the segments the index refused (full disk) now: a file the index does not know
        is a file retention cannot delete."""
        while self.unindexed:
            try:
                self.index.add(self.unindexed[0])
            except OSError as exc:  # StorageError: still no room
                count = len(self.unindexed)
                log.warning("%s: %d segment(s) not indexed yet: %s", self.camera, count, exc)
                return
            self.unindexed.pop(0)

    def write(self, packet: MediaPacket) -> Segment | None:
        """Copy ``packet`` in; the segment it finished, if any. ``StorageFullError`` when the
        disk is full (what was written stays, as a shorter segment)."""
        info = self.info
        if info is None or packet.epoch != info.epoch:
            return None
        if packet.arrived:
            offset = packet.arrived - packet.pts
            if self._wall_offset is None or offset < self._wall_offset:
                self._wall_offset = offset
        if self.blocked:
            self.dropped += 1
            return None
        key = packet.kind == "video" and packet.keyframe
        finished = None
        current = self._open
        due = self.settings.seconds - 1e-3  # timestamps are rational numbers in floats
        if current is not None and key and packet.pts - current.start_pts >= due:
            finished = self._finish()
            current = None
        if current is None:
            if not key:
                return finished  # a segment starts on a keyframe
            current = self._open = self._begin(packet)
        self._mux(current, packet)
        return finished

    def close(self) -> Segment | None:
        """Finish the running segment (at shutdown)."""
        return self._finish()

    # -- one segment ---------------------------------------------------------------------------
    def _begin(self, packet: MediaPacket) -> _Open:
        assert self.info is not None
        wall = packet.pts + (self._wall_offset or 0.0) if packet.arrived else packet.pts
        path = segment_path(self.root, self.camera, wall)
        private_dir(path.parent)
        part = path.with_name(path.name + ".part")
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        state: list[_Open] = []
        splitter = BoxSplitter(lambda data, init: self._piece(state[0], data, init))
        try:
            out, video, audio = open_muxer(
                splitter,
                self.info,
                "frag_keyframe+empty_moov+default_base_moof+skip_trailer",
                frag_duration=str(int(self.settings.fragment_seconds * 1e6)),
                flush_packets="1",
            )
        except (av.FFmpegError, ValueError) as exc:
            os.close(fd)
            part.unlink(missing_ok=True)
            raise MediaError(f"cannot start a segment for {self.camera}: {exc}") from exc
        state.append(_Open(path, part, fd, out, video, audio, splitter, packet.pts, wall))
        return state[0]

    def _piece(self, seg: _Open, data: bytes, is_init: bool) -> None:
        if seg.failed is not None:
            return  # the disk is full: nothing more goes into this file
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(seg.file, view) :]
        except OSError as exc:
            seg.failed = exc
            return
        if is_init:
            seg.timescale = track_timescales(data).get(1, 90_000)
        else:
            runs = [r for r in fragment_info(data) if r.track_id == 1]
            if runs and seg.timescale:
                if starts_with_sync_sample(data):
                    seg.keyframes.append((runs[0].base_time / seg.timescale, seg.written))
                seg.frames += sum(r.samples for r in runs)
                end = max(r.base_time + r.duration for r in runs) / seg.timescale
                seg.media_end = max(seg.media_end, end)
        seg.written += len(data)

    def _mux(self, seg: _Open, packet: MediaPacket) -> None:
        out = copy_packet(packet, seg.start_pts)
        if out is not None:
            if packet.kind == "video":
                out.stream = seg.video
                if packet.pts > seg.last_pts:
                    seg.frame_step = packet.pts - seg.last_pts if seg.muxed_frames else 0.0
                    seg.last_pts = packet.pts
                seg.muxed_frames += 1
            elif seg.audio is not None:
                out.stream = seg.audio
            else:
                out = None
        if out is not None:
            try:
                seg.out.mux(out)
            except (av.FFmpegError, OSError) as exc:
                if seg.failed is None and not (isinstance(exc, OSError) and exc.errno in _FULL):
                    raise MediaError(f"segment of {self.camera}: {exc}") from exc
        if seg.failed is not None:
            self._disk_full(seg)

    def _disk_full(self, seg: _Open) -> None:
        failure = seg.failed
        self._open = None
        self.blocked = True
        kept = self._seal(seg, salvage=True)
        where = f"{kept.path} kept ({kept.bytes} bytes)" if kept else "nothing kept"
        raise StorageFullError(
            f"camera {self.camera}: the disk is full ({failure}); recording paused, {where}"
        )

    def _finish(self) -> Segment | None:
        seg, self._open = self._open, None
        if seg is None:
            return None
        try:
            seg.out.close()  # writes the last fragment
        except (av.FFmpegError, OSError) as exc:
            seg.failed = seg.failed or (exc if isinstance(exc, OSError) else None)
        if seg.failed is not None:
            self.blocked = True
            self._seal(seg, salvage=True)
            raise StorageFullError(f"camera {self.camera}: the disk is full ({seg.failed})")
        return self._seal(seg)

    def _seal(self, seg: _Open, salvage: bool = False) -> Segment | None:
        """Cut the file to its complete pieces, fsync, rename and index it."""
        if salvage:
            with contextlib.suppress(av.FFmpegError, OSError, MediaError):
                seg.out.close()
        try:
            os.ftruncate(seg.file, seg.written)
            os.fsync(seg.file)
        except OSError as exc:
            log.warning("%s: cannot sync segment %s: %s", self.camera, seg.part.name, exc)
        finally:
            os.close(seg.file)
        if seg.written == 0 or seg.frames == 0 or not seg.keyframes:
            seg.part.unlink(missing_ok=True)
            return None
        seg.part.replace(seg.path)
        with contextlib.suppress(OSError):
            fd = os.open(seg.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        # the samples on disk say how long it is (a salvaged segment lost its tail)
        span = seg.media_end or (seg.last_pts - seg.start_pts + seg.frame_step)
        segment = Segment(
            self.camera,
            seg.start_wall,
            seg.start_wall + span,
            str(seg.path.relative_to(self.root)),
            seg.written,
            seg.frames,
            tuple(seg.keyframes),
        )
        self.unindexed.append(segment)
        self._index_pending()
        return segment


__all__ = ["SegmentSettings", "SegmentWriter", "private_dir", "segment_path"]
