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
from pathlib import Path
from typing import Any

from privastead.errors import AdminError
from privastead.hub.state.datadir import ADMIN_DIR, ADMIN_SOCKET, HubDataDir, as_data_dir
from privastead.protocol import frames
from privastead.protocol.frames import MAX_SOCKET_PATH, encode_frame, raise_remote

SOCKET_DIR = ADMIN_DIR
SOCKET_NAME = ADMIN_SOCKET
MAX_REQUEST = 64 * 1024
MAX_REPLY = 1024 * 1024


def socket_path(data: HubDataDir | Path) -> Path:
    """``<data_dir>/admin/hub.sock``: its own 0700 directory, so only the hub's user reaches it."""
    return as_data_dir(data).admin_socket


async def read_frame(reader: asyncio.StreamReader, limit: int) -> dict[str, Any] | None:
    """The next frame, or None at a clean end of stream before a frame started."""
    return await frames.read_frame(reader, limit, AdminError, "admin")


def error_reply(exc: BaseException) -> dict[str, Any]:
    """An error frame; only our own errors keep their class and text (never a traceback)."""
    return frames.error_reply(exc, "the hub")


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
