"""Segment files read back: what a file holds, crash recovery, and rebuilding the index.

A segment's name is its wall-clock start (Unix ms); its boxes say the rest: the init
segment's timescale, then per ``moof``: whether it starts with a keyframe, its frames and
where its samples end. Only ``moof`` boxes are read (``mdat`` is skipped by size), so
scanning a 4K hour costs little I/O.

``recover`` runs when the hub starts: a ``.part`` file (the segment being written when the
hub died) is cut back to its last complete fragment and published, or removed if nothing
complete is left; then the index is rebuilt from the files if asked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
from pathlib import Path
from typing import BinaryIO

from privastead.errors import MediaError
from privastead.media.fmp4 import fragment_info, starts_with_sync_sample, track_timescales
from privastead.media.segment_index import Segment, SegmentIndex

log = logging.getLogger(__name__)

_MAX_MOOF = 16 << 20  # a moof is a table of samples: megabytes at most


def _boxes(f: BinaryIO, size: int) -> list[tuple[bytes, int, int]]:
    """(type, offset, length) of the complete top-level boxes of a file of ``size`` bytes."""
    boxes, at = [], 0
    while at + 8 <= size:
        f.seek(at)
        head = f.read(16)
        length, kind = struct.unpack_from(">I4s", head)
        if length == 1 and len(head) >= 16:
            (length,) = struct.unpack_from(">Q", head, 8)
        if length < 8 or at + length > size:
            break  # a box the writer never finished
        boxes.append((kind, at, length))
        at += length
    return boxes


def top_level_boxes(f: BinaryIO, size: int) -> list[tuple[bytes, int, int]]:
    """(type, offset, length) of the complete top-level boxes of an open segment file."""
    return _boxes(f, size)


def init_segment(f: BinaryIO, boxes: list[tuple[bytes, int, int]]) -> bytes:
    """The init segment (``ftyp`` + ``moov``) of an open segment file, or b"" without one."""
    for kind, at, length in boxes:
        if kind == b"moov":
            f.seek(0)
            return f.read(at + length)
    return b""


def _complete_pieces(path: Path) -> tuple[int, bytes, list[tuple[int, bytes]]]:
    """(bytes of complete pieces, init segment, [(offset, moof) of each moof+mdat pair])."""
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        boxes = _boxes(f, size)
        init = b""
        pieces: list[tuple[int, bytes]] = []
        end = 0
        pending: tuple[int, bytes] | None = None
        for kind, at, length in boxes:
            if kind == b"moov":
                f.seek(0)
                init = f.read(at + length)
                end = at + length
            elif kind == b"moof" and init and length <= _MAX_MOOF:
                f.seek(at)
                pending = (at, f.read(length))
            elif kind == b"mdat" and pending is not None:
                pieces.append(pending)
                pending = None
                end = at + length
            elif kind not in (b"ftyp", b"styp", b"sidx", b"free"):
                pending = None
    return end, init, pieces


def read_segment(root: Path, path: Path) -> Segment:
    """The index row of a finished segment file under ``root`` (``MediaError`` if it is not
    one)."""
    try:
        start = int(path.name.split(".", 1)[0]) / 1000
        camera = path.relative_to(root).parts[0]
        size, init, pieces = _complete_pieces(path)
    except (ValueError, IndexError, OSError, struct.error) as exc:
        raise MediaError(f"{path}: not a segment: {exc}") from exc
    timescale = track_timescales(init).get(1, 0) if init else 0
    if not timescale or not pieces:
        raise MediaError(f"{path}: no complete video fragment")
    keyframes: list[tuple[float, int]] = []
    frames, media_end = 0, 0.0
    for offset, moof in pieces:
        runs = [r for r in fragment_info(moof) if r.track_id == 1]
        if not runs:
            continue
        if starts_with_sync_sample(moof):
            keyframes.append((runs[0].base_time / timescale, offset))
        frames += sum(r.samples for r in runs)
        media_end = max(media_end, max(r.base_time + r.duration for r in runs) / timescale)
    if not keyframes:
        raise MediaError(f"{path}: no keyframe")
    relative = str(path.relative_to(root))
    return Segment(camera, start, start + media_end, relative, size, frames, tuple(keyframes))


def finish_part(part: Path) -> Path | None:
    """Cut a ``.part`` file left by a crash to its complete fragments and publish it; None
    (and the file removed) if nothing complete is in it."""
    try:
        end, init, pieces = _complete_pieces(part)
    except OSError as exc:
        log.warning("cannot read unfinished segment %s: %s", part, exc)
        return None
    if not init or not pieces:
        part.unlink(missing_ok=True)
        return None
    with part.open("r+b") as f:
        f.truncate(end)
        f.flush()
        os.fsync(f.fileno())
    final = part.with_name(part.name.removesuffix(".part"))
    part.replace(final)
    return final


def recover(root: Path, index: SegmentIndex, rebuild: bool = False) -> list[Segment]:
    """Finish every ``.part`` under ``root`` and index it; with ``rebuild``, make the index
    exactly the segment files on disk. The segments recovered or indexed."""
    found: list[Segment] = []
    for part in sorted(root.glob("*/*/*.mp4.part")):
        final = finish_part(part)
        if final is None:
            continue
        with contextlib.suppress(MediaError):
            segment = read_segment(root, final)
            index.add(segment)
            found.append(segment)
    if rebuild:
        found = []
        for path in sorted(root.glob("*/*/*.mp4")):
            try:
                found.append(read_segment(root, path))
            except MediaError as exc:
                log.warning("not indexed: %s", exc)
        index.replace_all(found)
    return found


__all__ = ["finish_part", "init_segment", "read_segment", "recover", "top_level_boxes"]
