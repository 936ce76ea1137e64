"""Asking the running client: the caller's side of its local socket (``client.local_socket``).

:func:`call_running_client` returns None when no client serves the data directory (no socket
file, or a stale one left by a killed process: connecting is refused), so the caller does the
work itself; otherwise the answer, after passing each progress frame to ``on_progress`` and
each piece of a livestream to ``on_data``. Errors come back as the same
``privastead.errors`` class the client raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from privastead.errors import LocalSocketError
from privastead.protocol.frames import encode_frame, raise_remote, read_exact, read_frame

SOCKET_DIR = "run"
SOCKET_NAME = "app.sock"
MAX_REQUEST = 64 * 1024
MAX_REPLY = 4 * 1024 * 1024  # an events listing; live data comes as raw bytes after a header
MAX_DATA = 64 * 1024 * 1024  # one fMP4 piece (a 4K keyframe fragment is a few MB at most)
WHAT = "client socket"

Progress = Callable[[dict[str, Any]], Awaitable[None] | None]
Data = Callable[[bytes], Awaitable[None] | None]


def socket_path(root: Path) -> Path:
    """``<data_dir>/run/app.sock``: its own 0700 directory."""
    return root / SOCKET_DIR / SOCKET_NAME


async def call_running_client(
    root: Path,
    op: str,
    args: dict[str, Any] | None = None,
    *,
    on_progress: Progress | None = None,
    on_data: Data | None = None,
) -> dict[str, Any] | None:
    """Ask the client that owns the data directory ``root``; None when none runs (no socket
    file, or a stale one: connecting is refused), so the caller does the work itself.
    Errors come back as the same ``privastead.errors`` class the client raised."""
    path = socket_path(root)
    if not path.exists():
        return None
    try:
        reader, writer = await asyncio.open_unix_connection(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        return None  # a dead client's socket file: nobody listens
    except PermissionError:
        raise LocalSocketError(
            f"cannot reach the running client's socket {path}: run this command as the user "
            "that runs `privastead-app listen` or `ui`"
        ) from None
    try:
        writer.write(encode_frame({"op": op, "args": args or {}}))
        await writer.drain()
        while True:
            frame = await read_frame(reader, MAX_REPLY, LocalSocketError, WHAT)
            if frame is None:
                raise LocalSocketError(
                    "the running client closed the connection without an answer (did it "
                    "stop?); try again"
                )
            kind = frame.get("type")
            if kind == "result":
                result = frame.get("result", {})
                return dict(result) if isinstance(result, dict) else {}
            if kind == "error":
                raise_remote(frame)
            if kind == "data":
                piece = await _data(reader, frame)
                await _call(on_data, piece)
            elif kind == "progress":
                await _call(on_progress, frame)
    except ConnectionError:
        raise LocalSocketError("the connection to the running client broke off") from None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _data(reader: asyncio.StreamReader, frame: dict[str, Any]) -> bytes:
    """The raw bytes a ``data`` frame announces."""
    size = frame.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_DATA:
        raise LocalSocketError("the running client sent a malformed data frame")
    return await read_exact(reader, size, LocalSocketError, WHAT)


async def _call(callback: Callable[[Any], Awaitable[None] | None] | None, value: Any) -> None:
    if callback is not None:
        pending = callback(value)
        if inspect.isawaitable(pending):
            await pending


__all__ = ["MAX_REQUEST", "WHAT", "call_running_client", "socket_path"]
