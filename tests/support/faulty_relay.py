"""A relay that misbehaves: an aiohttp proxy in front of the real one that drops, duplicates,
reorders, holds back, captures or delays what the hub uploads.

Like a hostile relay, it tells application messages from commits by the MLS framing's clear
content type (``privastead.crypto.peek``) and a mailbox's role by watching it (tests give it
the mailbox ids); it never holds a key. Every upload it does not forward at once is answered
with a made-up success, as a lying relay would. Faults (all may be switched while it runs):

- ``drop``, ``duplicate``, ``swap``: by the index of the application upload into
  ``mailbox`` (0, 1, 2 ...); a swapped upload is held and sent after the next one;
- ``drop_app``: mailboxes whose application messages are all dropped, resends included
  (commits and every other mailbox pass: the events group's notifications and clips vanish);
- ``hold_newest``: mailboxes whose newest application message is held back until a newer
  one arrives, and re-uploads (resends) of the held one dropped: the last event before a
  quiet spell never arrives, and no later seq reveals it;
- ``capture``: mailboxes whose application messages are kept in ``backlog`` instead of being
  delivered; ``replay(pause)`` releases them later one at a time (old heartbeats, slowly);
- ``delay``: every upload is forwarded that many seconds late (everything the hub sends);
- ``live_drop``, ``live_duplicate``, ``live_swap``: live channels are proxied (WebSocket both
  ways); these act on the binary frames a *publisher* sends, by their index within its
  connection, for the first ``live_faulty_sessions`` publisher connections (then the relay
  behaves): a dropped frame never reaches the viewers, a duplicated one reaches them twice,
  a swapped one is held and sent after the next.
- ``live_cut_viewer``, ``live_cut_publisher``: a proxied viewer's (publisher's) live socket
  is cut once it has carried that many binary frames (0: never; set on a running socket that
  carried more, at its next frame), on every connection, until ``live_cuts`` cuts were made
  in all (then the relay behaves). A cut aborts the TCP
  connection to that side (no close frame, as a broken network or a relay dropping it) and
  closes the one to the real relay, which sees the party leave without a word.
- ``substitute_pake``: ``"hub"`` or ``"device"``: in a short-code pairing, that side's PAKE
  message is replaced by one the relay made itself with a guessed code (the relay learns the
  nameplate from its own allocation answer), as a relay that runs the exchange would.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from privastead.crypto import ShortCodeExchange, peek
from privastead.errors import CryptoError
from privastead.protocol.short_code import exchange_context, frame, wordlist

UPLOAD = re.compile(r"/v1/mailboxes/([0-9a-f]{32})/messages")
FORWARDED = ("Authorization", "Content-Type", "Privastead-Message-Id", "Privastead-Push")

Upload = tuple[str, dict[str, str], bytes]  # path, headers, body


def _is_application(body: bytes) -> bool:
    try:
        return peek(body).content_type == "application"
    except CryptoError:
        return False


@dataclass
class FaultyRelay:
    upstream: str
    mailbox: str = ""  # the mailbox of the index-based faults (set once known)
    drop: set[int] = field(default_factory=set)
    duplicate: set[int] = field(default_factory=set)
    swap: set[int] = field(default_factory=set)  # held back, sent after the next one
    drop_app: set[str] = field(default_factory=set)
    hold_newest: set[str] = field(default_factory=set)
    capture: set[str] = field(default_factory=set)
    delay: float = 0.0
    substitute_pake: str = ""
    nameplates: dict[str, int] = field(default_factory=dict)  # mailbox -> nameplate it named
    done: list[tuple[str, int]] = field(default_factory=list)
    backlog: list[Upload] = field(default_factory=list)
    count: int = 0
    live_drop: set[int] = field(default_factory=set)
    live_duplicate: set[int] = field(default_factory=set)
    live_swap: set[int] = field(default_factory=set)
    live_faulty_sessions: int = 1_000_000
    live_sessions: int = 0  # publisher connections seen
    live_cut_viewer: int = 0
    live_cut_publisher: int = 0
    live_cuts: int = 1_000_000
    live_cut: int = 0  # cuts made
    _held: Upload | None = None
    _newest: dict[str, Upload] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _session: aiohttp.ClientSession | None = None
    _runner: web.AppRunner | None = None

    async def start(self, port: int) -> str:
        self._session = aiohttp.ClientSession()
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def replay(self, pause: float) -> int:
        """Deliver the captured backlog, oldest first, ``pause`` seconds apart; how many."""
        sent = 0
        while self.backlog:
            await self._forward("POST", *self.backlog.pop(0))
            sent += 1
            await asyncio.sleep(pause)
        return sent

    async def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> web.Response:
        assert self._session is not None
        async with self._session.request(
            method, self.upstream + path, headers=headers, data=body or None
        ) as resp:
            data = await resp.read()
            return web.Response(
                status=resp.status, body=data, content_type=resp.content_type or None
            )

    def _later(self, upload: Upload, seconds: float) -> None:
        async def send() -> None:
            await asyncio.sleep(seconds)
            await self._forward("POST", *upload)

        task = asyncio.ensure_future(send())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k in FORWARDED}
        path = request.path_qs
        match = UPLOAD.fullmatch(request.path)
        if request.method == "POST" and request.path == "/v1/nameplates":
            answer = await self._forward("POST", path, headers, body)
            if answer.status == 201 and isinstance(answer.body, bytes):
                given = json.loads(answer.body)
                self.nameplates[given["mailbox"]] = int(given["nameplate"])
            return answer
        if request.method != "POST" or match is None:
            return await self._forward(request.method, path, headers, body)
        if self.substitute_pake and match.group(1) in self.nameplates:
            body = self._substituted(match.group(1), body)
        fake = web.json_response({"seq": 0, "duplicate": False, "evicted": []}, status=201)
        upload = (path, headers, body)
        if self.delay > 0:
            self.done.append(("delay", 0))
            self._later(upload, self.delay)
            return fake
        mailbox = match.group(1)
        if not _is_application(body):
            return await self._forward("POST", path, headers, body)
        if mailbox in self.drop_app:
            self.done.append(("drop_app", 0))
            return fake
        if mailbox in self.capture:
            self.done.append(("capture", 0))
            self.backlog.append(upload)
            return fake
        if mailbox in self.hold_newest:
            held = self._newest.get(mailbox)
            if held is not None and held[2] == body:
                self.done.append(("drop_resend", 0))  # a resend of what we hold: gone again
                return fake
            self._newest[mailbox] = upload
            self.done.append(("hold", 0))
            if held is not None:
                await self._forward("POST", *held)
            return fake
        if mailbox != self.mailbox:
            return await self._forward("POST", path, headers, body)
        return await self._by_index(upload, fake)

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        """Proxy a WebSocket (live channels, subscriptions), faulting a publisher's frames
        and cutting live sockets."""
        assert self._session is not None
        live = request.path.startswith("/v1/live/")
        publisher = live and request.query.get("role") == "publisher"
        viewer = live and not publisher
        faulty = False
        if publisher:
            faulty = self.live_sessions < self.live_faulty_sessions
            self.live_sessions += 1
        headers = {k: v for k, v in request.headers.items() if k == "Authorization"}
        upstream = await self._session.ws_connect(
            self.upstream.replace("http", "ws", 1) + request.path_qs,
            headers=headers,
            max_msg_size=64 << 20,
        )
        ws = web.WebSocketResponse(max_msg_size=64 << 20)
        await ws.prepare(request)

        async def down() -> None:  # relay -> this side
            sent = 0
            async for msg in upstream:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await ws.send_str(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
                    sent += 1
                    if (
                        viewer
                        and 0 < self.live_cut_viewer <= sent
                        and await self._cut("live_cut_viewer", request, upstream)
                    ):
                        return
            await ws.close()

        pump = asyncio.ensure_future(down())
        held: bytes | None = None
        n = 0
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await upstream.send_str(msg.data)
                    continue
                if msg.type != aiohttp.WSMsgType.BINARY:
                    break
                frame, n = msg.data, n + 1
                if faulty and n - 1 in self.live_drop:
                    self.done.append(("live_drop", n - 1))
                    continue
                if faulty and n - 1 in self.live_swap:
                    self.done.append(("live_swap", n - 1))
                    held = frame
                    continue
                await upstream.send_bytes(frame)
                if (
                    publisher
                    and 0 < self.live_cut_publisher <= n
                    and await self._cut("live_cut_publisher", request, upstream)
                ):
                    break
                if faulty and n - 1 in self.live_duplicate:
                    self.done.append(("live_duplicate", n - 1))
                    await upstream.send_bytes(frame)
                if held is not None:
                    await upstream.send_bytes(held)
                    held = None
        finally:
            pump.cancel()
            await upstream.close()
        return ws

    async def _cut(
        self, kind: str, request: web.Request, upstream: aiohttp.ClientWebSocketResponse
    ) -> bool:
        """Cut a proxied live socket if cuts are left: the TCP connection to the party is
        aborted (it sees the connection break), the one to the real relay closed."""
        if self.live_cut >= self.live_cuts:
            return False
        self.done.append((kind, self.live_cut))
        self.live_cut += 1
        if request.transport is not None:
            request.transport.abort()
        await upstream.close()
        return True

    def _substituted(self, mailbox: str, body: bytes) -> bytes:
        """The relay's own PAKE message (a guessed code) in place of one side's."""
        side = self.substitute_pake
        if body != frame(side, "pake", body[6:]):  # not that side's PAKE frame
            return body
        nameplate = self.nameplates[mailbox]
        guess = "-".join([str(nameplate), *(secrets.choice(wordlist()) for _ in range(2))])
        context = exchange_context(mailbox, nameplate)
        mine = ShortCodeExchange(side, guess.encode(), context)
        self.done.append(("substitute_pake", nameplate))
        return frame(side, "pake", mine.pake_message())

    async def _by_index(self, upload: Upload, fake: web.Response) -> web.Response:
        path, headers, body = upload
        n, self.count = self.count, self.count + 1
        if n in self.drop:
            self.done.append(("drop", n))
            return fake
        if n in self.swap:
            self.done.append(("swap", n))
            self._held = upload
            self._later_flush()
            return fake
        response = await self._forward("POST", path, headers, body)
        if n in self.duplicate:
            self.done.append(("duplicate", n))
            again = dict(headers)
            again["Privastead-Message-Id"] = headers["Privastead-Message-Id"] + "-dup"
            await self._forward("POST", path, again, body)
        await self._flush()
        return response

    async def _flush(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            await self._forward("POST", *held)

    def _later_flush(self) -> None:
        async def flush() -> None:
            await asyncio.sleep(3.0)
            await self._flush()

        task = asyncio.ensure_future(flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


__all__ = ["FaultyRelay"]
