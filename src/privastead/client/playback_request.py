"""Asking the hub for recorded video: ``list_recordings``, ``open_playback``, ``fetch_playback``.

``open_playback(client, camera, start, end)`` is an async generator of the stream's whole
fMP4 pieces (init segment first), in the order the hub sent them:

1. sends a ``PlaybackRequest`` (a fresh random request id) in the camera's ``control`` group;
2. reads ``control`` until the hub's ``PlaybackAnswer`` for that id arrives; an answer with
   ``error`` raises (``NothingRecordedError`` lists the recorded spans nearby);
3. reads the ``live`` mailbox until the group is at the answer's epoch (the session's keys);
4. joins the relay live channel as a viewer, decrypts each frame with the ``live`` group
   (application messages from the hub only) and checks each ``PlaybackPayload``: this
   session's id, the next index, the init first, ``final`` on the last one; it acknowledges
   every message once handled, so the hub never has more in flight than the relay queues;
5. after the final message, checks the pieces and bytes against the answer.

Anything out of order, missing or cut short raises ``PlaybackIncompleteError``: a stream is
never handed on with a hole in it. A frame that does not decrypt (a replayed copy of one
already read, or junk) is skipped and counted: it cannot be part of the stream, and the index
check catches anything it displaced. ``fetch_playback`` writes the stream to ``FILE.part``
(0600), renames it only once complete, and asks again (``retries``) after an incomplete one.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import secrets
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from privastead.client.app import Client
from privastead.client.live_request import hub_plaintext, read_or_wait
from privastead.errors import (
    CameraUnavailableError,
    CryptoError,
    NothingRecordedError,
    PlaybackIncompleteError,
    RelayError,
    RelayUnavailableError,
)
from privastead.protocol.codec import Message
from privastead.protocol.playback import PlaybackPayload, ack_text
from privastead.protocol.playback_messages import (
    PlaybackAnswer,
    PlaybackRequest,
    RecordingsAnswer,
    RecordingsRequest,
    Span,
)
from privastead.relay.client import Subscription

ANSWER_TIMEOUT = 20.0  # seconds for the hub's answer and the session's commit
FRAME_TIMEOUT = 30.0  # seconds without a message before the stream counts as stalled
RETRIES = 2

Playback = AsyncGenerator[bytes, None]


@dataclass
class PlaybackStatus:
    """What a playback is doing, for progress lines; ``on_change(status)`` after each phase."""

    phase: str = "starting"  # requesting, catching up, waiting, receiving, complete, failed
    session_id: str = ""
    started: float = 0.0  # time.monotonic() of the request
    first_picture: float | None = None  # seconds from the request to the first fragment
    start: float = 0.0  # what the hub sends: wall-clock span, duration, pieces and bytes
    end: float = 0.0
    duration: float = 0.0
    pieces_total: int = 0
    bytes_total: int = 0
    pieces: int = 0  # received so far
    bytes: int = 0
    media_time: float = 0.0  # output seconds reached
    skipped: int = 0  # frames that did not decrypt (replayed or junk)
    attempts: int = 0
    error: str = ""
    on_change: Callable[[PlaybackStatus], None] | None = None

    def set(self, phase: str) -> None:
        self.phase = phase
        if self.on_change is not None:
            self.on_change(self)


def playback_status(st: PlaybackStatus) -> dict[str, Any]:
    """The status as JSON (progress frames of the client's local socket)."""
    names = (
        *("phase", "session_id", "first_picture", "start", "end", "duration"),
        *("pieces_total", "bytes_total", "pieces", "bytes", "media_time"),
        *("skipped", "attempts", "error"),
    )
    return {name: getattr(st, name) for name in names}


def when(seconds: float) -> str:
    """A wall-clock time for people: local time with its offset."""
    moment = datetime.datetime.fromtimestamp(seconds).astimezone()
    return moment.isoformat(timespec="seconds")


def describe_spans(spans: tuple[Span, ...] | list[Span]) -> str:
    if not spans:
        return "nothing is recorded within a day of it"
    return "recorded nearby: " + ", ".join(f"{when(a)} to {when(b)}" for a, b in spans)


async def list_recordings(
    client: Client, camera: str, start: float, end: float, *, timeout: float = ANSWER_TIMEOUT
) -> RecordingsAnswer:
    """The hub's recorded spans of ``camera`` overlapping [start, end)."""
    asker = _Asker(client, camera)
    client.listeners.append(asker.on_message)
    try:
        request = RecordingsRequest(camera=camera, request=asker.request_id, start=start, end=end)
        answer = await asker.ask(request, timeout, RecordingsAnswer)
        assert isinstance(answer, RecordingsAnswer)
        return answer
    finally:
        client.listeners.remove(asker.on_message)
        await asker.unsubscribe()


async def open_playback(
    client: Client,
    camera: str,
    start: float,
    end: float,
    *,
    status: PlaybackStatus | None = None,
    answer_timeout: float = ANSWER_TIMEOUT,
    frame_timeout: float = FRAME_TIMEOUT,
) -> Playback:
    """Yield the recording of ``camera`` from ``start`` to ``end`` (Unix seconds) as whole
    fMP4 pieces, init first; raises as the module says."""
    st = status or PlaybackStatus()
    st.started = time.monotonic()
    st.pieces = st.bytes = 0
    st.first_picture = None
    asker = _Asker(client, camera)
    client.listeners.append(asker.on_message)
    client.watching += 1  # key updates wait: see ``Client.update_keys_if_due``
    try:
        st.set("requesting")
        request = PlaybackRequest(camera=camera, request=asker.request_id, start=start, end=end)
        answer = await asker.ask(request, answer_timeout, PlaybackAnswer)
        assert isinstance(answer, PlaybackAnswer)
        _check_answer(answer, camera)
        st.session_id, st.start, st.end = answer.session_id, answer.start, answer.end
        st.duration, st.pieces_total, st.bytes_total = answer.duration, answer.pieces, answer.bytes
        st.set("catching up")
        live_entry, live = client.group_state(camera, "live")
        deadline = time.monotonic() + answer_timeout
        while live.epoch(live_entry.group_id) < answer.epoch:
            await asker.read("live", deadline, "the session's new keys")
        await asker.unsubscribe()
        ws = await client.relay.live(answer.session_id, role="viewer")
        st.set("waiting")
        try:
            async for piece in _Receiver(
                client, camera, answer, status=st, ws=ws, frame_timeout=frame_timeout
            ).pieces():
                yield piece
        finally:
            await ws.close()
        st.set("complete")
    except BaseException as e:
        st.error = str(e) or type(e).__name__
        st.set("failed")
        raise
    finally:
        client.watching -= 1
        client.listeners.remove(asker.on_message)
        await asker.unsubscribe()


def _check_answer(answer: PlaybackAnswer, camera: str) -> None:
    if answer.error == "nothing_recorded":
        raise NothingRecordedError(
            f"{answer.detail or 'nothing recorded in that range'}; {describe_spans(answer.nearby)}"
        )
    if answer.error:
        raise CameraUnavailableError(f"the hub cannot play back {camera}: {answer.detail}")


async def fetch_playback(
    client: Client,
    camera: str,
    start: float,
    end: float,
    out: Path,
    *,
    status: PlaybackStatus | None = None,
    retries: int = RETRIES,
    answer_timeout: float = ANSWER_TIMEOUT,
    frame_timeout: float = FRAME_TIMEOUT,
) -> PlaybackStatus:
    """Write the playback to ``out`` whole or not at all: ``out.part`` (0600) first, renamed
    once complete; an incomplete stream is asked for again up to ``retries`` times."""
    st = status or PlaybackStatus()
    part = out.with_name(out.name + ".part")
    for attempt in range(retries + 1):
        st.attempts = attempt + 1
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                stream = open_playback(
                    client,
                    camera,
                    start,
                    end,
                    status=st,
                    answer_timeout=answer_timeout,
                    frame_timeout=frame_timeout,
                )
                try:
                    async for piece in stream:
                        await asyncio.to_thread(f.write, piece)
                finally:
                    await stream.aclose()
                await asyncio.to_thread(f.flush)
                await asyncio.to_thread(os.fsync, f.fileno())
            part.replace(out)
            return st
        except (PlaybackIncompleteError, RelayUnavailableError):
            part.unlink(missing_ok=True)
            if attempt == retries:
                raise
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    raise AssertionError("unreachable")  # pragma: no cover


class _Asker:
    """Sends one request in ``control`` and waits for the hub's answer naming it."""

    def __init__(self, client: Client, camera: str) -> None:
        self.client, self.camera = client, camera
        self.request_id = secrets.token_hex(16)
        self.answers: list[Message] = []
        self.sub: Subscription | None = None

    def on_message(self, _camera: str, _group: str, message: Message) -> None:
        if getattr(message, "request", None) == self.request_id:
            self.answers.append(message)

    async def ask(self, request: Message, timeout: float, kind: type) -> Message:
        control, _ = self.client.group_state(self.camera, "control")
        live, _ = self.client.group_state(self.camera, "live")
        with contextlib.suppress(RelayError):  # news speed things up; polling still works
            self.sub = await self.client.relay.subscribe([control.mailbox, live.mailbox])
        await self.client.send_control(self.camera, request, wait=15.0)
        deadline = time.monotonic() + timeout
        while not any(isinstance(a, kind) for a in self.answers):
            await self.read("control", deadline, "the hub's answer")
        return next(a for a in self.answers if isinstance(a, kind))

    async def read(self, group: str, deadline: float, what: str) -> None:
        await read_or_wait(
            self.client, self.camera, group, self.sub, deadline, what, lambda: bool(self.answers)
        )

    async def unsubscribe(self) -> None:
        if self.sub is not None:
            with contextlib.suppress(Exception):
                await self.sub.close()
            self.sub = None


class _Receiver:
    """One session's frames checked into whole pieces."""

    def __init__(
        self,
        client: Client,
        camera: str,
        answer: PlaybackAnswer,
        *,
        status: PlaybackStatus,
        ws: aiohttp.ClientWebSocketResponse,
        frame_timeout: float,
    ) -> None:
        self.client, self.camera, self.answer, self.status, self.ws = (
            client,
            camera,
            answer,
            status,
            ws,
        )
        self.frame_timeout = frame_timeout
        self.entry, self.live = client.group_state(camera, "live")
        self.expected = 0

    def _fail(self, why: str) -> PlaybackIncompleteError:
        st = self.status
        return PlaybackIncompleteError(
            f"the playback of {self.camera} did not arrive whole ({why}; {st.pieces} of "
            f"{st.pieces_total} pieces): nothing was kept; ask again"
        )

    async def pieces(self) -> Playback:
        st, buffer, init_seen = self.status, bytearray(), False
        in_init: bool | None = None  # whether the piece being assembled is the init
        while True:
            payload = await self._next()
            if (in_init is not None and payload.is_init != in_init) or (
                payload.is_init == init_seen
            ):
                raise self._fail("the init segment is not alone and first")
            buffer += payload.data
            in_init = payload.is_init
            if payload.more:
                if payload.final:
                    raise self._fail("the last message says more follows")
                await self._ack(payload.index)
                continue
            piece, buffer, in_init = bytes(buffer), bytearray(), None
            init_seen = True
            st.pieces += 1
            st.bytes += len(piece)
            st.media_time = payload.media_time
            if not payload.is_init and st.first_picture is None:
                st.first_picture = time.monotonic() - st.started
                st.set("receiving")
            yield piece
            await self._ack(payload.index)
            if payload.final:
                break
        if st.pieces != self.answer.pieces or st.bytes != self.answer.bytes:
            raise self._fail(f"{st.bytes} bytes instead of {self.answer.bytes}")

    async def _next(self) -> PlaybackPayload:
        """The next message of this session, in order; raises on anything else."""
        while True:
            msg = await self._receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                if '"ended"' in msg.data or '"publisher_lost"' in msg.data:
                    raise self._fail("the stream ended early")
                continue
            if msg.type != aiohttp.WSMsgType.BINARY:
                raise self._fail("the relay connection was lost")
            payload = await self._decrypt(msg.data)
            if payload is None:
                self.status.skipped += 1
                continue
            if payload.session != self.answer.session_id:
                raise self._fail("a message of another session")
            if payload.index != self.expected:
                what = "repeated" if payload.index < self.expected else "missing"
                raise self._fail(f"message {self.expected} {what}, got {payload.index}")
            self.expected += 1
            return payload

    async def _receive(self) -> aiohttp.WSMessage:
        try:
            return await asyncio.wait_for(self.ws.receive(), self.frame_timeout)
        except (TimeoutError, asyncio.TimeoutError):
            raise self._fail(f"nothing for {self.frame_timeout:.0f} s") from None

    async def _ack(self, index: int) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_str(ack_text(index))

    async def _decrypt(self, frame: bytes) -> PlaybackPayload | None:
        async def resync() -> None:
            await self.client.sync_groups(self.camera, ("live",))

        data = await hub_plaintext(self.live, self.entry.group_id, frame, resync)
        if data is None:
            return None
        try:
            return PlaybackPayload.decode(data)
        except CryptoError:
            return None


__all__ = [
    "PlaybackStatus",
    "describe_spans",
    "fetch_playback",
    "list_recordings",
    "open_playback",
    "playback_status",
    "when",
]
