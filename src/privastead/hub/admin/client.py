"""The CLI's side of the admin socket: ask a running hub, or learn that none runs.

:func:`call_running_hub` returns None when no hub answers (no socket file, or a stale one left
by a killed hub: connecting is refused), so the caller does the work directly; otherwise the
hub's result, after passing each progress frame to ``on_progress``. Errors come back as the
same ``privastead.errors`` class the hub raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from privastead.errors import AdminError
from privastead.hub.admin.wire import MAX_REPLY, encode_frame, raise_remote, read_frame, socket_path
from privastead.hub.state.datadir import HubDataDir

Progress = Callable[[dict[str, Any]], Awaitable[None] | None]


async def call_running_hub(
    data_dir: HubDataDir | Path,
    op: str,
    args: dict[str, Any] | None = None,
    on_progress: Progress | None = None,
) -> dict[str, Any] | None:
    path = socket_path(data_dir)
    if not path.exists():
        return None
    try:
        reader, writer = await asyncio.open_unix_connection(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        return None  # a dead hub's socket file: nobody listens
    except PermissionError:
        raise AdminError(
            f"cannot reach the running hub's admin socket {path}: run this command as the "
            "user that runs `privastead-hub run`"
        ) from None
    try:
        writer.write(encode_frame({"op": op, "args": args or {}}))
        await writer.drain()
        while True:
            frame = await read_frame(reader, MAX_REPLY)
            if frame is None:
                raise AdminError(
                    "the running hub closed the admin connection without an answer (did it "
                    "stop?); check its log and try again"
                )
            kind = frame.get("type")
            if kind == "result":
                result = frame.get("result", {})
                return dict(result) if isinstance(result, dict) else {}
            if kind == "error":
                raise_remote(frame)
            if kind == "progress" and on_progress is not None:
                pending = on_progress(frame)
                if inspect.isawaitable(pending):
                    await pending
    except ConnectionError:
        raise AdminError("the admin connection to the running hub broke off") from None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def running_hub_pid(data_dir: HubDataDir | Path) -> int | None:
    """The running hub's pid, or None if no hub answers on its admin socket."""
    result = await call_running_hub(data_dir, "ping")
    return None if result is None else int(result.get("pid", 0))


__all__ = ["call_running_hub", "running_hub_pid"]
