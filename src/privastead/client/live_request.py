"""Asking the hub for a livestream and playing it: ``open_live`` and ``live_opener``.

``open_live(syncer, camera)`` is an async generator of playable fMP4 bytes (init segment
first, then media fragments, each starting where the previous one ended):

1. sends a ``LiveRequest`` (a fresh random request id) in the camera's ``control`` group;
2. reads ``control`` until the hub's ``LiveAnswer`` for that id arrives (woken by the relay's
   WebSocket; an answer with ``error`` raises ``CameraUnavailableError``);
3. reads the ``live`` mailbox until the group is at the answer's epoch: the session's
   self-update commit must be processed before its fragments decrypt;
4. joins the relay live channel as a viewer and decrypts each frame with the ``live`` group,
   accepting only application messages from the hub (the group's committer: no other member
   may inject pictures), and hands the ``LivePayload``s to ``LiveAssembler`` (keyframe resync
   after a gap);
5. on ``aclose()``, the time limit or the end of the session, sends ``LiveStop`` and closes
   the socket.

A frame of a later epoch (the hub folded a key update mid-session) makes it read the ``live``
mailbox again and retry. The socket closing without the relay's ``ended`` means the relay
connection was lost (the relay process died): the viewer joins the same session id again
(behind a load balancer it leads to a surviving relay, where the hub's publisher comes back
too) and plays on from the next keyframe, the same fMP4 stream to its reader; the relay's
``publisher_lost`` (the hub's socket broke, the viewer's did not) is waited out the same way.
Only when no picture comes back within ``LIVE_REJOIN_SECONDS``, or the session was cut more
than ``LIVE_MAX_RESUMES`` times (a relay that keeps cutting it), does ``RelayUnavailableError``
say so; the caller may then ask again.
``LiveStatus`` lets a caller (the CLI's status lines) follow the phases and counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from privastead import compat
from privastead.client.app import Client
from privastead.client.live import LiveAssembler
from privastead.crypto import Identity
from privastead.errors import (
    CameraUnavailableError,
    CryptoError,
    PrivasteadError,
    RelayError,
    RelayUnavailableError,
    WrongEpochError,
)
from privastead.protocol.codec import Message
from privastead.protocol.live import LivePayload, live_signal
from privastead.protocol.messages import LiveAnswer, LiveRequest, LiveStop
from privastead.relay.client import LIVE_MAX_RESUMES, LIVE_REJOIN_SECONDS, Subscription

log = logging.getLogger(__name__)

ANSWER_TIMEOUT = 20.0  # seconds for the hub's answer and the session's commit
NEWS_WAIT = 1.0  # the longest wait between mailbox reads when the relay sends no news

LiveStream = AsyncGenerator[bytes, None]


@dataclass
class LiveStatus:
    """What a livestream is doing, for status lines; ``on_change(status)`` after each phase."""

    phase: str = "starting"  # requesting, catching up, waiting, playing, ended
    session_id: str = ""
    started: float = 0.0  # time.monotonic() of the request
    first_picture: float | None = None  # seconds from the request to the first media bytes
    fragments: int = 0  # media fragments written
    bytes: int = 0  # plaintext bytes written (init included)
    dropped: int = 0  # frames dropped while waiting for a keyframe, or undecryptable
    arrived: float = 0.0  # Unix time the newest fragment's newest frame reached the hub
    ended: str = ""  # why it ended
    interruptions: int = 0  # times its socket or the hub's was lost and the stream went on
    on_change: Callable[[LiveStatus], None] | None = None

    def set(self, phase: str) -> None:
        self.phase = phase
        if self.on_change is not None:
            self.on_change(self)


async def open_live(
    syncer: Client,
    camera: str,
    *,
    seconds: float | None = None,
    status: LiveStatus | None = None,
    answer_timeout: float = ANSWER_TIMEOUT,
) -> LiveStream:
    """Yield ``camera``'s livestream as fMP4 bytes until the session ends, ``seconds`` pass or
    the caller's ``aclose()``. Raises ``CameraUnavailableError`` (the hub refused or did not
    answer), ``RelayUnavailableError`` (relay unreachable or lost mid-session) or
    ``ConfigError`` (not paired with that camera)."""
    view = _Viewer(syncer, camera, status or LiveStatus())
    syncer.listeners.append(view.on_message)
    syncer.watching += 1  # key updates wait: see ``Client.update_keys_if_due``
    try:
        answer = await view.request(answer_timeout)
        async for piece in view.play(answer.session_id, seconds):
            yield piece
    finally:
        syncer.watching -= 1
        await view.close()


class _Viewer:
    def __init__(self, syncer: Client, camera: str, status: LiveStatus) -> None:
        self.syncer, self.camera, self.status = syncer, camera, status
        status.started = time.monotonic()
        self.control, _ = syncer.group_state(camera, "control")
        self.live_entry, self.live = syncer.group_state(camera, "live")
        self.request_id = secrets.token_hex(16)
        self.answers: list[LiveAnswer] = []
        self.sub: Subscription | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None  # the viewer socket of the moment
        self.first_frame_timeout = ANSWER_TIMEOUT

    def on_message(self, _camera: str, _group: str, message: Message) -> None:
        if isinstance(message, LiveAnswer) and message.request == self.request_id:
            self.answers.append(message)

    async def request(self, answer_timeout: float) -> LiveAnswer:
        """Ask, wait for the answer, then for the session's commit in ``live``."""
        with contextlib.suppress(RelayError):  # news speed things up; polling still works
            self.sub = await self.syncer.relay.subscribe(
                [self.control.mailbox, self.live_entry.mailbox]
            )
        self.status.set("requesting")
        request = LiveRequest(camera=self.camera, session_id=self.request_id)
        await self.syncer.send_control(self.camera, request, wait=15.0)
        deadline = time.monotonic() + answer_timeout
        while not self.answers:
            await self._read("control", deadline, "the hub's answer")
        answer = self.answers[0]
        if answer.error:
            raise CameraUnavailableError(f"the hub cannot livestream {self.camera}: {answer.error}")
        self.status.session_id = answer.session_id
        self.status.set("catching up")
        while self.live.epoch(self.live_entry.group_id) < answer.epoch:
            await self._read("live", deadline, "the session's new keys")
        await self._unsubscribe()
        return answer

    async def _read(self, group: str, deadline: float, what: str) -> None:
        await read_or_wait(
            self.syncer, self.camera, group, self.sub, deadline, what, lambda: bool(self.answers)
        )

    async def play(self, session_id: str, seconds: float | None) -> LiveStream:
        ws = self.ws = await self.syncer.relay.live(session_id, role="viewer")
        self.status.set("waiting")
        try:
            async for piece in self._play(ws, session_id, seconds):
                yield piece
        finally:
            await self._close_socket()

    async def _play(
        self, ws: aiohttp.ClientWebSocketResponse, session_id: str, seconds: float | None
    ) -> LiveStream:
        status, assembler = self.status, LiveAssembler()
        loop = asyncio.get_running_loop()
        stop_at = None if seconds is None else loop.time() + seconds
        # A session that never sends a picture (its publisher died before we joined) ends;
        # so does one whose pictures do not come back after its relay was lost.
        give_up: float | None = loop.time() + self.first_frame_timeout
        while True:
            limit = stop_at if give_up is None else min(stop_at or give_up, give_up)
            msg = await _receive(ws, None if limit is None else limit - loop.time())
            if msg is None:  # a time limit
                self._time_is_up(give_up is not None and loop.time() >= give_up)
                return
            if msg.type == aiohttp.WSMsgType.TEXT:
                signal = _signal(msg.data)
                if signal == "ended":
                    status.ended = "the hub ended the session"
                    return
                if signal != "publisher_lost":
                    continue
            if msg.type != aiohttp.WSMsgType.BINARY:
                # This socket was lost (join again), or the hub's (``publisher_lost``: it
                # joins again, this socket stays): the same session goes on, from a keyframe.
                ws = await self._resume(ws, session_id, rejoin=msg.type != aiohttp.WSMsgType.TEXT)
                assembler.waiting = True
                give_up = loop.time() + LIVE_REJOIN_SECONDS
                continue
            give_up = None
            payload = await self._decrypt(msg.data)
            if payload is None:
                status.dropped += 1
                assembler.waiting = True  # what follows needs a keyframe
                continue
            before = assembler.dropped
            if not payload.is_init:
                status.arrived = payload.arrived
            for piece in assembler.accept(payload):
                if status.first_picture is None:
                    status.first_picture = time.monotonic() - status.started
                if status.phase != "playing":  # the first picture, or the first after a resume
                    status.set("playing")
                if piece is not assembler.init:
                    status.fragments += 1
                status.bytes += len(piece)
                yield piece
            status.dropped += assembler.dropped - before

    async def _resume(
        self, ws: aiohttp.ClientWebSocketResponse, session_id: str, *, rejoin: bool
    ) -> aiohttp.ClientWebSocketResponse:
        """The socket to go on with after an interruption (``rejoin``: this one was lost).
        Each one is counted: past ``LIVE_MAX_RESUMES`` the stream ends, as the hub gives up on
        the session at the same count."""
        status = self.status
        status.interruptions += 1
        status.set("reconnecting")
        if status.interruptions > LIVE_MAX_RESUMES:
            status.ended = "the relay kept cutting the stream"
            raise RelayUnavailableError(
                f"the livestream was cut {status.interruptions} times, and the hub gives up "
                "on a session cut that often: the relay or the network keeps dropping the "
                "connection (check them, then ask for the livestream again)"
            )
        if not rejoin:
            return ws
        again = await self._rejoin(session_id)
        if again is None:
            status.ended = "relay connection lost"
            raise RelayUnavailableError(
                "the relay connection was lost: the livestream ended (ask for it again)"
            )
        return again

    def _time_is_up(self, gave_up: bool) -> None:
        """Why a time limit ended the stream; raises when that is a failure (``gave_up``: no
        picture came, at the start or after the relay was lost)."""
        if not gave_up:
            self.status.ended = "time limit reached"
        elif self.status.first_picture is not None:
            self.status.ended = "relay connection lost"
            raise RelayUnavailableError(
                "the relay connection was lost and the livestream did not come back "
                "(ask for it again)"
            )
        else:
            self.status.ended = "no picture"
            raise CameraUnavailableError("the hub did not start the stream in time")

    async def _rejoin(self, session_id: str) -> aiohttp.ClientWebSocketResponse | None:
        """The session joined again as a viewer (None if the relay stayed unreachable)."""
        await self._close_socket()
        self.ws = await self.syncer.relay.rejoin_live(session_id, "viewer")
        if self.ws is not None:
            self.status.set("waiting")
        return self.ws

    async def _close_socket(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
            self.ws = None

    async def _decrypt(self, frame: bytes) -> LivePayload | None:
        """The payload of one live frame, or None if it is not a readable message from the hub."""

        async def resync() -> None:
            await self.syncer.sync_groups(self.camera, ("live",))

        data = await hub_plaintext(self.live, self.live_entry.group_id, frame, resync)
        if data is None:
            return None
        try:
            return LivePayload.decode(data)
        except CryptoError:
            return None

    async def _unsubscribe(self) -> None:
        if self.sub is not None:
            with contextlib.suppress(Exception):
                await self.sub.close()
            self.sub = None

    async def close(self) -> None:
        """Tell the hub (best effort: the relay may be gone) and let go of everything."""
        self.syncer.listeners.remove(self.on_message)
        await self._unsubscribe()
        if self.status.session_id:
            stop = LiveStop(camera=self.camera, session_id=self.status.session_id)
            with contextlib.suppress(PrivasteadError, OSError, TimeoutError):
                async with compat.timeout(5):
                    await self.syncer.send_control(self.camera, stop)
                    # Read our own LiveStop back now: this process knows it as its own upload,
                    # a later reader of this directory would count it as undecryptable.
                    await self.syncer.sync_groups(self.camera, ("control",))
        self.status.ended = self.status.ended or "stopped"
        self.status.set("ended")


async def _receive(
    ws: aiohttp.ClientWebSocketResponse, seconds: float | None
) -> aiohttp.WSMessage | None:
    """The next socket message, or None once ``seconds`` have passed."""
    if seconds is not None and seconds <= 0:
        return None
    try:
        return await asyncio.wait_for(ws.receive(), seconds)
    except (TimeoutError, asyncio.TimeoutError):
        return None


def _signal(text: str) -> str:
    """The type of a relay's text signal on a viewer socket ("" if it is not one)."""
    event = live_signal(text)
    kind = None if event is None else event.get("type")
    return kind if isinstance(kind, str) else ""


def live_opener(syncer: Client) -> Callable[[str], LiveStream]:
    """A ``client.ui.source.LiveOpener`` over ``syncer`` (the UI's own receive loop)."""
    return lambda camera: open_live(syncer, camera)


async def read_or_wait(  # noqa: PLR0917 - one step of every ask-the-hub loop
    client: Client,
    camera: str,
    group: str,
    sub: Subscription | None,
    deadline: float,
    what: str,
    answered: Callable[[], bool],
) -> None:
    """Read one group's mailbox, then wait for relay news on ``sub`` (or a short while);
    past ``deadline`` say why nothing came (the relay, or the hub not answering)."""
    if time.monotonic() > deadline:
        if client.relay_error:
            raise RelayUnavailableError(f"waiting for {what}: {client.relay_error}")
        raise CameraUnavailableError(
            f"no answer from the hub ({what}): is `privastead-hub run` running and connected?"
        )
    before = client.received
    await client.sync_groups(camera, (group,))
    if client.received != before or answered():
        return  # something arrived: look at it before waiting
    if sub is None:
        await asyncio.sleep(0.25)
        return
    with contextlib.suppress(TimeoutError, RelayError):
        async with compat.timeout(NEWS_WAIT):
            await sub.next_event()


async def hub_plaintext(
    live: Identity, group_id: bytes, frame: bytes, resync: Callable[[], Awaitable[None]]
) -> bytes | None:
    """The plaintext of one frame of a live channel (livestream or playback) if it is an
    application message from the hub, else None. A frame of a newer epoch means the hub
    rekeyed ``live`` for this session: ``resync`` reads the commit once and the frame is tried
    again."""
    for attempt in (0, 1):
        try:
            received = live.process(group_id, frame)
        except WrongEpochError:
            if attempt:
                return None
            await resync()
            continue
        except CryptoError:
            return None
        if received.kind != "application" or received.sender_index != live.committer(group_id):
            return None  # only the hub sends pictures
        return bytes(received.data)
    return None


__all__ = ["LiveStatus", "LiveStream", "hub_plaintext", "live_opener", "open_live", "read_or_wait"]
