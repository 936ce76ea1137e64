"""Clips by stream copy: fragmented MP4 (init segment + ~1 s fragments) while the event runs.

No re-encoding: camera packets are muxed as they are (hvc1 sample entry for H.265, so Apple
players accept it; AAC audio copied when present). The MP4 muxer writes ``ftyp+moov`` (no
samples, ``empty_moov``) and then one ``moof+mdat`` fragment per keyframe or ``fragment_seconds``
(``frag_keyframe`` + ``frag_duration``), flushed as soon as it is complete. A small box parser on
the output hands every complete piece to ``on_fragment(clip_id, index, data, is_init)`` (the
delivery layer encrypts and uploads it) and appends it to ``<clip>.mp4.part``, renamed to
``<clip>.mp4`` when the clip ends. The pieces concatenated are the file, byte for byte, and a
crash leaves a playable prefix instead of a file without an index.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av

from privastead.errors import MediaError
from privastead.media.ingest import MediaPacket, StreamInfo

log = logging.getLogger(__name__)

FragmentCallback = Callable[[str, int, bytes, bool], None]


class _FragmentSplitter:
    """File-like sink for the muxer: cuts its byte stream into init segment and fragments."""

    def __init__(self, clip_id: str, file: BinaryIO, on_fragment: FragmentCallback | None) -> None:
        self.clip_id, self.file, self.on_fragment = clip_id, file, on_fragment
        self.pending = bytearray()
        self.piece = bytearray()  # boxes of the piece being assembled
        self.index = 0
        self.position = 0
        self.sizes: list[int] = []

    # The muxer only needs write() and tell(); it never seeks in fragmented mode.
    def write(self, data: bytes) -> int:
        self.pending += data
        self.position += len(data)
        self._parse()
        return len(data)

    def tell(self) -> int:
        return self.position

    def seekable(self) -> bool:
        return False

    def _parse(self) -> None:
        while len(self.pending) >= 8:
            size, kind = struct.unpack_from(">I4s", self.pending)
            if size == 1:
                if len(self.pending) < 16:
                    return
                (size,) = struct.unpack_from(">Q", self.pending, 8)
            if size < 8:
                raise MediaError(f"muxer wrote a malformed box of size {size}")
            if len(self.pending) < size:
                return
            self.piece += self.pending[:size]
            del self.pending[:size]
            if kind in (b"moov", b"mdat"):  # the end of the init segment or of a fragment
                self._emit(is_init=kind == b"moov")

    def _emit(self, is_init: bool) -> None:
        data = bytes(self.piece)
        self.piece.clear()
        self.file.write(data)
        self.sizes.append(len(data))
        if self.on_fragment is not None:
            self.on_fragment(self.clip_id, self.index, data, is_init)
        self.index += 1

    def finish(self) -> None:
        if self.pending:
            raise MediaError(f"muxer left {len(self.pending)} bytes of an incomplete box")
        if self.piece:  # trailing boxes (none with skip_trailer), kept so pieces == file
            self._emit(is_init=False)


@dataclass(frozen=True)
class ClipSummary:
    clip_id: str
    path: Path
    start: float  # timeline seconds of the first (key)frame
    end: float  # timeline seconds of the last video frame
    video_frames: int
    audio_packets: int
    bytes: int
    fragments: int  # init segment included


class ClipWriter:
    """One clip. Feed packets in timeline order with ``write``; ``close`` finishes the file."""

    def __init__(
        self,
        clip_id: str,
        info: StreamInfo,
        path: Path,
        *,
        on_fragment: FragmentCallback | None = None,
        fragment_seconds: float = 1.0,
    ) -> None:
        self.clip_id, self.info, self.path = clip_id, info, path
        self.part = path.with_name(path.name + ".part")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.part.open("wb")
        self._splitter = _FragmentSplitter(clip_id, self._file, on_fragment)
        movflags = "frag_keyframe+empty_moov+default_base_moof+skip_trailer"
        self._out = av.open(
            self._splitter,
            "w",
            format="mp4",
            options={
                "movflags": movflags,
                "frag_duration": str(int(fragment_seconds * 1e6)),
                "flush_packets": "1",
            },
        )
        self._video = self._out.add_stream_from_template(info.video)
        if info.width > 0 and info.height > 0:
            # The template may lack the size when probing was cut short; the ingest knows it.
            self._video.width, self._video.height = info.width, info.height
        if info.codec == "hevc":
            self._video.codec_tag = "hvc1"  # Safari and Apple players refuse hev1
        self._audio = (
            self._out.add_stream_from_template(info.audio) if info.audio is not None else None
        )
        self._start: float | None = None
        self._end = 0.0
        self._frames = 0
        self._audio_packets = 0
        self._closed = False

    @property
    def start(self) -> float | None:
        return self._start

    @property
    def end(self) -> float:
        return self._end

    def write(self, packet: MediaPacket) -> None:
        """Mux ``packet``; anything before the clip's first video keyframe is skipped."""
        if self._closed or packet.epoch != self.info.epoch:
            return
        if self._start is None:
            if not (packet.kind == "video" and packet.keyframe):
                return
            self._start = packet.pts
        src = packet.packet
        tb = src.time_base
        if tb is None or src.pts is None or src.dts is None:
            return
        offset = round(self._start / tb)
        pts, dts = src.pts - offset, src.dts - offset
        if dts < 0:
            return  # audio from just before the first keyframe
        out = av.Packet(bytes(src))
        out.pts, out.dts, out.time_base = pts, dts, tb
        if src.duration:
            out.duration = src.duration
        out.is_keyframe = packet.keyframe
        if packet.kind == "video":
            out.stream = self._video
            self._frames += 1
            self._end = packet.pts
        elif self._audio is not None:
            out.stream = self._audio
            self._audio_packets += 1
        else:
            return
        self._out.mux(out)

    def close(self) -> ClipSummary:
        """Flush the last fragment and publish the file (``.part`` renamed)."""
        if self._closed:
            raise MediaError(f"clip {self.clip_id} already closed")
        self._closed = True
        try:
            self._out.close()
            self._splitter.finish()
        finally:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        if self._frames == 0:
            self.part.unlink(missing_ok=True)
            raise MediaError(f"clip {self.clip_id} has no video (no keyframe arrived)")
        self.part.replace(self.path)
        return ClipSummary(
            self.clip_id,
            self.path,
            self._start or 0.0,
            self._end,
            self._frames,
            self._audio_packets,
            sum(self._splitter.sizes),
            len(self._splitter.sizes),
        )

    def abort(self) -> None:
        """Drop the clip (e.g. the hub is shutting down mid-write and the caller wants nothing)."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(av.FFmpegError, MediaError, OSError):
                self._out.close()
            self._file.close()
        self.part.unlink(missing_ok=True)


__all__ = ["ClipSummary", "ClipWriter", "FragmentCallback"]
