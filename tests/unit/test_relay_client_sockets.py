"""The relay client's sockets give their connection back however they end.

Two ways a socket could keep its connection (and a file descriptor) until garbage collected,
with a ResourceWarning then: aiohttp marks a socket closed without releasing its connection
when receiving fails with a connection error (``close()`` then returns at once), and a task
cancelled between opening a socket and closing it leaves it to the client's session."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from privastead.relay.client import RelayClient


async def _hold_open(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for _ in ws:  # until the client goes
        pass
    return ws


@pytest.fixture
async def relay_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/v1/ws", _hold_open)
    app.router.add_get("/v1/live/{session}", _hold_open)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_sockets_left_open_close_with_the_client(relay_url: str) -> None:
    async with RelayClient(relay_url, "token") as relay:
        live = await relay.live("session")
        sub = await relay.subscribe([])
    assert live.closed and sub.ws.closed
    del live, sub
    gc.collect()  # an unreleased connection warns here (warnings are errors)


async def test_a_socket_that_failed_while_receiving_releases_its_connection(
    relay_url: str,
) -> None:
    async with RelayClient(relay_url, "token") as relay:
        live = await relay.live("session")
        # What the connection reports when the peer vanishes mid-frame: aiohttp's receive()
        # then marks the socket closed without releasing the connection.
        live._reader.set_exception(aiohttp.ServerDisconnectedError())
        msg = await live.receive()
        assert msg.type == aiohttp.WSMsgType.CLOSED and live.closed
        await live.close()
        assert live._response.connection is None  # released now, not when collected
