"""Small in-place edits of fragmented MP4 boxes, for playback of recorded segments.

Playback joins fragments of several segment files into one stream that starts at zero. Every
segment is written by the same muxer settings (``media.segments``), so the fragments need no
re-muxing: each ``moof``'s ``tfdt`` (base media decode time per track) is moved and its
``mfhd`` sequence number renumbered, in place (the box sizes stay, so the ``trun`` data
offsets, relative to the ``moof`` with ``default-base-is-moof``, stay right). The init
segment gets the stream's duration (``mvhd`` and an ``mehd`` in ``mvex``): a fragmented file
without it has an unknown length in browsers (``duration`` is infinite) and players.
"""

from __future__ import annotations

import struct

from privastead.errors import MediaError
from privastead.media.fmp4 import _children, _find, _path


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def movie_timescale(init: bytes) -> int:
    for moov_start, moov_end in _find(init, 0, len(init), b"moov"):
        for mvhd_start, _ in _find(init, moov_start, moov_end, b"mvhd"):
            at = mvhd_start + (20 if init[mvhd_start] == 1 else 12)
            return int(struct.unpack_from(">I", init, at)[0])
    raise MediaError("init segment without a movie header")


def with_duration(init: bytes, seconds: float) -> bytes:
    """``init`` (``ftyp`` + ``moov``) stating a duration of ``seconds``: the ``mvhd``
    duration, and an ``mehd`` (fragment duration) added to ``mvex``."""
    scale = movie_timescale(init)
    ticks = max(0, round(seconds * scale))
    out = bytearray()
    box_start = 0  # top-level boxes follow each other: each starts where the last ended
    for kind, start, end in _children(init, 0, len(init)):
        if kind != b"moov":
            out += init[box_start:end]
            box_start = end
            continue
        box_start = end
        moov = bytearray()
        head = start
        for child, s, e in _children(init, start, end):
            if child == b"mvhd":
                mvhd = bytearray(init[s:e])
                if mvhd[0] == 1:
                    struct.pack_into(">Q", mvhd, 24, ticks)
                else:
                    struct.pack_into(">I", mvhd, 16, min(ticks, 0xFFFFFFFF))
                moov += _box(b"mvhd", bytes(mvhd))
            elif child == b"mvex":
                kept, at = b"", s
                for ck, _cs, ce in _children(init, s, e):
                    kept += b"" if ck == b"mehd" else init[at:ce]
                    at = ce
                mehd = _box(b"mehd", b"\x01\x00\x00\x00" + struct.pack(">Q", ticks))
                moov += _box(b"mvex", mehd + kept)
            else:
                moov += init[head:e]
            head = e
        out += _box(b"moov", bytes(moov))
    return bytes(out)


def track_configs(init: bytes) -> dict[int, bytes]:
    """Track id -> its sample description (``stsd``) without the bitrate (``btrt``) boxes:
    two segments whose configs are equal can be played as one stream (the bitrate the muxer
    wrote into each file's header differs with the pictures, the decoder setup does not)."""
    configs: dict[int, bytes] = {}
    for moov_start, moov_end in _find(init, 0, len(init), b"moov"):
        for trak_start, trak_end in _find(init, moov_start, moov_end, b"trak"):
            track_id, stsd = 0, b""
            for kind, s, e in _children(init, trak_start, trak_end):
                if kind == b"tkhd":
                    track_id = struct.unpack_from(">I", init, s + (20 if init[s] == 1 else 12))[0]
                elif kind == b"mdia":
                    found = _path(init, s, e, b"minf", b"stbl", b"stsd")
                    if found is not None:
                        stsd = _without_bitrate(init, *found)
            configs[track_id] = stsd
    return configs


def _without_bitrate(init: bytes, start: int, end: int) -> bytes:
    out = bytearray(init[start : start + 8])  # version, flags, entry count
    for entry, s, e in _children(init, start + 8, end):
        fields = 78 if entry in (b"avc1", b"avc3", b"hvc1", b"hev1") else 28
        out += entry + init[s : s + fields]
        if e - s > fields:
            for child, cs, ce in _children(init, s + fields, e):
                if child != b"btrt":
                    out += child + init[cs:ce]
    return bytes(out)


def rebase_fragment(piece: bytes, shifts: dict[int, int], sequence: int) -> bytes:
    """``piece`` (``moof+mdat`` pairs) with each track's ``tfdt`` moved by ``shifts[track]``
    ticks (of that track's timescale) and the ``mfhd`` sequence numbers counted from
    ``sequence``. Raises ``MediaError`` for a time that would fall before zero or overflow."""
    out = bytearray(piece)
    number = sequence
    for moof_start, moof_end in _find(piece, 0, len(piece), b"moof"):
        for kind, s, e in _children(piece, moof_start, moof_end):
            if kind == b"mfhd":
                struct.pack_into(">I", out, s + 4, number & 0xFFFFFFFF)
                number += 1
            elif kind == b"traf":
                _rebase_traf(piece, out, s, e, shifts)
    return bytes(out)


def _rebase_traf(
    piece: bytes, out: bytearray, start: int, end: int, shifts: dict[int, int]
) -> None:
    track_id = 0
    for kind, s, _e in _children(piece, start, end):
        if kind == b"tfhd":
            (track_id,) = struct.unpack_from(">I", piece, s + 4)
        elif kind == b"tfdt":
            wide = piece[s] == 1
            fmt = ">Q" if wide else ">I"
            (base,) = struct.unpack_from(fmt, piece, s + 4)
            moved = base + shifts.get(track_id, 0)
            if moved < 0 or moved >= (1 << (64 if wide else 32)):
                raise MediaError(f"track {track_id}: rebased decode time {moved} out of range")
            struct.pack_into(fmt, out, s + 4, moved)


__all__ = ["movie_timescale", "rebase_fragment", "track_configs", "with_duration"]
