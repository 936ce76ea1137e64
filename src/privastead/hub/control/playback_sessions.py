"""The hub's playback sessions: answering ``PlaybackRequest`` and ``RecordingsRequest``.

A client asks in the camera's ``control`` group (MLS authenticates it as a current member;
a removed device's request does not even decrypt). For a ``RecordingsRequest`` the hub
answers the merged recorded spans from the segment index. For a ``PlaybackRequest`` it plans
the range (``media.playback.plan_playback``, in a thread: SQLite and file reads), and then:

- **nothing recorded:** a ``PlaybackAnswer`` with ``error = "nothing_recorded"`` and the
  recorded spans nearest the range;
- **else:** it rekeys the ``live`` group (a self-update commit through the outbox: each
  session gets its own keys, as livestreams do), picks a random session id, answers with it,
  the epoch, and what it will send (span, duration, pieces, bytes), then opens the relay's
  live channel ``/v1/live/{session}`` as publisher, waits for the viewer and sends the plan's
  pieces as ``PlaybackPayload``s, each one MLS application message of ``live``.

A livestream may drop frames for a slow viewer; a playback must not. The viewer therefore
acknowledges what it has written (``{"type": "ack", "index": n}`` on its socket, which the
relay forwards to the publisher) and the hub keeps at most ``WINDOW_MESSAGES`` messages and
``WINDOW_BYTES`` bytes unacknowledged: below the relay's per-viewer queue, so an honest relay
never has to drop. A session ends after its last message is acknowledged, when the viewer
leaves, when it stops acknowledging for ``STALL_SECONDS``, or when no viewer joins in time.

Reading and rebasing pieces runs in a thread, encryption on the ``live`` group's worker: the
event loop never waits on disk or MLS (``docs/design/hub-concurrency.md``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from privastead import compat
from privastead.errors import MediaError, RelayError, StorageError
from privastead.hub.control.live_publish import relay_signals
from privastead.hub.state.groups import HubGroup, HubGroups
from privastead.media.playback import PlaybackPlan, nearby, plan_playback, spans
from privastead.media.segment_index import SegmentIndex
from privastead.protocol.codec import Message
from privastead.protocol.playback import chunks, parse_ack
from privastead.protocol.playback_messages import (
    MAX_NEARBY,
    MAX_SPANS,
    PlaybackAnswer,
    PlaybackRequest,
    RecordingsAnswer,
    RecordingsRequest,
)
from privastead.relay.client import RelayClient

log = logging.getLogger(__name__)

JOIN_TIMEOUT = 30.0  # seconds for the viewer to connect after the answer
STALL_SECONDS = 30.0  # no acknowledgement for this long while the window is full: give up
FINAL_ACK_SECONDS = 30.0
WINDOW_MESSAGES = 24  # the relay queues 64 frames per viewer by default
WINDOW_BYTES = 6 << 20  # ... and 8 MiB
MAX_SESSIONS = 4  # playback sessions at once on this hub
MAX_PER_CAMERA = 2

Send = Callable[[HubGroup, Callable[[int], Message]], object]


@dataclass
class _Session:
    camera: str
    session_id: str
    plan: PlaybackPlan
    sent: int = 0
    bytes: int = 0
    acked: int = -1  # highest message index the viewer has written
    viewers: int = 0
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    gone: bool = False
    task: asyncio.Task[None] | None = None


class PlaybackSessions:
    """Built by the hub's root (``hub.app``) over the hub's recordings (``HubDataDir``'s
    ``recordings`` directory and ``recordings_index``); ``send`` queues a control message."""

    def __init__(
        self,
        groups: HubGroups,
        relay: RelayClient,
        send: Send,
        recordings: Path,
        index_path: Path,
        *,
        join_timeout: float = JOIN_TIMEOUT,
        stall_seconds: float = STALL_SECONDS,
        protected: set[str] | None = None,
    ) -> None:
        self.groups = groups
        self.relay = relay
        self.send = send
        self.recordings = recordings
        self.index_path = index_path
        self.join_timeout = join_timeout
        self.stall_seconds = stall_seconds
        self._index: SegmentIndex | None = None
        # Shared with retention (``recording.recordings``): the segment files running sessions
        # read, so a disk that fills never deletes a recording while it is being sent.
        self.protected = protected if protected is not None else set()
        self._held: set[str] = set()
        self.running: dict[str, _Session] = {}
        self.started = 0
        self.ended: list[str] = []  # reasons, newest last (bounded)

    # -- requests (from ControlReader, on the loop) -------------------------------------------

    async def handle(
        self, group: HubGroup, sender: bytes, message: PlaybackRequest | RecordingsRequest
    ) -> None:
        if group.group != "control" or message.camera != group.camera:
            log.warning("%s: playback request for another camera ignored", group.key)
            return
        if isinstance(message, RecordingsRequest):
            listed, truncated = await asyncio.to_thread(self._listing, message)
            self.send(
                group,
                lambda seq: RecordingsAnswer(
                    camera=message.camera,
                    request=message.request,
                    spans=tuple(listed),
                    truncated=truncated,
                    seq=seq,
                ),
            )
            return
        await self._playback(group, message)

    async def _playback(self, group: HubGroup, message: PlaybackRequest) -> None:
        def refuse(error: str, detail: str, near: tuple[tuple[float, float], ...] = ()) -> None:
            log.info("%s: playback refused (%s): %s", group.key, error, detail)
            self.send(
                group,
                lambda seq: PlaybackAnswer(
                    camera=message.camera,
                    request=message.request,
                    seq=seq,
                    error=error,
                    detail=detail[:300],
                    nearby=near,
                ),
            )

        camera = message.camera
        if not self._room_for(camera):
            refuse("busy", "too many playbacks at once on this hub: try again when one ends")
            return
        try:
            plan, near = await asyncio.to_thread(self._plan, message)
        except (MediaError, StorageError) as e:
            refuse("unavailable", f"the recording cannot be read: {e}")
            return
        if plan is None:
            refuse("nothing_recorded", f"nothing of {camera} is recorded in that range", near)
            return
        live = self.groups.get(camera, "live")
        # New keys for every session: whoever steals one session's keys sees that one only.
        await live.worker.call(live.self_update)
        epoch = await live.worker.call(live.identity.epoch, live.group_id)
        session = _Session(camera, secrets.token_hex(16), plan)
        self.running[session.session_id] = session
        self._hold()
        self.send(
            group,
            lambda seq: PlaybackAnswer(
                camera=camera,
                request=message.request,
                seq=seq,
                session_id=session.session_id,
                epoch=epoch,
                start=plan.start,
                end=plan.end,
                duration=plan.duration,
                pieces=plan.pieces_count,
                bytes=plan.size,
            ),
        )
        session.task = asyncio.get_running_loop().create_task(
            self._serve(session, live), name=f"playback-{camera}"
        )
        self.started += 1
        log.info(
            "%s: playback %s… of %.1f s (%d pieces, %d bytes) started",
            camera,
            session.session_id[:8],
            plan.duration,
            plan.pieces_count,
            plan.size,
        )

    def _room_for(self, camera: str) -> bool:
        """Whether another session of ``camera`` may start; sessions whose viewer never came
        (a client that gave up waiting for the answer) make room, oldest first."""

        def full() -> bool:
            busy = sum(1 for s in self.running.values() if s.camera == camera)
            return len(self.running) >= MAX_SESSIONS or busy >= MAX_PER_CAMERA

        for session in list(self.running.values()):
            if not full():
                break
            if session.viewers == 0 and session.sent == 0 and session.task is not None:
                session.task.cancel()
                self.running.pop(session.session_id, None)
        return not full()

    def _hold(self) -> None:
        """Protect exactly the segment files of the running sessions (on the loop; retention
        only tests membership, so it may read the set from its thread meanwhile)."""
        held = {
            str(fragment.path.relative_to(self.recordings))
            for session in self.running.values()
            for fragment in session.plan.fragments
        }
        self.protected.difference_update(self._held - held)
        self.protected.update(held)
        self._held = held

    def _open_index(self) -> SegmentIndex | None:
        if self._index is None and self.index_path.exists():
            self._index = SegmentIndex(self.index_path)
        return self._index

    def _plan(
        self, message: PlaybackRequest
    ) -> tuple[PlaybackPlan | None, tuple[tuple[float, float], ...]]:
        """In a thread: the plan, or None and the spans recorded nearby."""
        index = self._open_index()
        if index is None:
            return None, ()
        plan = plan_playback(index, self.recordings, message.camera, message.start, message.end)
        if plan is not None:
            return plan, ()
        return None, tuple(nearby(index, message.camera, message.start, message.end, MAX_NEARBY))

    def _listing(self, message: RecordingsRequest) -> tuple[list[tuple[float, float]], bool]:
        index = self._open_index()
        if index is None:
            return [], False
        found = spans(index.between(message.camera, message.start, message.end))
        return found[:MAX_SPANS], len(found) > MAX_SPANS

    async def run(self) -> None:
        """Until cancelled; then every session ends (the hub is stopping)."""
        try:
            await asyncio.Event().wait()
        finally:
            tasks = [s.task for s in self.running.values() if s.task is not None]
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if self._index is not None:
                self._index.close()

    # -- one session -------------------------------------------------------------------------

    async def _serve(self, session: _Session, live: HubGroup) -> None:
        reason = "ended"
        ws: aiohttp.ClientWebSocketResponse | None = None
        signals: asyncio.Task[None] | None = None
        try:
            ws = await self.relay.live(session.session_id, role="publisher")
            signals = asyncio.create_task(_follow(ws, session))
            if not await self._wait(session, lambda: session.viewers > 0, self.join_timeout):
                reason = "no viewer joined"
                return
            reason = await self._send_all(session, live, ws)
        except asyncio.CancelledError:
            reason = "cancelled"
            raise
        except (RelayError, MediaError) as e:
            reason = f"failed: {e}"
            log.warning("%s: playback failed: %s", session.camera, e)
        except Exception:  # a playback must never take the hub down
            reason = "internal error"
            log.exception("%s: playback failed", session.camera)
        finally:
            if signals is not None:
                signals.cancel()
            if ws is not None:  # closed or not: gives its connection back
                with contextlib.suppress(Exception):
                    await ws.close()
            self.running.pop(session.session_id, None)
            self._hold()
            self.ended = [*self.ended[-31:], reason]
            log.info(
                "%s: playback %s… ended (%s): %d messages, %d bytes",
                session.camera,
                session.session_id[:8],
                reason,
                session.sent,
                session.bytes,
            )

    async def _send_all(
        self, session: _Session, live: HubGroup, ws: aiohttp.ClientWebSocketResponse
    ) -> str:
        in_flight: collections.deque[tuple[int, int]] = collections.deque()  # (index, bytes)
        pieces: Generator[tuple[bytes, bool, float], None, None] = session.plan.pieces()
        try:
            return await self._send_pieces(session, live, ws, pieces, in_flight)
        finally:
            pieces.close()  # its open segment file, now rather than when collected

    async def _send_pieces(
        self,
        session: _Session,
        live: HubGroup,
        ws: aiohttp.ClientWebSocketResponse,
        pieces: Iterator[tuple[bytes, bool, float]],
        in_flight: collections.deque[tuple[int, int]],
    ) -> str:
        total = session.plan.pieces_count
        number = 0
        while True:
            item = await asyncio.to_thread(next, pieces, None)
            if item is None:
                break
            piece, is_init, media_time = item
            number += 1
            for payload in chunks(
                session.session_id,
                session.sent,
                piece,
                is_init=is_init,
                media_time=media_time,
                final=number == total,
            ):
                ciphertext = await live.worker.call(
                    live.identity.encrypt, live.group_id, payload.encode()
                )

                def room(size: int = len(ciphertext)) -> bool:
                    while in_flight and in_flight[0][0] <= session.acked:
                        in_flight.popleft()
                    held = sum(b for _i, b in in_flight)
                    return not in_flight or (
                        len(in_flight) < WINDOW_MESSAGES and held + size <= WINDOW_BYTES
                    )

                if not await self._wait(session, room, self.stall_seconds):
                    return "the viewer left" if session.gone else "the viewer stopped reading"
                try:
                    await ws.send_bytes(ciphertext)
                except (ConnectionError, RuntimeError):
                    return "relay connection lost"
                in_flight.append((payload.index, len(ciphertext)))
                session.sent += 1
                session.bytes += len(ciphertext)
        last = session.sent - 1
        if await self._wait(session, lambda: session.acked >= last, FINAL_ACK_SECONDS):
            return "complete"
        return "sent; the viewer did not confirm the end"

    async def _wait(self, session: _Session, ready: Callable[[], bool], seconds: float) -> bool:
        """Until ``ready()`` (True), the viewer leaves, or ``seconds`` pass without progress."""
        while not ready():
            if session.gone:
                return False
            session.progress.clear()
            try:
                async with compat.timeout(seconds):
                    await session.progress.wait()
            except TimeoutError:
                return ready()
        return True


async def _follow(ws: aiohttp.ClientWebSocketResponse, session: _Session) -> None:
    """The relay's signals on the publisher socket: viewers, acknowledgements, leaving."""
    try:
        async for event in relay_signals(ws):
            kind = event.get("type")
            if kind in ("viewers", "viewer_left"):
                session.viewers = int(event.get("count", 0))
            elif kind == "ack":
                index = parse_ack(event)
                if index is not None:
                    # Only ever forward: a replayed old ack changes nothing.
                    session.acked = max(session.acked, min(index, session.sent - 1))
            elif kind == "no_viewers":
                session.gone = True
            session.progress.set()
    finally:
        session.gone = True
        session.progress.set()


__all__ = ["PlaybackSessions"]
