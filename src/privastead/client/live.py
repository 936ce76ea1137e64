"""Watching a livestream: decrypt the live channel's frames, play only from keyframes.

``LiveAssembler`` turns decrypted ``LivePayload``s into a playable fMP4 byte stream: the init
segment once, then media fragments. The hub sends the init again whenever a viewer joins, so
a viewer that joined mid-stream gets it too. Until the first keyframe fragment after the init
and after any gap in the message indices (frames the relay dropped for a slow viewer, or lost
over a reconnect) it drops fragments: a fragment that does not start with a keyframe cannot be
decoded without its predecessors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from privastead.errors import CryptoError
from privastead.protocol.live import LivePayload, live_signal


@dataclass
class LiveAssembler:
    init: bytes | None = None
    expected: int | None = None  # the index that continues the stream without a gap
    waiting: bool = True  # for a keyframe
    written: int = 0  # media fragments handed on
    dropped: int = 0  # media fragments thrown away while waiting
    gaps: int = 0
    keyframes: list[int] = field(default_factory=list)

    def accept(self, payload: LivePayload) -> list[bytes]:
        """What to write for ``payload``: nothing, a fragment, or the init then a fragment."""
        if payload.is_init:
            # The hub repeats the init whenever a viewer joins (the relay replays nothing):
            # the same init again changes nothing for a viewer already playing.
            if payload.data != self.init:
                self.init = payload.data
                self.expected = None
                self.waiting = True
            return []
        if self.expected is not None and payload.index != self.expected:
            self.gaps += 1
            self.waiting = True
        self.expected = payload.index + 1
        if self.waiting and (not payload.keyframe or self.init is None):
            self.dropped += 1
            return []
        out = []
        if self.waiting and self.written == 0:
            out.append(self.init or b"")
        self.waiting = False
        if payload.keyframe:
            self.keyframes.append(payload.index)
        self.written += 1
        out.append(payload.data)
        return out


async def watch(
    ws: aiohttp.ClientWebSocketResponse,
    decrypt: Callable[[bytes], bytes],
    write: Callable[[bytes], None],
    *,
    seconds: float | None = None,
) -> LiveAssembler:
    """Read the viewer socket ``ws`` until the session ends, the socket closes or ``seconds``
    pass; ``decrypt`` raises ``CryptoError`` for what is not ours (such frames are skipped)."""
    assembler = LiveAssembler()
    loop = asyncio.get_running_loop()
    deadline = None if seconds is None else loop.time() + seconds
    try:
        while True:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                break
            try:
                msg = await asyncio.wait_for(ws.receive(), left)
            except (TimeoutError, asyncio.TimeoutError):
                break
            if msg.type == aiohttp.WSMsgType.BINARY:
                try:
                    payload = LivePayload.decode(decrypt(msg.data))
                except CryptoError:
                    assembler.dropped += 1
                    assembler.waiting = True
                    continue
                for piece in assembler.accept(payload):
                    write(piece)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                event = live_signal(msg.data)  # the relay's junk is skipped
                if event is not None and event.get("type") == "ended":
                    break
            else:
                break  # closed or failed
    finally:
        await ws.close()
    return assembler


__all__ = ["LiveAssembler", "watch"]
