"""Live channels: ``GET /v1/live/{session}?role=publisher|viewer`` (WebSocket).

One publisher (the hub) sends binary frames (encrypted livestream fragments); every viewer
gets them through its own bounded queue. A viewer that falls behind loses frames, never
relay memory, and the publisher is told, so it can slow down or stop:

- to the publisher (text JSON): ``{"type": "viewers", "count": n}`` when someone joins,
  ``{"type": "viewer_left", "viewer": id, "count": n}``, ``{"type": "no_viewers"}`` when the
  last one leaves, ``{"type": "lagging", "viewer": id, "dropped": n}`` (at most once a second
  per viewer) when frames were dropped for a slow viewer;
- to viewers: the binary frames, ``{"type": "waiting"}`` until a publisher is there,
  ``{"type": "publisher_joined"}``, and ``{"type": "ended"}`` before the socket closes.

The relay never looks inside frames; order is kept per viewer, gaps show as dropped frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aiohttp import WSMsgType, web

from privastead.clock import Clock
from privastead.relay.api import SESSION_ID
from privastead.relay.auth import PRINCIPAL
from privastead.relay.httputil import reject
from privastead.relay.metrics import Metrics
from privastead.relay.state import state_of
from privastead.relay.ws import end_revoked, open_socket

MAX_VIEWERS = 16
LAG_SIGNAL_INTERVAL = 1.0


class Viewer:
    def __init__(self, viewer_id: str, ws: web.WebSocketResponse, limit: int) -> None:
        self.id = viewer_id
        self.ws = ws
        self.frames: deque[bytes | dict[str, Any]] = deque()
        self.limit = limit
        self.wake = asyncio.Event()
        self.dropped = 0
        self.reported = 0
        self.last_signal = -1e9

    def offer(self, item: bytes | dict[str, Any]) -> bool:
        """Queue an item; False if a frame had to be dropped (queue full)."""
        if isinstance(item, bytes) and len(self.frames) >= self.limit:
            self.dropped += 1
            return False
        self.frames.append(item)
        self.wake.set()
        return True


@dataclass
class Session:
    account: str
    publisher: web.WebSocketResponse | None = None
    viewers: dict[str, Viewer] = field(default_factory=dict)


class LiveHub:
    def __init__(self, clock: Clock, metrics: Metrics, queue_frames: int) -> None:
        self._clock = clock
        self._metrics = metrics
        self._queue_frames = queue_frames
        self.sessions: dict[str, Session] = {}
        self._signals: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)

    def _session(self, session_id: str, account: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            session = self.sessions[session_id] = Session(account=account)
        elif session.account != account:
            raise reject(404, "session_not_found", "no such live session")
        return session

    def _forget_if_empty(self, session_id: str, session: Session) -> None:
        if session.publisher is None and not session.viewers:
            self.sessions.pop(session_id, None)

    async def publish(self, request: web.Request, session_id: str) -> web.WebSocketResponse:
        st = state_of(request)
        session = self._session(session_id, request[PRINCIPAL].account)
        if session.publisher is not None:
            raise reject(409, "publisher_exists", "this session already has a publisher")
        ws = open_socket(st, st.config.limits.max_live_frame)
        session.publisher = ws
        st.websockets.add(ws)
        try:
            await ws.prepare(request)
            with st.revocations.hold(request[PRINCIPAL].token_id, partial(end_revoked, st, ws)):
                for viewer in session.viewers.values():
                    viewer.offer({"type": "publisher_joined"})
                await ws.send_json({"type": "viewers", "count": len(session.viewers)})
                async for msg in ws:
                    if msg.type == WSMsgType.BINARY:
                        self._fan_out(session, ws, msg.data)
        finally:
            session.publisher = None
            st.websockets.discard(ws)
            for viewer in session.viewers.values():
                viewer.offer({"type": "ended"})
            self._forget_if_empty(session_id, session)
        return ws

    def _fan_out(self, session: Session, publisher: web.WebSocketResponse, frame: bytes) -> None:
        now = self._clock.monotonic()
        for viewer in session.viewers.values():
            if not viewer.offer(frame):
                self._metrics.inc("relay_live_frames_dropped_total")
                if now - viewer.last_signal >= LAG_SIGNAL_INTERVAL:
                    viewer.last_signal = now
                    dropped, viewer.reported = viewer.dropped - viewer.reported, viewer.dropped
                    task = asyncio.get_running_loop().create_task(
                        _quiet_send(
                            publisher, {"type": "lagging", "viewer": viewer.id, "dropped": dropped}
                        )
                    )
                    self._signals.add(task)  # keep a reference until it is sent
                    task.add_done_callback(self._signals.discard)

    async def view(self, request: web.Request, session_id: str) -> web.WebSocketResponse:
        st = state_of(request)
        session = self._session(session_id, request[PRINCIPAL].account)
        if len(session.viewers) >= MAX_VIEWERS:
            raise reject(409, "too_many_viewers", f"at most {MAX_VIEWERS} viewers per session")
        ws = open_socket(st)
        viewer = Viewer(f"v{next(self._ids)}", ws, self._queue_frames)
        session.viewers[viewer.id] = viewer
        st.websockets.add(ws)
        writer = asyncio.create_task(_write(viewer))
        try:
            await ws.prepare(request)
            with st.revocations.hold(request[PRINCIPAL].token_id, partial(end_revoked, st, ws)):
                if session.publisher is None:
                    viewer.offer({"type": "waiting"})
                else:
                    await _quiet_send(
                        session.publisher, {"type": "viewers", "count": len(session.viewers)}
                    )
                async for _ in ws:  # viewers only listen; reading keeps close frames flowing
                    pass
        finally:
            writer.cancel()
            # The writer may also have died with the connection: nothing to report then.
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
                await writer
            session.viewers.pop(viewer.id, None)
            st.websockets.discard(ws)
            if session.publisher is not None:
                count = len(session.viewers)
                await _quiet_send(
                    session.publisher, {"type": "viewer_left", "viewer": viewer.id, "count": count}
                )
                if count == 0:
                    await _quiet_send(session.publisher, {"type": "no_viewers"})
            self._forget_if_empty(session_id, session)
        return ws


async def _write(viewer: Viewer) -> None:
    ws = viewer.ws
    while True:
        await viewer.wake.wait()
        viewer.wake.clear()
        while viewer.frames:
            item = viewer.frames.popleft()
            if isinstance(item, bytes):
                await ws.send_bytes(item)
            else:
                await ws.send_json(item)
                if item.get("type") == "ended":
                    await ws.close()
                    return


async def _quiet_send(ws: web.WebSocketResponse, event: dict[str, Any]) -> None:
    if not ws.closed:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_json(event)


async def live_socket(request: web.Request) -> web.WebSocketResponse:
    session_id = request.match_info["session"]
    if not SESSION_ID.match(session_id):
        raise reject(400, "bad_session_id", "session ids are 32 lowercase hex characters")
    p = request[PRINCIPAL]
    if not p.may_use(session_id):
        raise reject(403, "forbidden", "this token may not use that session")
    role = request.query.get("role", "viewer")
    hub = state_of(request).live
    if role == "publisher":
        return await hub.publish(request, session_id)
    if role == "viewer":
        return await hub.view(request, session_id)
    raise reject(400, "bad_query", "role must be publisher or viewer")


__all__ = ["LiveHub", "live_socket"]
