"""The plaintext of one playback message (inside an MLS application message of ``live``).

Layout (big-endian)::

    magic     4 bytes  b"PVPB"
    version   u8       1
    flags     u8       bit 0: the init segment, bit 1: the last message of the stream,
                       bit 2: the piece continues in the next message
    session   16 bytes the playback session id (from ``PlaybackAnswer``)
    index     u32      0, 1, 2 ... per session, no gaps
    media     f64      seconds on the output timeline where this piece starts
    length    u32      bytes of fMP4 data that follow
    data      length   a piece of the output (``ftyp+moov`` or ``moof+mdat``), or part of one
    padding   zeros    up to the Padmé bucket of the whole message (``envelope.padme``)

Unlike a livestream, a playback must arrive whole: the session id binds each message to its
session (a relay cannot splice in another session's messages of the same epoch), the index
shows a dropped, reordered or replayed message, and the final flag shows truncation. The
padding hides exact sizes from the relay as for every other message.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from privastead.errors import DecodeError
from privastead.protocol.envelope import padme

MAGIC = b"PVPB"
VERSION = 1
_HEADER = struct.Struct(">4sBB16sIdI")
_INIT, _FINAL, _MORE = 1, 2, 4
MAX_CHUNK = 1 << 20  # data bytes per message: well under the relay's largest live frame


@dataclass(frozen=True)
class PlaybackPayload:
    session: str  # 32 hex digits
    index: int
    is_init: bool
    final: bool
    more: bool
    media_time: float
    data: bytes

    def encode(self) -> bytes:
        """The padded plaintext, ready for MLS encryption."""
        flags = (
            (_INIT if self.is_init else 0)
            | (_FINAL if self.final else 0)
            | (_MORE if self.more else 0)
        )
        head = _HEADER.pack(
            MAGIC,
            VERSION,
            flags,
            bytes.fromhex(self.session),
            self.index,
            self.media_time,
            len(self.data),
        )
        size = _HEADER.size + len(self.data)
        return b"".join((head, self.data, bytes(padme(size) - size)))

    @classmethod
    def decode(cls, raw: bytes) -> PlaybackPayload:
        if len(raw) < _HEADER.size:
            raise DecodeError("playback payload too short")
        magic, version, flags, session, index, media, length = _HEADER.unpack_from(raw)
        if magic != MAGIC or version != VERSION:
            raise DecodeError("not a playback payload of a known version")
        if flags & ~(_INIT | _FINAL | _MORE):
            raise DecodeError("playback payload has unknown flags")
        end = _HEADER.size + length
        if end > len(raw) or length > MAX_CHUNK:
            raise DecodeError("playback payload shorter than its length field")
        if len(raw) != padme(end) or raw[end:].count(0) != len(raw) - end:
            raise DecodeError("playback payload padding is not zeros up to its bucket")
        return cls(
            session=session.hex(),
            index=index,
            is_init=bool(flags & _INIT),
            final=bool(flags & _FINAL),
            more=bool(flags & _MORE),
            media_time=media,
            data=bytes(raw[_HEADER.size : end]),
        )


def chunks(
    session: str, first_index: int, piece: bytes, *, is_init: bool, media_time: float, final: bool
) -> list[PlaybackPayload]:
    """``piece`` cut into payloads of at most ``MAX_CHUNK`` bytes, indexed from
    ``first_index``; ``final`` marks the last one."""
    parts = [piece[i : i + MAX_CHUNK] for i in range(0, len(piece), MAX_CHUNK)] or [b""]
    last = len(parts) - 1
    return [
        PlaybackPayload(
            session, first_index + i, is_init, final and i == last, i < last, media_time, part
        )
        for i, part in enumerate(parts)
    ]


def ack_text(index: int) -> str:
    """What a playback viewer sends on its live socket once message ``index`` (and all before
    it) is written; the relay forwards it to the publisher with the viewer's id added. It
    tells the relay nothing it does not see anyway (it delivered those frames)."""
    return json.dumps({"type": "ack", "index": index})


def parse_ack(event: Mapping[str, Any]) -> int | None:
    """The index of an ``ack`` signal, or None if ``event`` is not a well-formed one."""
    index = event.get("index")
    if event.get("type") != "ack" or not isinstance(index, int) or isinstance(index, bool):
        return None
    return index if 0 <= index < 1 << 32 else None


__all__ = ["MAX_CHUNK", "PlaybackPayload", "ack_text", "chunks", "parse_ack"]
