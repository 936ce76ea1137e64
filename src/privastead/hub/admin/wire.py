"""The admin socket's wire format, shared by the running hub and the CLI (hub-admin.md).

A request or reply is one frame: a 4-byte big-endian length, then that many bytes of UTF-8
JSON holding one object. A request is ``{"op": NAME, "args": {...}}``; the hub answers with
zero or more ``{"type": "progress", ...}`` frames and then exactly one ``{"type": "result",
"result": {...}}`` or ``{"type": "error", "error": CLASS, "message": TEXT}``. Requests are
small (``MAX_REQUEST``); a larger length prefix is refused before anything is read, so a
confused or hostile local process cannot make the hub allocate much.
"""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path
from typing import Any, NoReturn

from privastead import errors
from privastead.errors import AdminError, PrivasteadError
from privastead.hub.state.datadir import ADMIN_DIR, ADMIN_SOCKET, HubDataDir, as_data_dir

SOCKET_DIR = ADMIN_DIR
SOCKET_NAME = ADMIN_SOCKET
MAX_REQUEST = 64 * 1024
MAX_REPLY = 1024 * 1024
# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107

_LENGTH = struct.Struct(">I")


def socket_path(data: HubDataDir | Path) -> Path:
    """``<data_dir>/admin/hub.sock``: its own 0700 directory, so only the hub's user reaches it."""
    return as_data_dir(data).admin_socket


def encode_frame(obj: dict[str, Any]) -> bytes:
    body = json.dumps(obj, separators=(",", ":")).encode()
    return _LENGTH.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader, limit: int) -> dict[str, Any] | None:
    """The next frame, or None at a clean end of stream before a frame started."""
    try:
        head = await reader.readexactly(_LENGTH.size)
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise AdminError("the admin connection broke off inside a frame") from None
    (length,) = _LENGTH.unpack(head)
    if length > limit:
        raise AdminError(f"admin frame of {length} bytes is over the {limit}-byte limit")
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise AdminError("the admin connection broke off inside a frame") from None
    try:
        value = json.loads(body)
    except ValueError:
        raise AdminError("admin frame is not JSON") from None
    if not isinstance(value, dict):
        raise AdminError("admin frame is not a JSON object")
    return value


def error_reply(exc: BaseException) -> dict[str, Any]:
    """An error frame; only our own errors keep their class and text (never a traceback)."""
    if isinstance(exc, PrivasteadError):
        return {"type": "error", "error": type(exc).__name__, "message": str(exc)}
    return {
        "type": "error",
        "error": "PrivasteadError",
        "message": f"the hub failed on this request ({type(exc).__name__}); see its log",
    }


def raise_remote(reply: dict[str, Any]) -> NoReturn:
    """Raise the error a reply carries as the same class of ``privastead.errors``."""
    name = str(reply.get("error", "PrivasteadError"))
    message = str(reply.get("message", "the running hub refused the request"))
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, PrivasteadError)):
        cls = PrivasteadError
    raise cls(message)


__all__ = [
    "MAX_REPLY",
    "MAX_REQUEST",
    "MAX_SOCKET_PATH",
    "encode_frame",
    "error_reply",
    "raise_remote",
    "read_frame",
    "socket_path",
]
