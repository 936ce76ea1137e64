"""The relay's subscription socket writes a batch of queued events as consecutive frames in
one write: every event must still reach a real WebSocket client whole, in order, whatever
its size (the three length encodings of RFC 6455) and whether or not the client negotiated
compression (then aiohttp writes each frame itself)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from privastead.relay import ws as relay_ws

# 20 bytes, over 125 (16-bit length), over 65,535 (64-bit length), and small again.
EVENTS: list[dict[str, Any]] = [
    {"type": "message", "mailbox": "a", "seq": 1},
    {"type": "message", "mailbox": "b" * 300, "seq": 2},
    {"type": "subscribed", "mailboxes": ["c" * 32] * 2500, "missing": []},
    {"type": "pong"},
]


@pytest.mark.parametrize("compress", [0, 15])
async def test_a_batch_of_events_arrives_whole_and_in_order(compress: int) -> None:
    written: list[int] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        sub = relay_ws.Subscription(limit=100, on_drop=lambda: None)
        for event in EVENTS:
            sub.offer(event)  # all queued before the writer runs: one drain
        transport = request.transport
        assert transport is not None
        original = transport.write
        calls: list[int] = []

        def counting(data: Any) -> None:
            calls.append(len(data))
            original(data)

        transport.write = counting  # type: ignore[method-assign]
        writer = asyncio.create_task(relay_ws._write(sock, sub, transport))
        await sock.receive()  # the client's "done"
        writer.cancel()
        written.append(len(calls))
        await sock.close()
        return sock

    app = web.Application()
    app.router.add_get("/ws", handler)
    async with (
        TestServer(app) as server,
        aiohttp.ClientSession() as session,
        session.ws_connect(server.make_url("/ws"), compress=compress) as sock,
    ):
        got = [json.loads((await sock.receive(timeout=10)).data) for _ in EVENTS]
        await sock.send_str("done")
        assert got == EVENTS
        await sock.receive(timeout=10)  # the close
    if compress:
        assert written[0] >= len(EVENTS)  # aiohttp's compressed frames, one write each
    else:
        assert written[0] == 1  # the whole batch in one write


def test_frame_header_lengths() -> None:
    assert relay_ws._text_frame(b"x" * 125)[:2] == b"\x81\x7d"
    assert relay_ws._text_frame(b"x" * 126)[:4] == b"\x81\x7e\x00\x7e"
    assert relay_ws._text_frame(b"x" * 65536)[:10] == b"\x81\x7f" + (65536).to_bytes(8, "big")
