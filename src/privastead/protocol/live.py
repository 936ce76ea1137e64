"""The plaintext of one livestream message (inside an MLS application message of ``live``).

Layout (big-endian)::

    magic     4 bytes  b"PVLV"
    version   u8       1
    flags     u8       bit 0: init segment, bit 1: starts with a keyframe
    index     u32      consecutive per session (0 is the init segment): a gap is visible
    media     f64      seconds on the session's output timeline of its first frame
    arrived   f64      Unix time its newest frame reached the hub (0 for the init): a viewer
                       shows how far behind it is, the latency bench measures end to end
    data      rest     fMP4 bytes (``ftyp+moov`` for the init, ``moof+mdat`` pieces otherwise)

Index, keyframe flag and arrival time travel inside the ciphertext: the relay sees none of them,
yet a viewer that lost frames (relay back-pressure, a reconnect) knows to wait for the next
keyframe, and can tell how far behind the camera it plays.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from privastead.errors import DecodeError

MAGIC = b"PVLV"
VERSION = 2
_HEADER = struct.Struct(">4sBBIdd")
_INIT = 1
_KEYFRAME = 2


@dataclass(frozen=True)
class LivePayload:
    index: int
    is_init: bool
    keyframe: bool
    media_time: float
    data: bytes
    arrived: float = 0.0

    def encode(self) -> bytes:
        flags = (_INIT if self.is_init else 0) | (_KEYFRAME if self.keyframe else 0)
        head = _HEADER.pack(MAGIC, VERSION, flags, self.index, self.media_time, self.arrived)
        return head + self.data

    @classmethod
    def decode(cls, raw: bytes) -> LivePayload:
        if len(raw) < _HEADER.size:
            raise DecodeError("live payload too short")
        magic, version, flags, index, media_time, arrived = _HEADER.unpack_from(raw)
        if magic != MAGIC or version != VERSION:
            raise DecodeError("not a live payload of a known version")
        return cls(
            index=index,
            is_init=bool(flags & _INIT),
            keyframe=bool(flags & _KEYFRAME),
            media_time=media_time,
            data=bytes(raw[_HEADER.size :]),
            arrived=arrived,
        )


__all__ = ["LivePayload"]
