"""Sending a blob file as a response body, with as few thread hops as possible.

aiohttp's ``FileResponse`` pays three thread-pool round trips per request (stat+open,
close, and, under uvloop which has no ``loop.sendfile``, one more per 256 KiB read). Our
blobs are immutable files whose size the index already knows, so this response opens the
file on the loop (a metadata call on a local disk), then uses the kernel's zero-copy
``sendfile`` when the loop has it (the stdlib loop does) and otherwise reads with ``pread``
in a worker thread, 1 MiB at a time.

Under uvloop, which has no ``loop.sendfile``, the body goes to the socket with ``sendfile``
directly from the event loop, as far as the socket takes it without waiting, when that is
safe: a plain TCP or Unix socket (not TLS), the headers already handed to the kernel (the
transport's buffer empty, so nothing of ours can overtake them), and the file's pages in
memory (an ``RWF_NOWAIT`` read of its last byte says so: a blob on a slow disk is read in a
thread, never on the loop). The rest, if the socket's buffer filled, goes the ``pread`` way
through the transport, which then waits for the client. 1 MiB downloads cost the relay less
than half the CPU this way (relay-throughput.md).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from privastead.errors import StorageError
from privastead.relay.blobs import BlobNotFoundError

if TYPE_CHECKING:
    from privastead.relay.backends.s3 import S3BlobStore
    from privastead.relay.metrics import Metrics

_CHUNK = 1024 * 1024
# Blobs up to this size are read whole on the event loop: a thread hop would cost more than
# the copy, and such blobs were written moments ago (page cache). A cold read of this much
# holds the loop for about one disk access.
SMALL_BLOB = 256 * 1024


_GONE = json.dumps(
    {"error": {"code": "message_not_found", "message": "no such message (acknowledged or expired)"}}
).encode()


class BlobResponse(web.StreamResponse):
    """The file is opened only when the response is sent, so nothing can leak a descriptor."""

    def __init__(self, path: Path, size: int, headers: dict[str, str], metrics: Metrics) -> None:
        super().__init__(headers=headers)
        self._metrics = metrics
        self._path = path
        self.content_type = "application/octet-stream"
        self.content_length = size

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return await super().prepare(request)
        fd = open_blob(self._path)
        if fd is None:  # acknowledged by every device between the lookup and now
            self.set_status(404)
            self.content_type = "application/json"
            self.content_length = len(_GONE)
            writer = await super().prepare(request)
            await super().write(_GONE)
            await super().write_eof()
            return writer
        self._fd = fd
        try:
            writer = await super().prepare(request)
            size = self.content_length or 0
            transport = request.transport
            if transport is None:
                raise ConnectionResetError("connection lost")
            offset = 0
            if not _tls(transport):  # under TLS every byte is encrypted in user space
                try:
                    with os.fdopen(os.dup(self._fd), "rb") as f:
                        await asyncio.get_running_loop().sendfile(transport, f, 0, size)
                    offset = size
                except NotImplementedError:  # uvloop
                    offset = _send_direct(writer, transport, self._fd, size)
                self._metrics.inc("relay_sendfile_bytes_total", offset)
            while offset < size:
                want = min(_CHUNK, size - offset)
                if size <= SMALL_BLOB:
                    # A small blob was written moments ago and is in the page cache: a
                    # thread hop would cost more than the copy.
                    chunk = os.pread(self._fd, want, offset)
                else:
                    chunk = await asyncio.to_thread(os.pread, self._fd, want, offset)
                if not chunk:
                    raise ConnectionResetError("blob shorter than its index entry") from None
                await super().write(chunk)
                offset += len(chunk)
            await super().write_eof()
            return writer
        finally:
            os.close(self._fd)
            self._fd = -1


def _send_direct(
    writer: AbstractStreamWriter | None, transport: asyncio.Transport, fd: int, size: int
) -> int:
    """Bytes of the file at ``fd`` the kernel took straight from the page cache for the
    socket under ``transport`` (not TLS: the caller checked), without waiting (0 where that
    is not safe: see above)."""
    sock = transport.get_extra_info("socket")
    if writer is None or sock is None or not hasattr(os, "RWF_NOWAIT"):
        return 0
    try:  # the last page cached: the file was just written or read, the rest is too
        os.preadv(fd, [bytearray(1)], size - 1, os.RWF_NOWAIT)
    except OSError:  # BlockingIOError: on disk only; or a file system without the flag
        return 0
    writer.send_headers()
    if transport.get_write_buffer_size():
        return 0  # the headers wait in the transport: our bytes must not overtake them
    out, offset = sock.fileno(), 0
    while offset < size:
        try:
            sent = os.sendfile(out, fd, offset, size - offset)
        except BlockingIOError:
            break  # the socket's buffer is full: the transport waits for the client
        except OSError as exc:  # the client went away
            raise ConnectionResetError(str(exc)) from None
        if sent == 0:
            raise ConnectionResetError("blob shorter than its index entry")
        offset += sent
    return offset


def _tls(transport: asyncio.BaseTransport) -> bool:
    return (
        transport.get_extra_info("sslcontext") is not None
        or transport.get_extra_info("ssl_object") is not None
    )


def read_small_blob(path: Path, size: int) -> bytes | None:
    """The whole file (``SMALL_BLOB`` at most), or None if it vanished (acknowledged)."""
    fd = open_blob(path)
    if fd is None:
        return None
    try:
        data = os.pread(fd, size, 0)
    finally:
        os.close(fd)
    if len(data) != size:  # nothing sent yet: a storage failure, answered as such
        raise StorageError("blob shorter than its index entry")
    return data


def open_blob(path: Path) -> int | None:
    """A descriptor for ``path``, or None if it vanished (acknowledged meanwhile)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


async def stream_object(
    request: web.Request, blobs: S3BlobStore, name: str, headers: dict[str, str]
) -> web.StreamResponse | None:
    """Stream one object from the S3 store to the client, a chunk at a time (the relay never
    holds a whole blob); None if it is gone. A failure once bytes are sent can only close
    the connection: the client sees fewer bytes than Content-Length and retries."""
    try:
        async with blobs.reader(name) as obj:
            response = web.StreamResponse(headers=headers)
            response.content_type = "application/octet-stream"
            response.content_length = obj.size
            await response.prepare(request)
            try:
                async for chunk in obj.chunks():
                    await response.write(chunk)
            except StorageError as exc:
                raise ConnectionResetError(f"object store failed mid-download: {exc}") from exc
            await response.write_eof()
            return response
    except BlobNotFoundError:
        return None


__all__ = ["SMALL_BLOB", "BlobResponse", "open_blob", "read_small_blob", "stream_object"]
