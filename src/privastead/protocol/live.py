"""The plaintext of one livestream message (inside an MLS application message of ``live``).

Layout (big-endian)::

    magic     4 bytes  b"PVLV"
    version   u8       3
    flags     u8       bit 0: init segment, bit 1: starts with a keyframe
    index     u32      consecutive per session (0 is the init segment): a gap is visible
    media     f64      seconds on the session's output timeline of its first frame
    arrived   f64      Unix time its newest frame reached the hub (0 for the init): a viewer
                       shows how far behind it is, the latency bench measures end to end
    length    u32      bytes of fMP4 data that follow
    data      length   fMP4 bytes (``ftyp+moov`` for the init, ``moof+mdat`` pieces otherwise)
    padding   zeros    up to the Padmé bucket of the whole message (``envelope.padme``)

Index, keyframe flag and arrival time travel inside the ciphertext: the relay sees none of them,
yet a viewer that lost frames (relay back-pressure, a reconnect) knows to wait for the next
keyframe, and can tell how far behind the camera it plays. The padding hides the exact size of
each piece, as for every other application message: the relay learns sizes only by bucket
(O(log log n) bits each, at most 12 % more bytes; ``bench/bench_live_padding.py`` measures it
on real live fragments), so it cannot read motion or keyframes off the exact bitrate.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from privastead.errors import DecodeError
from privastead.protocol.envelope import padme

MAGIC = b"PVLV"
VERSION = 3
_HEADER = struct.Struct(">4sBBIddI")
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
        """The padded plaintext, ready for MLS encryption."""
        flags = (_INIT if self.is_init else 0) | (_KEYFRAME if self.keyframe else 0)
        head = _HEADER.pack(
            MAGIC, VERSION, flags, self.index, self.media_time, self.arrived, len(self.data)
        )
        size = _HEADER.size + len(self.data)
        return b"".join((head, self.data, bytes(padme(size) - size)))

    @classmethod
    def decode(cls, raw: bytes) -> LivePayload:
        if len(raw) < _HEADER.size:
            raise DecodeError("live payload too short")
        magic, version, flags, index, media_time, arrived, length = _HEADER.unpack_from(raw)
        if magic != MAGIC or version != VERSION:
            raise DecodeError("not a live payload of a known version")
        end = _HEADER.size + length
        if end > len(raw):
            raise DecodeError("live payload shorter than its length field")
        if len(raw) != padme(end) or raw[end:].count(0) != len(raw) - end:
            raise DecodeError("live payload padding is not zeros up to its bucket")
        return cls(
            index=index,
            is_init=bool(flags & _INIT),
            keyframe=bool(flags & _KEYFRAME),
            media_time=media_time,
            data=bytes(raw[_HEADER.size : end]),
            arrived=arrived,
        )


def live_signal(text: str | bytes) -> dict[str, Any] | None:
    """A JSON text signal on a live channel (the relay's ``viewers``, ``ended`` ..., the
    publisher's ``end``, a viewer's ``ack``), or None for anything else: invalid JSON, nesting
    too deep for the parser, not an object. No side of the channel trusts the other, so junk
    is skipped, never raised."""
    try:
        event = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return event if isinstance(event, dict) else None


__all__ = [
    "LivePayload",
    "live_signal",
]
