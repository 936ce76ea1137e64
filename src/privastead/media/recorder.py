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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av

from privastead.errors import MediaError
from privastead.media.fmp4 import BoxSplitter, copy_packet, open_muxer
from privastead.media.ingest import MediaPacket, StreamInfo

log = logging.getLogger(__name__)

FragmentCallback = Callable[[str, int, bytes, bool], None]


class _FragmentSplitter(BoxSplitter):
    """Appends every piece to the clip file and hands it to ``on_fragment`` with its index."""

    def __init__(self, clip_id: str, file: BinaryIO, on_fragment: FragmentCallback | None) -> None:
        super().__init__(self._deliver)
        self.clip_id, self.file, self.on_fragment = clip_id, file, on_fragment
        self.index = 0
        self.sizes: list[int] = []

    def _deliver(self, data: bytes, is_init: bool) -> None:
        self.file.write(data)
        # In the page cache before anyone sees the piece: a hub killed after handing it over
        # finds it in the file (hub.delivery.clip_journal sends it after the restart).
        self.file.flush()
        self.sizes.append(len(data))
        if self.on_fragment is not None:
            self.on_fragment(self.clip_id, self.index, data, is_init)
        self.index += 1


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
        # A clip is plaintext video of someone's home: 0600, and its day directory 0700 when
        # the recorder makes it, both set at creation (no window under a permissive umask).
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._file = os.fdopen(fd, "wb")
        self._splitter = _FragmentSplitter(clip_id, self._file, on_fragment)
        self._out, self._video, self._audio = open_muxer(
            self._splitter,
            info,
            "frag_keyframe+empty_moov+default_base_moof+skip_trailer",
            frag_duration=str(int(fragment_seconds * 1e6)),
            flush_packets="1",
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
        out = copy_packet(packet, self._start)
        if out is None:
            return  # audio from just before the first keyframe
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
