"""Length-prefixed JSON frames: the wire of the local sockets (the hub's admin socket and the
running client's socket).

A frame is a 4-byte big-endian length, then that many bytes of UTF-8 JSON holding one object.
The reader names a limit; a larger length prefix is refused before anything is read, so a
confused or hostile local process cannot make the other side allocate much. A frame may be
followed by raw bytes its header announces (``read_exact``): a livestream's fMP4 pieces travel
that way, without JSON escaping.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

from privastead.errors import PrivasteadError, StorageError

_LENGTH = struct.Struct(">I")
_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107


def encode_frame(obj: dict[str, Any]) -> bytes:
    body = json.dumps(obj, separators=(",", ":")).encode()
    return _LENGTH.pack(len(body)) + body


async def read_frame(
    reader: asyncio.StreamReader, limit: int, error: type[PrivasteadError], what: str
) -> dict[str, Any] | None:
    """The next frame, or None at a clean end of stream before a frame started. Anything
    malformed raises ``error`` with a message naming ``what`` (e.g. "admin")."""
    try:
        head = await reader.readexactly(_LENGTH.size)
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise error(f"the {what} connection broke off inside a frame") from None
    (length,) = _LENGTH.unpack(head)
    if length > limit:
        raise error(f"{what} frame of {length} bytes is over the {limit}-byte limit")
    body = await read_exact(reader, length, error, what)
    try:
        value = json.loads(body)
    except ValueError:
        raise error(f"{what} frame is not JSON") from None
    if not isinstance(value, dict):
        raise error(f"{what} frame is not a JSON object")
    return value


async def read_exact(
    reader: asyncio.StreamReader, size: int, error: type[PrivasteadError], what: str
) -> bytes:
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise error(f"the {what} connection broke off inside a frame") from None


async def serve_private_socket(
    path: Path,
    accept: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    *,
    owner: str,
) -> asyncio.AbstractServer:
    """Listen on the Unix socket ``path``: 0600 in its own 0700 directory, which must belong to
    this user (``owner`` names that user in the error). The caller holds the data directory's
    locks, so a socket file already there is a dead process's and is replaced."""
    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise StorageError(f"{directory} must be a directory owned by {owner}")
    directory.chmod(0o700)
    path.unlink(missing_ok=True)  # noqa: ASYNC240 - once at start-up, a metadata call
    server = await asyncio.start_unix_server(accept, path=str(path))
    path.chmod(0o600)  # noqa: ASYNC240 - once at start-up, a metadata call
    return server


def peer_credentials(sock: Any) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket, from the kernel
    (``SO_PEERCRED``), never from anything the peer says."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size)
    pid, uid, gid = _CRED.unpack(raw)
    return int(pid), int(uid), int(gid)


def error_reply(exc: BaseException, server: str) -> dict[str, Any]:
    """An error frame; only our own errors keep their class and text (never a traceback)."""
    if isinstance(exc, PrivasteadError):
        return {"type": "error", "error": type(exc).__name__, "message": str(exc)}
    return {
        "type": "error",
        "error": "PrivasteadError",
        "message": f"{server} failed on this request ({type(exc).__name__}); see its log",
    }


def raise_remote(reply: dict[str, Any]) -> NoReturn:
    """Raise the error a reply carries as the same class of ``privastead.errors``."""
    name = str(reply.get("error", "PrivasteadError"))
    message = str(reply.get("message", "the request was refused"))
    raise _error_class(name)(message)


def _error_class(name: str) -> type[PrivasteadError]:
    """The class of our exception tree called ``name`` (only those: a peer names no other)."""
    stack: list[type[PrivasteadError]] = [PrivasteadError]
    while stack:
        cls = stack.pop()
        if cls.__name__ == name:
            return cls
        stack.extend(cls.__subclasses__())
    return PrivasteadError


__all__ = [
    "MAX_SOCKET_PATH",
    "encode_frame",
    "error_reply",
    "peer_credentials",
    "raise_remote",
    "read_exact",
    "read_frame",
]
