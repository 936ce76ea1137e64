"""A relay that misbehaves: an aiohttp proxy in front of the real one that drops, duplicates or
reorders the application messages uploaded into one mailbox.

Like a hostile relay, it tells application messages from commits by the MLS framing's clear
content type (``privastead.crypto.peek``); commits pass untouched. Faults are chosen by the
index of the application upload in that mailbox (0, 1, 2 ...). A dropped or held upload is
answered with a made-up success, as a lying relay would.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from privastead.crypto import peek
from privastead.errors import CryptoError

UPLOAD = re.compile(r"/v1/mailboxes/([0-9a-f]{32})/messages")
FORWARDED = ("Authorization", "Content-Type", "Privastead-Message-Id", "Privastead-Push")


def _is_application(body: bytes) -> bool:
    try:
        return peek(body).content_type == "application"
    except CryptoError:
        return False


@dataclass
class FaultyRelay:
    upstream: str
    mailbox: str = ""  # the mailbox to tamper with (set once known)
    drop: set[int] = field(default_factory=set)
    duplicate: set[int] = field(default_factory=set)
    swap: set[int] = field(default_factory=set)  # held back, sent after the next one
    done: list[tuple[str, int]] = field(default_factory=list)
    count: int = 0
    _held: tuple[str, dict[str, str], bytes] | None = None
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
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

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

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k in FORWARDED}
        path = request.path_qs
        match = UPLOAD.fullmatch(request.path)
        if (
            request.method != "POST"
            or match is None
            or match.group(1) != self.mailbox
            or not _is_application(body)
        ):
            return await self._forward(request.method, path, headers, body)
        n, self.count = self.count, self.count + 1
        fake = web.json_response({"seq": 0, "duplicate": False, "evicted": []}, status=201)
        if n in self.drop:
            self.done.append(("drop", n))
            return fake
        if n in self.swap:
            self.done.append(("swap", n))
            self._held = (path, headers, body)
            asyncio.get_running_loop().call_later(3.0, self._flush_later)
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

    def _flush_later(self) -> None:
        task = asyncio.ensure_future(self._flush())
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)


__all__ = ["FaultyRelay"]
