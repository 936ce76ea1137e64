"""A client that writes raw bytes on an asyncio socket and parses what comes back, so that a
test decides exactly what arrives in which TCP write and on which connection, and reads
only when it means to: HTTP/1.1 requests and answers, and the client's side of a
``/v1/ws`` subscription (RFC 6455 framing by hand)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from privastead.compat import Self

ANSWER_WAIT = 20.0  # seconds a test waits for an answer the relay owes


@dataclass
class Answer:
    version: str
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes

    @property
    def closes(self) -> bool:
        """The relay said it closes the connection after this answer."""
        if self.headers.get("connection", "").lower() == "close":
            return True
        return self.version == "HTTP/1.0" and "keep-alive" not in self.headers.get("connection", "")

    def json(self) -> Any:
        return json.loads(self.body)

    def outcome(self) -> tuple[object, ...]:
        """What the differential compares: the status and the error code, or the JSON."""
        try:
            data = json.loads(self.body)
        except ValueError:
            return (self.status, "not JSON", hashlib.sha256(self.body).hexdigest()[:16])
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            return (self.status, data["error"].get("code"))
        return (self.status, data)


class Conn:
    """One client TCP connection: requests are written as the bytes given, answers parsed."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.closed = False  # by the relay (an EOF or a reset was seen), or by us

    @classmethod
    async def open(cls, port: int) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        return cls(reader, writer)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def send(self, data: bytes) -> bool:
        """False if the relay had closed the connection."""
        try:
            self.writer.write(data)
            await self.writer.drain()
        except OSError:  # ConnectionResetError, BrokenPipeError
            self.closed = True
            return False
        return True

    async def answer(self, wait: float = ANSWER_WAIT) -> Answer | None:
        """The next final answer (1xx skipped); None if the connection ended first.
        ``TimeoutError`` if nothing came within ``wait`` seconds."""
        try:
            return await asyncio.wait_for(self._read(), wait)
        # First: TimeoutError is an OSError, and asyncio's a distinct one before Python 3.11.
        except (TimeoutError, asyncio.TimeoutError) as exc:
            raise TimeoutError(f"no answer within {wait} s") from exc
        except (asyncio.IncompleteReadError, OSError):
            self.closed = True
            return None

    async def request(self, data: bytes, wait: float = ANSWER_WAIT) -> Answer:
        await self.send(data)
        answer = await self.answer(wait)
        assert answer is not None, "the relay closed the connection without an answer"
        return answer

    async def ended(self, wait: float) -> bool:
        """Whether the relay closes the connection within ``wait`` seconds (no more bytes)."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), wait)
        except (TimeoutError, asyncio.TimeoutError):
            return False
        except OSError:
            data = b""
        self.closed = self.closed or data == b""
        return data == b""

    async def close(self) -> None:
        self.closed = True
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()

    async def _read(self) -> Answer:
        while True:
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            version, status, _ = (lines[0] + " ").split(" ", 2)
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            code = int(status)
            if 100 <= code < 200:
                continue  # 100 Continue: the final answer follows
            if headers.get("transfer-encoding", "").lower() == "chunked":
                body = await self._chunked()
            elif "content-length" in headers:
                body = await self.reader.readexactly(int(headers["content-length"]))
            elif code in (204, 304):
                body = b""
            else:
                body = await self.reader.read()
            return Answer(version, code, headers, body)

    async def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")  # no trailers from aiohttp
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


def http_request(
    method: str,
    target: str,
    headers: Sequence[tuple[str, str | bytes]],
    body: bytes = b"",
    version: str = "HTTP/1.1",
) -> bytes:
    lines = [f"{method} {target} {version}".encode()]
    for name, value in headers:
        lines.append(
            name.encode() + b": " + (value if isinstance(value, bytes) else value.encode())
        )
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def ws_frame(payload: bytes) -> bytes:
    """A client's text frame (masked, as RFC 6455 wants from clients)."""
    mask = os.urandom(4)
    n = len(payload)
    size = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return b"\x81" + size + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def ws_text(conn: Conn) -> Any:
    """The next text frame from the relay, as JSON (other frames are skipped)."""
    while True:
        first, second = await asyncio.wait_for(conn.reader.readexactly(2), ANSWER_WAIT)
        n = second & 0x7F
        if n >= 126:
            n = int.from_bytes(await conn.reader.readexactly(2 if n == 126 else 8), "big")
        data = await conn.reader.readexactly(n)
        if first & 0x0F == 1:
            return json.loads(data)


async def ws_subscribe(conn: Conn, token: str, box: str) -> None:
    """Upgrade ``conn`` to ``/v1/ws`` with ``token`` and subscribe to ``box``."""
    await conn.send(
        http_request(
            "GET",
            "/v1/ws",
            [
                ("Host", "relay"),
                ("Authorization", f"Bearer {token}"),
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Version", "13"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ],
        )
    )
    head = await asyncio.wait_for(conn.reader.readuntil(b"\r\n\r\n"), ANSWER_WAIT)
    assert head.startswith(b"HTTP/1.1 101"), head
    await conn.send(ws_frame(json.dumps({"type": "subscribe", "mailboxes": [box]}).encode()))
    assert await ws_text(conn) == {"type": "subscribed", "mailboxes": [box], "missing": []}
