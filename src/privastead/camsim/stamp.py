"""Send-time stamps in the video stream: an SEI "user data unregistered" message per frame.

With ``--stamp`` camsim puts one SEI NAL unit in front of the first slice of every access unit
it sends, holding the wall-clock time (Unix microseconds) at which that access unit was written
to the client's socket. The scene is encoded once and looped, so the stamp cannot be drawn
into the picture; an SEI message is added at send time without re-encoding, survives stream
copy (RTSP depacketizing, fMP4 muxing, MLS) untouched, and FFmpeg's H.264 and H.265 decoders
hand it back as frame side data (``AV_FRAME_DATA_SEI_UNREGISTERED``). Decoders that do not
know the UUID ignore the message, so a stamped stream plays everywhere.

Layout of the SEI payload (ITU-T H.264 D.1.7 / H.265 D.2.7): a 16-byte UUID
(``STAMP_UUID``), then the send time as a big-endian u64 of microseconds since the Unix epoch.
The benchmark (``bench/bench_live.py``) reads it to measure camera-to-viewer latency.
"""

from __future__ import annotations

import struct
import uuid
from enum import Enum
from typing import Any

from privastead.camsim.rtp import Codec

# uuid5(NAMESPACE_URL, "https://privastead.invalid/camsim/stamp"): fixed, never changes.
STAMP_UUID = uuid.uuid5(uuid.NAMESPACE_URL, "https://privastead.invalid/camsim/stamp").bytes
_SEI_USER_DATA_UNREGISTERED = 5
_H264_SEI = 6
_H265_PREFIX_SEI = 39


def escape(rbsp: bytes) -> bytes:
    """Insert emulation prevention bytes: ``00 00`` followed by a byte <= 3 gets a ``03``."""
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def stamp_payload(unix_seconds: float) -> bytes:
    """The SEI payload: UUID and the time in microseconds."""
    return STAMP_UUID + struct.pack(">Q", round(unix_seconds * 1e6))


def sei_nal(codec: Codec, unix_seconds: float) -> bytes:
    """One SEI NAL unit (no start code) carrying ``unix_seconds``."""
    payload = stamp_payload(unix_seconds)
    # payload type 5 and size 24 are < 255: one byte each; then rbsp_trailing_bits.
    rbsp = bytes([_SEI_USER_DATA_UNREGISTERED, len(payload)]) + payload + b"\x80"
    header = (
        bytes([_H264_SEI])  # nal_ref_idc 0
        if codec == "h264"
        else bytes([_H265_PREFIX_SEI << 1, 1])  # layer 0, temporal id 0 (+1)
    )
    return header + escape(rbsp)


def unescape(ebsp: bytes) -> bytes:
    """Remove emulation prevention bytes (the inverse of ``escape``)."""
    out = bytearray()
    zeros = 0
    for byte in ebsp:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def sample_stamp(codec: Codec, sample: bytes) -> float | None:
    """The send time in an MP4 sample (4-byte length-prefixed NAL units), if it has one: for
    reading stamps from fMP4 fragments without decoding them."""
    at = 0
    while at + 4 <= len(sample):
        size = int.from_bytes(sample[at : at + 4], "big")
        nal = sample[at + 4 : at + 4 + size]
        at += 4 + size
        if not nal:
            continue
        if codec == "h264" and nal[0] & 0x1F == _H264_SEI:
            rbsp = unescape(nal[1:])
        elif codec == "h265" and (nal[0] >> 1) & 0x3F == _H265_PREFIX_SEI:
            rbsp = unescape(nal[2:])
        else:
            continue
        stamp = _sei_stamp(rbsp)
        if stamp is not None:
            return stamp
    return None


def _sei_stamp(rbsp: bytes) -> float | None:
    """Walk the SEI messages of one SEI NAL unit's RBSP for our user data."""
    at = 0
    while at < len(rbsp) and rbsp[at] != 0x80:  # 0x80 alone: rbsp_trailing_bits
        kind = size = 0
        while at < len(rbsp) and rbsp[at] == 0xFF:
            kind, at = kind + 255, at + 1
        if at >= len(rbsp):
            return None
        kind, at = kind + rbsp[at], at + 1
        while at < len(rbsp) and rbsp[at] == 0xFF:
            size, at = size + 255, at + 1
        if at >= len(rbsp):
            return None
        size, at = size + rbsp[at], at + 1
        if kind == _SEI_USER_DATA_UNREGISTERED:
            stamp = read_stamp(rbsp[at : at + size])
            if stamp is not None:
                return stamp
        at += size
    return None


def read_stamp(sei_user_data: bytes) -> float | None:
    """The send time in a user-data-unregistered SEI payload (UUID first, as FFmpeg exports
    it in frame side data), or None if it is another one (e.g. x264's version string)."""
    if len(sei_user_data) < 24 or sei_user_data[:16] != STAMP_UUID:
        return None
    (micros,) = struct.unpack_from(">Q", sei_user_data, 16)
    return float(micros) / 1e6


def frame_user_data(frame: object) -> list[bytes]:
    """The user-data-unregistered SEI payloads a decoded frame shows in its side data.

    PyAV 18.1.0 iterates a frame's side data as the entries themselves, 18.1.1 as their types
    (a mapping): an entry is taken either way. A mapping holds one entry per type, so where
    the encoder's own user-data SEI shares a frame with the stamp (x264's, on its first
    frame) only one of them shows."""
    sides: Any = getattr(frame, "side_data", {})
    entries = [sides[key] if isinstance(key, Enum) else key for key in sides]
    return [bytes(e) for e in entries if e.type.name == "SEI_UNREGISTERED"]


def frame_stamp(frame: object) -> float | None:
    """The send time a decoded frame carries in its side data, or None (``frame_user_data``:
    under PyAV from 18.1.1 the encoder's own SEI may hide it)."""
    stamps = (read_stamp(data) for data in frame_user_data(frame))
    return next((s for s in stamps if s is not None), None)


def is_vcl_payload(codec: Codec, payload: bytes) -> bool:
    """Whether an RTP payload (single NAL unit or fragmentation unit) carries a slice."""
    if codec == "h264":
        kind = payload[0] & 0x1F
        return 1 <= kind <= 5 or kind == 28  # slices, or FU-A (only slices are that large)
    kind = (payload[0] >> 1) & 0x3F
    return kind <= 31 or kind == 49  # VCL types, or FU


__all__ = [
    "STAMP_UUID",
    "escape",
    "frame_stamp",
    "frame_user_data",
    "is_vcl_payload",
    "read_stamp",
    "sample_stamp",
    "sei_nal",
    "stamp_payload",
    "unescape",
]
