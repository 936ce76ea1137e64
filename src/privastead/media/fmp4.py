"""Fragmented MP4 by stream copy: the muxer setup, packet rebasing and box cutting that clips
(``recorder``) and livestreams (``live``) share.

PyAV's MP4 muxer writes into a file-like ``BoxSplitter`` that never seeks; the splitter cuts
the byte stream into the init segment (``ftyp+moov``, no samples thanks to ``empty_moov``) and
fragments (``moof+mdat``), handing each complete piece on as soon as its last byte is written.
``fragment_info`` reads a fragment's decode time and sample count per track, so callers know
what a piece holds without tracking the muxer's internal buffering.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av

from privastead.errors import MediaError
from privastead.media.ingest import MediaPacket, StreamInfo

PieceCallback = Callable[[bytes, bool], None]

# A fragment per packet, for livestreams. ``frag_every_frame`` would do the same for video, but
# with an audio track FFmpeg's muxer then gives the first audio sample after each cut a zero
# duration and a decode time one sample late (measured: 32 of 36 AAC samples in 2 s), which
# players turn into gaps or drop; a 1 us ``frag_duration`` cuts at the same places and keeps
# every sample's duration and the audio timeline continuous.
PER_PACKET_FRAGMENTS = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof+skip_trailer",
    "frag_duration": "1",
    "flush_packets": "1",
}


class BoxSplitter:
    """File-like sink for the muxer: calls ``on_piece(data, is_init)`` per complete piece."""

    def __init__(self, on_piece: PieceCallback) -> None:
        self.on_piece = on_piece
        self.pending = bytearray()
        self.piece = bytearray()  # boxes of the piece being assembled
        self.position = 0

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
        self.on_piece(data, is_init)

    def finish(self) -> None:
        if self.pending:
            raise MediaError(f"muxer left {len(self.pending)} bytes of an incomplete box")
        if self.piece:  # trailing boxes (none with skip_trailer), kept so pieces == file
            self._emit(is_init=False)


def open_muxer(
    sink: BoxSplitter, info: StreamInfo, movflags: str | None = None, **options: str
) -> tuple[av.container.OutputContainer, Any, Any]:
    """An MP4 muxer writing into ``sink`` with the camera's streams copied from ``info``
    (``movflags`` and ``options`` as FFmpeg's; ``movflags`` may come in ``options``).

    Returns ``(container, video_stream, audio_stream_or_None)``.
    """
    if movflags is not None:
        options = {**options, "movflags": movflags}
    out = av.open(sink, "w", format="mp4", options=options)
    video = out.add_stream_from_template(info.video)
    if info.width > 0 and info.height > 0:
        # The template may lack the size when probing was cut short; the ingest knows it.
        video.width, video.height = info.width, info.height
    if info.codec == "hevc":
        video.codec_tag = "hvc1"  # Safari and Apple players refuse hev1
    audio = out.add_stream_from_template(info.audio) if info.audio is not None else None
    return out, video, audio


def copy_packet(packet: MediaPacket, offset: float) -> av.Packet[Any] | None:
    """A copy of ``packet`` with its timestamps moved ``offset`` seconds earlier (None when
    that would put it before zero, or it lacks timestamps)."""
    src = packet.packet
    tb = src.time_base
    if tb is None or src.pts is None or src.dts is None:
        return None
    ticks = round(offset / tb)
    pts, dts = src.pts - ticks, src.dts - ticks
    if dts < 0:
        return None
    out = av.Packet(bytes(src))
    out.pts, out.dts, out.time_base = pts, dts, tb
    if src.duration:
        out.duration = src.duration
    out.is_keyframe = packet.keyframe
    return out


@dataclass(frozen=True)
class TrackRun:
    """What one ``traf`` of a fragment holds."""

    track_id: int
    base_time: int  # tfdt, in the track's timescale
    samples: int
    duration: int  # sum of the sample durations (0 when the muxer left them to defaults)


def _children(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, payload start, box end) of the boxes in ``data[start:end]``."""
    boxes = []
    while start + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, start)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, start + 8)
            header = 16
        elif size == 0:
            size = end - start
        if size < header or start + size > end:
            raise MediaError(f"malformed MP4 box {kind!r} of size {size}")
        boxes.append((kind, start + header, start + size))
        start += size
    return boxes


def _find(data: bytes, start: int, end: int, kind: bytes) -> list[tuple[int, int]]:
    return [(s, e) for k, s, e in _children(data, start, end) if k == kind]


def fragment_info(piece: bytes) -> list[TrackRun]:
    """Per track: decode time and samples of the ``moof`` boxes in ``piece``."""
    runs: list[TrackRun] = []
    for moof_start, moof_end in _find(piece, 0, len(piece), b"moof"):
        for traf_start, traf_end in _find(piece, moof_start, moof_end, b"traf"):
            track_id = base = samples = total = 0
            default_duration = 0
            for kind, s, _e in _children(piece, traf_start, traf_end):
                flags = int.from_bytes(piece[s + 1 : s + 4], "big")
                version = piece[s]
                if kind == b"tfhd":
                    (track_id,) = struct.unpack_from(">I", piece, s + 4)
                    at = s + 8 + (8 if flags & 0x1 else 0) + (4 if flags & 0x2 else 0)
                    if flags & 0x8:
                        (default_duration,) = struct.unpack_from(">I", piece, at)
                elif kind == b"tfdt":
                    fmt = ">Q" if version == 1 else ">I"
                    (base,) = struct.unpack_from(fmt, piece, s + 4)
                elif kind == b"trun":
                    (count,) = struct.unpack_from(">I", piece, s + 4)
                    samples += count
                    at = s + 8 + (4 if flags & 0x1 else 0) + (4 if flags & 0x4 else 0)
                    step = 4 * bin(flags & 0xF00).count("1")
                    for i in range(count):
                        if flags & 0x100:
                            total += struct.unpack_from(">I", piece, at + i * step)[0]
                        else:
                            total += default_duration
            runs.append(TrackRun(track_id, base, samples, total))
    return runs


def starts_with_sync_sample(piece: bytes, track_id: int = 1) -> bool:
    """Whether the first sample of ``track_id`` in ``piece`` is a sync sample (a keyframe),
    from the ``trun`` first-sample or per-sample flags, else the ``tfhd`` default."""
    for moof_start, moof_end in _find(piece, 0, len(piece), b"moof"):
        for traf_start, traf_end in _find(piece, moof_start, moof_end, b"traf"):
            flags_value: int | None = None
            this_track = False
            for kind, s, _e in _children(piece, traf_start, traf_end):
                flags = int.from_bytes(piece[s + 1 : s + 4], "big")
                if kind == b"tfhd":
                    this_track = struct.unpack_from(">I", piece, s + 4)[0] == track_id
                    at = s + 8 + (8 if flags & 0x1 else 0)
                    at += (4 if flags & 0x2 else 0) + (4 if flags & 0x8 else 0)
                    at += 4 if flags & 0x10 else 0
                    if flags & 0x20:
                        flags_value = struct.unpack_from(">I", piece, at)[0]
                elif kind == b"trun" and this_track:
                    at = s + 8 + (4 if flags & 0x1 else 0)
                    if flags & 0x4:
                        flags_value = struct.unpack_from(">I", piece, at)[0]
                    elif flags & 0x400:
                        at += (4 if flags & 0x4 else 0) + (4 if flags & 0x100 else 0)
                        at += 4 if flags & 0x200 else 0
                        flags_value = struct.unpack_from(">I", piece, at)[0]
                    return flags_value is not None and not flags_value & 0x10000
    return False


def _path(data: bytes, start: int, end: int, *kinds: bytes) -> tuple[int, int] | None:
    for kind in kinds:
        found = _find(data, start, end, kind)
        if not found:
            return None
        start, end = found[0]
    return start, end


def mime_codec(init: bytes) -> str:
    """The RFC 6381 ``codecs=`` value of an init segment, for
    ``MediaSource.isTypeSupported``/``addSourceBuffer``: the video track's codec, then the
    audio track's when there is one (e.g. ``avc1.64001F, mp4a.40.2``). A browser that is
    told only about the video refuses an init segment that also carries audio."""
    video: str | None = None
    audio: str | None = None
    for moov_start, moov_end in _find(init, 0, len(init), b"moov"):
        for trak_start, trak_end in _find(init, moov_start, moov_end, b"trak"):
            stsd = _path(init, trak_start, trak_end, b"mdia", b"minf", b"stbl", b"stsd")
            if stsd is None:
                continue
            for entry, s, e in _children(init, stsd[0] + 8, stsd[1]):
                if video is None and entry in (b"avc1", b"avc3", b"hvc1", b"hev1"):
                    video = _video_codec(init, entry, s, e)
                elif audio is None and entry in (b"mp4a", b"Opus"):
                    audio = _audio_codec(init, entry, s, e)
    if video is None:
        raise MediaError("init segment has no H.264/H.265 video track")
    return video if audio is None else f"{video}, {audio}"


def _video_codec(init: bytes, entry: bytes, start: int, end: int) -> str | None:
    # a visual sample entry has 78 bytes of fields before its child boxes
    children = {k: (cs, ce) for k, cs, ce in _children(init, start + 78, end)}
    if entry in (b"avc1", b"avc3") and b"avcC" in children:
        at = children[b"avcC"][0]
        return entry.decode() + "." + init[at + 1 : at + 4].hex().upper()
    if entry in (b"hvc1", b"hev1") and b"hvcC" in children:
        return entry.decode() + "." + _hevc_codec(init, children[b"hvcC"][0])
    return None


def _audio_codec(init: bytes, entry: bytes, start: int, end: int) -> str | None:
    if entry == b"Opus":
        return "opus"
    # an audio sample entry has 28 bytes of fields before its child boxes (ISO 14496-12 12.2.3)
    children = {k: (cs, ce) for k, cs, ce in _children(init, start + 28, end)}
    if b"esds" not in children:
        return "mp4a.40.2"  # AAC-LC, what every camera sends, when the entry says no more
    esds_start, esds_end = children[b"esds"]
    return _esds_codec(init[esds_start + 4 : esds_end])  # after the FullBox version/flags


def _descriptor(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, payload start, payload end) of the MPEG-4 descriptor at ``at`` (14496-1 8.3.3)."""
    tag, size, at = data[at], 0, at + 1
    for _ in range(4):  # the size takes up to four bytes of 7 bits
        byte = data[at]
        at += 1
        size = (size << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    return tag, at, at + size


def _esds_codec(esds: bytes) -> str:
    """``mp4a.OTI.AOT`` from an ES descriptor: the object type indication of its decoder
    config (hex) and, for MPEG-4 audio, the AudioSpecificConfig's audio object type."""
    try:
        tag, at, _end = _descriptor(esds, 0)
        if tag != 0x03:
            raise MediaError("esds without an ES descriptor")
        flags = esds[at + 2]
        at += 3 + (2 if flags & 0x80 else 0)  # ES_ID, flags, dependsOn_ES_ID
        if flags & 0x40:
            at += 1 + esds[at]  # URL
        at += 2 if flags & 0x20 else 0  # OCR_ES_Id
        tag, at, _end = _descriptor(esds, at)
        if tag != 0x04:
            raise MediaError("esds without a decoder config")
        oti = esds[at]
        tag, info, _end = _descriptor(esds, at + 13)
        if oti != 0x40 or tag != 0x05:
            return f"mp4a.{oti:02x}"
        aot = esds[info] >> 3
        if aot == 31:  # escape: 6 more bits
            aot = 32 + (((esds[info] & 0x07) << 3) | (esds[info + 1] >> 5))
        return f"mp4a.40.{aot}"
    except IndexError:
        raise MediaError("malformed esds box") from None


def _hevc_codec(data: bytes, at: int) -> str:
    """ISO/IEC 14496-15 Annex E: profile, compatibility flags (bit-reversed), tier+level,
    constraint bytes without trailing zeros."""
    first = data[at + 1]
    space = ("", "A", "B", "C")[first >> 6]
    tier = "H" if first & 0x20 else "L"
    profile = first & 0x1F
    compat = int(f"{int.from_bytes(data[at + 2 : at + 6], 'big'):032b}"[::-1], 2)
    constraints = bytearray(data[at + 6 : at + 12])
    while constraints and constraints[-1] == 0:
        constraints.pop()
    level = data[at + 12]
    parts = [f"{space}{profile}", f"{compat:X}", f"{tier}{level}"]
    parts += [f"{b:X}" for b in constraints]
    return ".".join(parts)


def track_timescales(init: bytes) -> dict[int, int]:
    """Track id -> timescale, from an init segment's ``moov``."""
    scales: dict[int, int] = {}
    for moov_start, moov_end in _find(init, 0, len(init), b"moov"):
        for trak_start, trak_end in _find(init, moov_start, moov_end, b"trak"):
            track_id = scale = 0
            for kind, s, e in _children(init, trak_start, trak_end):
                if kind == b"tkhd":
                    track_id = struct.unpack_from(">I", init, s + (20 if init[s] == 1 else 12))[0]
                elif kind == b"mdia":
                    for hs, _ in _find(init, s, e, b"mdhd"):
                        scale = struct.unpack_from(">I", init, hs + (20 if init[hs] == 1 else 12))[
                            0
                        ]
            scales[track_id] = scale
    return scales


def track_samples(piece: bytes, track_id: int = 1) -> list[bytes]:
    """The samples of ``track_id`` in a run of ``moof+mdat`` pairs (ISO/IEC 14496-12 8.8),
    in decode order: what a player hands its decoder, without a probing demuxer per piece."""
    samples = []
    for moof_start, moof_end in _find(piece, 0, len(piece), b"moof"):
        for traf_start, traf_end in _find(piece, moof_start, moof_end, b"traf"):
            base, default_size, ours = moof_start - 8, 0, False  # default-base-is-moof
            for kind, s, _e in _children(piece, traf_start, traf_end):
                flags = int.from_bytes(piece[s + 1 : s + 4], "big")
                if kind == b"tfhd":
                    ours = struct.unpack_from(">I", piece, s + 4)[0] == track_id
                    at = s + 8
                    if flags & 0x1:
                        (base,) = struct.unpack_from(">Q", piece, at)
                        at += 8
                    at += (4 if flags & 0x2 else 0) + (4 if flags & 0x8 else 0)
                    if flags & 0x10:
                        (default_size,) = struct.unpack_from(">I", piece, at)
                elif kind == b"trun" and ours:
                    (count,) = struct.unpack_from(">I", piece, s + 4)
                    at, offset = s + 8, 0
                    if flags & 0x1:
                        (offset,) = struct.unpack_from(">i", piece, at)
                        at += 4
                    at += 4 if flags & 0x4 else 0
                    fields = [bit for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit]
                    position = base + offset
                    for i in range(count):
                        size = default_size
                        if 0x200 in fields:
                            field_at = at + 4 * (len(fields) * i + fields.index(0x200))
                            (size,) = struct.unpack_from(">I", piece, field_at)
                        if position + size > len(piece):
                            raise MediaError("fragment sample runs past the end of its mdat")
                        samples.append(piece[position : position + size])
                        position += size
    return samples


__all__ = [
    "PER_PACKET_FRAGMENTS",
    "BoxSplitter",
    "PieceCallback",
    "TrackRun",
    "copy_packet",
    "fragment_info",
    "mime_codec",
    "open_muxer",
    "starts_with_sync_sample",
    "track_samples",
    "track_timescales",
]
