"""Live channels: ``GET /v1/live/{session}?role=publisher|viewer`` (WebSocket).

One publisher (the hub) sends binary frames (encrypted livestream fragments); every viewer
gets them through its own bounded queue. A viewer that falls behind loses frames, never
relay memory, and the publisher is told, so it can slow down or stop:

- to the publisher (text JSON): ``{"type": "viewers", "count": n}`` when someone joins,
  ``{"type": "viewer_left", "viewer": id, "count": n}``, ``{"type": "no_viewers"}`` when the
  last one leaves, ``{"type": "lagging", "viewer": id, "dropped": n}`` (at most once a second
  per viewer) when frames were dropped for a slow viewer;
- to viewers: the binary frames, ``{"type": "waiting"}`` until a publisher is there,
  ``{"type": "publisher_joined"}``, ``{"type": "ended"}`` before the socket closes once the
  publisher ended the session (it sends ``{"type": "end"}`` first), and
  ``{"type": "publisher_lost"}`` when the publisher's socket closed without saying so (its
  connection broke): the viewers stay, and the session with them, until the publisher joins
  the same session again (``publisher_joined``) or they leave;
- from the publisher (text JSON): ``{"type": "end"}``, the session is over on purpose; any
  other publisher text is ignored;
- from a viewer (text JSON): ``{"type": "ack", "index": n}`` (a playback viewer has written
  every message up to ``n``), forwarded to the publisher as ``{"type": "ack", "viewer": id,
  "index": n}`` so it can keep its sending window below the viewer's queue (a playback must
  arrive whole); any other viewer text is ignored.

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
from privastead.protocol.live import live_signal
from privastead.protocol.playback import parse_ack
from privastead.relay.accounts import Principal
from privastead.relay.api import SESSION_ID
from privastead.relay.auth import PRINCIPAL
from privastead.relay.budgets import Slot
from privastead.relay.config import Budgets
from privastead.relay.httputil import reject
from privastead.relay.metrics import Metrics
from privastead.relay.state import RelayState, state_of
from privastead.relay.ws import MAX_COMMAND_FRAME, end_revoked, open_socket

MAX_VIEWERS = 16
LAG_SIGNAL_INTERVAL = 1.0


class Viewer:
    """One viewer's queue: bounded in frames, in bytes, and by its account's total."""

    def __init__(
        self, viewer_id: str, ws: web.WebSocketResponse, limit: int, ledger: QueuedBytes
    ) -> None:
        self.id = viewer_id
        self.ws = ws
        self.frames: deque[bytes | dict[str, Any]] = deque()
        self.limit = limit
        self.ledger = ledger
        self.bytes = 0
        self.wake = asyncio.Event()
        self.dropped = 0
        self.reported = 0
        self.last_signal = -1e9

    def offer(self, item: bytes | dict[str, Any]) -> bool:
        """Queue an item; False if a frame had to be dropped (a queue or a share full)."""
        if isinstance(item, bytes) and (
            len(self.frames) >= self.limit or not self.ledger.take(self, len(item))
        ):
            self.dropped += 1
            return False
        self.frames.append(item)
        self.wake.set()
        return True

    def pop(self) -> bytes | dict[str, Any]:
        item = self.frames.popleft()
        if isinstance(item, bytes):
            self.ledger.give_back(self, len(item))
        return item

    def discard(self) -> None:
        """The viewer left: what it had queued is no longer held."""
        self.ledger.give_back(self, self.bytes)
        self.frames.clear()


class QueuedBytes:
    """Bytes of live frames waiting for viewers, per viewer and per account: four stalled
    sessions of one household hold at most its share, not the relay's memory."""

    def __init__(self, account: str, totals: dict[str, int], budgets: Budgets) -> None:
        self.account = account
        self._totals = totals  # account -> bytes queued for all its viewers
        self._per_viewer = budgets.live_viewer_queue_bytes
        self._per_account = budgets.live_account_queue_bytes

    def take(self, viewer: Viewer, n: int) -> bool:
        held = self._totals.get(self.account, 0)
        if viewer.bytes + n > self._per_viewer or held + n > self._per_account:
            return False
        viewer.bytes += n
        self._totals[self.account] = held + n
        return True

    def give_back(self, viewer: Viewer, n: int) -> None:
        if not n:
            return
        viewer.bytes -= n
        left = self._totals[self.account] - n
        if left:
            self._totals[self.account] = left
        else:
            del self._totals[self.account]


@dataclass
class Session:
    owner: Principal  # whose live-session budget this session uses
    ledger: QueuedBytes
    slot: Slot  # the account's live-session slot, given back when the session is forgotten
    publisher: web.WebSocketResponse | None = None
    viewers: dict[str, Viewer] = field(default_factory=dict)

    @property
    def account(self) -> str:
        return self.owner.account


class LiveHub:
    def __init__(self, clock: Clock, metrics: Metrics, queue_frames: int, budgets: Budgets) -> None:
        self._clock = clock
        self._metrics = metrics
        self._queue_frames = queue_frames
        self._budgets = budgets
        self.sessions: dict[str, Session] = {}
        self.queued_bytes: dict[str, int] = {}  # account -> live bytes waiting for viewers
        self._signals: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)

    async def _session(self, st: RelayState, session_id: str, p: Principal) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            slot = await st.shares.live_sessions.acquire(p)  # 429 past the account's share
            session = self.sessions.get(session_id)  # another party may have opened it meanwhile
            if session is None:
                ledger = QueuedBytes(p.account, self.queued_bytes, self._budgets)
                session = self.sessions[session_id] = Session(owner=p, ledger=ledger, slot=slot)
            else:
                slot.release()
        if session.account != p.account:
            raise reject(404, "session_not_found", "no such live session")
        return session

    def _forget_if_empty(self, session_id: str, session: Session) -> None:
        if (
            session.publisher is None
            and not session.viewers
            and self.sessions.get(session_id) is session
        ):
            del self.sessions[session_id]
            session.slot.release()

    async def _join(
        self, st: RelayState, session_id: str, p: Principal, max_msg_size: int
    ) -> tuple[Session, web.WebSocketResponse, Slot]:
        """The session (opened if new) and a socket slot for one more party. No await comes
        between this and the caller registering its party, so the session is not forgotten
        under it."""
        ws = open_socket(st, p, max_msg_size)  # this process's counts first: no query
        socket = await st.shares.sockets.acquire(p)  # before the upgrade: a refusal is a 429
        try:
            return await self._session(st, session_id, p), ws, socket
        except BaseException:
            socket.release()
            raise

    async def publish(self, request: web.Request, session_id: str) -> web.WebSocketResponse:
        st = state_of(request)
        p = request[PRINCIPAL]
        session, ws, socket = await self._join(st, session_id, p, st.config.limits.max_live_frame)
        if session.publisher is not None:
            socket.release()
            self._forget_if_empty(session_id, session)
            raise reject(409, "publisher_exists", "this session already has a publisher")
        session.publisher = ws
        st.websockets.add(ws)
        ended = False
        try:
            await ws.prepare(request)
            with st.revocations.hold(p.token_id, partial(end_revoked, st, ws)):
                for viewer in session.viewers.values():
                    viewer.offer({"type": "publisher_joined"})
                await ws.send_json({"type": "viewers", "count": len(session.viewers)})
                async for msg in ws:
                    if msg.type == WSMsgType.BINARY:
                        self._fan_out(session, ws, msg.data)
                    elif msg.type == WSMsgType.TEXT:
                        ended = ended or _is_end(msg.data)
        finally:
            socket.release()
            session.publisher = None
            st.websockets.discard(ws)
            # A publisher that did not say ``end`` lost its connection (a Wi-Fi hand-over, a
            # proxy, a cut): its viewers wait for it to join the same session again.
            signal = {"type": "ended" if ended else "publisher_lost"}
            for viewer in session.viewers.values():
                viewer.offer(signal)
            self._forget_if_empty(session_id, session)
        return ws

    async def _viewer_signal(self, session: Session, viewer: Viewer, text: str) -> None:
        """A viewer's text frame: an acknowledgement (a playback viewer says how far it has
        written) goes to the publisher with the viewer's id; anything else is ignored."""
        event = live_signal(text)
        index = None if event is None else parse_ack(event)
        if index is not None and session.publisher is not None:
            await _quiet_send(
                session.publisher, {"type": "ack", "viewer": viewer.id, "index": index}
            )

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
        p = request[PRINCIPAL]
        session, ws, socket = await self._join(st, session_id, p, MAX_COMMAND_FRAME)
        if len(session.viewers) >= MAX_VIEWERS:
            socket.release()
            self._forget_if_empty(session_id, session)
            raise reject(409, "too_many_viewers", f"at most {MAX_VIEWERS} viewers per session")
        viewer = Viewer(f"v{next(self._ids)}", ws, self._queue_frames, session.ledger)
        session.viewers[viewer.id] = viewer
        st.websockets.add(ws)
        writer = asyncio.create_task(_write(viewer))
        try:
            await ws.prepare(request)
            with st.revocations.hold(p.token_id, partial(end_revoked, st, ws)):
                if session.publisher is None:
                    viewer.offer({"type": "waiting"})
                else:
                    await _quiet_send(
                        session.publisher, {"type": "viewers", "count": len(session.viewers)}
                    )
                async for msg in ws:  # reading also keeps close frames flowing
                    if msg.type == WSMsgType.TEXT:
                        await self._viewer_signal(session, viewer, msg.data)
        finally:
            socket.release()
            writer.cancel()
            # The writer may also have died with the connection: nothing to report then.
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
                await writer
            session.viewers.pop(viewer.id, None)
            viewer.discard()
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
            item = viewer.pop()
            if isinstance(item, bytes):
                await ws.send_bytes(item)
            else:
                await ws.send_json(item)
                if item.get("type") == "ended":
                    await ws.close()
                    return


def _is_end(text: str) -> bool:
    """Whether a publisher's text frame is ``{"type": "end"}``. Anything else, however
    malformed or deeply nested, is not (and never costs more than a short parse)."""
    if len(text) > 64:  # the end frame is tiny; nothing longer is worth parsing
        return False
    event = live_signal(text)
    return event is not None and event.get("type") == "end"


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
