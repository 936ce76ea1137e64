"""A TCP proxy that stops one upload half-way, so that a test can kill the relay receiving it.

Between the hub and the load balancer it passes bytes both ways unchanged (WebSockets
included) until ``arm(mailbox, skip)``: the ``skip + 1``-th ``POST
/v1/mailboxes/{mailbox}/messages`` after that is forwarded up to the end of its headers and
no further. The balancer has then picked a relay, which waits for the body; ``held`` resolves
to the proxy's own port on that connection, which names the request in HAProxy's ``show sess``
(``src=127.0.0.1:PORT``). Whatever the balancer answers afterwards (a 502 once that relay is
gone) goes back to the hub, and the connection is closed: the hub sees its upload fail.
"""

from __future__ import annotations

import asyncio
import contextlib

CHUNK = 65536


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()


class UploadHold:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.held: asyncio.Future[int] | None = None
        self._pattern = b""
        self._skip = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def arm(self, mailbox: str, skip: int) -> asyncio.Future[int]:
        self._pattern = f"POST /v1/mailboxes/{mailbox}/messages ".encode()
        self._skip = skip
        self.held = asyncio.get_running_loop().create_future()
        return self.held

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _cut_at(self, data: bytes) -> int | None:
        """Where to stop forwarding ``data`` (after the held request's headers), if at all."""
        if self.held is None or self.held.done():
            return None
        start = data.find(self._pattern)
        if start < 0:
            return None
        if self._skip > 0:
            self._skip -= 1
            return None
        end = data.find(b"\r\n\r\n", start)
        return None if end < 0 else end + 4

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            self._tasks.discard(task)
            return
        down = asyncio.ensure_future(_pump(up_reader, writer))
        down.add_done_callback(lambda _: writer.close())  # the balancer closed: so do we
        try:
            port = int(up_writer.get_extra_info("sockname")[1])
            with contextlib.suppress(OSError):
                while data := await reader.read(CHUNK):
                    cut = self._cut_at(data)
                    up_writer.write(data if cut is None else data[:cut])
                    await up_writer.drain()
                    if cut is not None:
                        assert self.held is not None
                        self.held.set_result(port)
                        await down  # the balancer's answer, until it closes
                        break
        finally:
            down.cancel()
            writer.close()
            up_writer.close()
            self._tasks.discard(task)


__all__ = ["UploadHold"]
