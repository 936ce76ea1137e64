"""``GET /v1/ws``: one WebSocket per device to hear about new messages in its mailboxes.

Client -> relay (text JSON): ``{"type": "subscribe", "mailboxes": [...]}``,
``{"type": "unsubscribe", "mailboxes": [...]}``, ``{"type": "ping"}``.
Relay -> client: ``{"type": "subscribed", "mailboxes": [...]}``,
``{"type": "message", "mailbox": id, "seq": n}``, ``{"type": "deleted", "mailbox": id}``,
``{"type": "resync"}`` (events were dropped: list your mailboxes), ``{"type": "pong"}``,
``{"type": "error", "code": ..., "message": ...}`` (a bad command: the socket stays open).
When the socket's token is revoked it gets an error frame with the code ``device_removed``
(or ``token_revoked``) and is closed with ``WS_CLOSE_REVOKED`` (4401).

The per-socket queue is bounded: a client that does not read its socket loses events, not
relay memory, and is told to resync once it reads again. One that reads nothing for longer
than the heartbeat (a ping ``HEARTBEAT_SECONDS`` after it last spoke, half that again for the
pong) is taken for gone and its socket closed; it reconnects and lists its mailboxes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections import deque
from functools import partial
from typing import Any

from aiohttp import WSMessage, WSMsgType, web

from privastead.errors import RelayRejectedError
from privastead.relay.accounts import Principal
from privastead.relay.api import DEVICE_REMOVED, WS_CLOSE_REVOKED, is_mailbox_id
from privastead.relay.auth import PRINCIPAL
from privastead.relay.httputil import parse_json
from privastead.relay.state import RelayState, state_of

MAX_SUBSCRIPTIONS = 1024
# A command frame larger than this closes the socket (1009, the protocol's answer); anything
# smaller that is not a good command gets an error frame. A full subscribe (1,024 ids) is
# 40 KiB; the margin keeps hostile-but-small frames (deep nesting...) on the error path.
MAX_COMMAND_FRAME = 256 * 1024
HEARTBEAT_SECONDS = 30.0
# Events queued together go out in one write while the socket keeps up (less than this is
# waiting in its send buffer); past it, one at a time, with aiohttp's flow control.
COALESCE_BELOW = 64 * 1024


class Subscription:
    """A bounded event queue with a "you missed something" flag."""

    def __init__(self, limit: int, on_drop: Any) -> None:
        self._events: deque[dict[str, Any]] = deque()
        self._limit = limit
        self._on_drop = on_drop
        self.overflowed = False
        self.wake = asyncio.Event()

    def offer(self, event: dict[str, Any]) -> None:
        if len(self._events) >= self._limit:
            self.overflowed = True
            self._on_drop()
        else:
            self._events.append(event)
        self.wake.set()

    def drain(self) -> list[dict[str, Any]]:
        if self.overflowed:
            self.overflowed = False
            self._events.clear()
            return [{"type": "resync"}]
        events = list(self._events)
        self._events.clear()
        return events


def open_socket(
    st: RelayState, p: Principal, max_msg_size: int = MAX_COMMAND_FRAME
) -> web.WebSocketResponse:
    """A WebSocket response, once the socket budget has room (429 past the account's or the
    token's share, 503 at the relay's limit). The caller holds ``st.shares.sockets``."""
    st.shares.sockets.check(p)
    return web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS, max_msg_size=max_msg_size)


async def subscribe_socket(request: web.Request) -> web.WebSocketResponse:
    st = state_of(request)
    p = request[PRINCIPAL]
    ws = open_socket(st, p)
    async with st.shares.sockets.hold(p):  # before the upgrade: a refusal is an HTTP 429
        return await _serve(st, p, ws, request)


async def _serve(
    st: RelayState, p: Principal, ws: web.WebSocketResponse, request: web.Request
) -> web.WebSocketResponse:
    await ws.prepare(request)
    st.websockets.add(ws)
    sub = Subscription(
        st.config.limits.ws_queue_events, partial(st.metrics.inc, "relay_ws_events_dropped_total")
    )
    mine: set[str] = set()
    writer = asyncio.create_task(_write(ws, sub, request.transport))
    try:
        with st.revocations.hold(p.token_id, partial(end_revoked, st, ws)):
            async for msg in ws:
                # A bad command gets an error frame; the socket stays open for good ones.
                command = _command(msg)
                if isinstance(command, str):
                    sub.offer({"type": "error", "code": "bad_command", "message": command})
                    continue
                kind = command["type"]
                if kind == "ping":
                    sub.offer({"type": "pong"})
                elif kind in ("subscribe", "unsubscribe"):
                    await _change(
                        st,
                        account=p.account,
                        allowed=p.mailboxes,
                        sub=sub,
                        mine=mine,
                        kind=kind,
                        mailboxes=command.get("mailboxes"),
                    )
                else:
                    sub.offer({"type": "error", "code": "unknown_type", "message": kind[:40]})
    finally:
        for mailbox in mine:
            st.notifier.unsubscribe(mailbox, sub)
        writer.cancel()
        # The writer may also have died with the connection: nothing to report then.
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
            await writer
        st.websockets.discard(ws)
    return ws


def _command(msg: WSMessage) -> dict[str, Any] | str:
    """A command object with a string ``type``, or what is wrong with the frame."""
    if msg.type != WSMsgType.TEXT:
        return "send JSON text frames"
    try:
        data = parse_json(msg.data)
    except RelayRejectedError as exc:
        return str(exc)
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        return 'a command is a JSON object with a string "type"'
    return data


def end_revoked(st: RelayState, ws: web.WebSocketResponse, code: str) -> None:
    """The socket's token was revoked: tell the client why, then close it."""
    task = asyncio.get_running_loop().create_task(_end(ws, code))
    st.background.add(task)  # keep a reference until done
    task.add_done_callback(st.background.discard)


async def _end(ws: web.WebSocketResponse, code: str) -> None:
    if ws.closed:
        return
    with contextlib.suppress(ConnectionError, RuntimeError):
        message = "this token was revoked" if code != DEVICE_REMOVED else "this device was removed"
        await ws.send_json({"type": "error", "code": code, "message": message})
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.close(code=WS_CLOSE_REVOKED, message=code.encode())


async def _change(
    st: RelayState,
    *,
    account: str,
    allowed: frozenset[str] | None,
    sub: Subscription,
    mine: set[str],
    kind: str,
    mailboxes: Any,
) -> None:
    if not isinstance(mailboxes, list) or not all(
        isinstance(m, str) and is_mailbox_id(m) for m in mailboxes
    ):
        sub.offer({"type": "error", "code": "bad_mailbox_id", "message": "a list of ids"})
        return
    if kind == "unsubscribe":
        for mailbox in mailboxes:
            if mailbox in mine:
                mine.discard(mailbox)
                st.notifier.unsubscribe(mailbox, sub)
        return
    if len(mine | set(mailboxes)) > MAX_SUBSCRIPTIONS:
        sub.offer(
            {
                "type": "error",
                "code": "too_many",
                "message": f"at most {MAX_SUBSCRIPTIONS} mailboxes per socket",
            }
        )
        return
    wanted = [m for m in mailboxes if allowed is None or m in allowed]
    ok = await st.storage.owned(account=account, mailboxes=wanted)
    for mailbox in ok - mine:
        st.notifier.subscribe(mailbox, sub)
    mine |= ok
    missing = sorted(set(mailboxes) - ok)
    sub.offer({"type": "subscribed", "mailboxes": sorted(ok), "missing": missing})


async def _write(
    ws: web.WebSocketResponse, sub: Subscription, transport: asyncio.Transport | None
) -> None:
    while not ws.closed:
        await sub.wake.wait()
        sub.wake.clear()
        events = sub.drain()
        if len(events) > 1 and transport is not None and _can_coalesce(ws, transport):
            # A batch of uploads stored together wakes a subscriber with one event each:
            # one write of consecutive frames instead of a system call per event here (and,
            # behind the native front, a read and a write there too). Written whole in one
            # synchronous call, so aiohttp's own frames (pongs, pings, close) never interleave.
            transport.write(b"".join(_text_frame(json.dumps(e).encode()) for e in events))
            continue
        for event in events:
            await ws.send_json(event)


def _can_coalesce(ws: web.WebSocketResponse, transport: asyncio.Transport) -> bool:
    """Frames may be written directly: the socket is open (no frame after a close frame), no
    compression was negotiated (aiohttp's compressor keeps a context across messages), and
    the socket keeps up (otherwise aiohttp's flow control)."""
    return (
        not ws.closed
        and not ws.compress
        and not transport.is_closing()
        and transport.get_write_buffer_size() < COALESCE_BELOW
    )


def _text_frame(payload: bytes) -> bytes:
    """One unmasked, final text frame (RFC 6455 section 5.2: a server never masks)."""
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x81, size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x81, 126, size)
    else:
        head = struct.pack("!BBQ", 0x81, 127, size)
    return head + payload


__all__ = ["Subscription", "end_revoked", "open_socket", "subscribe_socket"]
