"""The running client's local socket: ask `listen` or `ui` instead of opening the state.

The process that owns a data directory (``privastead-app listen`` or ``ui``: it holds every
group's MLS state locked) serves ``<data_dir>/run/app.sock``, and ``status``, ``devices``,
``events``, ``clip``, ``live``, ``playback``, ``recordings``, ``sync`` and ``resync`` ask it
when it runs; when it does not they open the data directory themselves and print the same
lines (``client.queries`` answers both ways).

- The directory is made 0700 (and must belong to the client's user), the socket 0600; the
  peer's uid comes from the kernel (``SO_PEERCRED``) and must be ours (or root's).
- A socket file left by a killed client is stale: connecting is refused, so a command does
  the work itself; the next owner replaces the file (it binds only after locking the groups'
  state, so no other live client can own it).
- One request per connection, length-prefixed JSON (``protocol.frames``); requests are small.
  The caller's side, light enough for every command to import: ``client.local_call``.
  ``live`` streams: ``progress`` frames for each phase, ``data`` frames each followed by that
  many raw fMP4 bytes, then the result. If the caller goes away (Ctrl-C), the request is
  cancelled (a livestream then tells the hub with a ``LiveStop``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from privastead import compat
from privastead.client import queries
from privastead.client.app import Client
from privastead.client.live_request import LiveStatus, open_live
from privastead.client.local_call import MAX_REQUEST, WHAT, call_running_client, socket_path
from privastead.client.playback_request import PlaybackStatus, fetch_playback, playback_status
from privastead.client.timeline import timeline
from privastead.errors import LocalSocketError, PrivasteadError, StateLockedError
from privastead.protocol.frames import (
    MAX_SOCKET_PATH,
    encode_frame,
    error_reply,
    peer_credentials,
    read_frame,
    serve_private_socket,
)

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0  # a connection that sends no whole request by then is dropped

Handler = Callable[[dict[str, Any], asyncio.StreamWriter], Awaitable[dict[str, Any]]]


class LocalServer:
    """Answers the client's commands from the open ``client`` while it runs."""

    def __init__(self, client: Client, *, own_uid: int | None = None) -> None:
        self.client = client
        self.path = socket_path(client.data.root)
        self.own_uid = os.geteuid() if own_uid is None else own_uid
        self._server: asyncio.AbstractServer | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> bool:
        """Listen; False (logged) if the path cannot be a socket address on this system."""
        if len(os.fsencode(self.path)) > MAX_SOCKET_PATH:
            log.warning(
                "client socket path %s is too long for a Unix socket: other commands on this "
                "data directory need this process stopped (use a shorter --data-dir)",
                self.path,
            )
            return False
        # We hold the groups' locks: a socket file here is a dead client's, never a live one's.
        self._server = await serve_private_socket(self.path, self._accept, owner="this user")
        log.info("client socket: %s", self.path)
        return True

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
            self.path.unlink(missing_ok=True)
        for task in list(self._handlers):
            task.cancel()
        for task in list(self._handlers):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the caller went away
        except Exception:
            log.exception("client socket request failed")
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            _pid, uid, _gid = peer_credentials(writer.get_extra_info("socket"))
            if uid not in (self.own_uid, 0):
                raise LocalSocketError(
                    f"uid {uid} may not use this client: run the command as its user"
                )
            try:
                async with compat.timeout(REQUEST_TIMEOUT):
                    request = await read_frame(reader, MAX_REQUEST, LocalSocketError, WHAT)
            except TimeoutError:
                raise LocalSocketError(
                    f"no complete request within {REQUEST_TIMEOUT:.0f} s"
                ) from None
            if request is None:
                return
        except LocalSocketError as e:
            log.warning("client socket: %s", e)
            writer.write(encode_frame(error_reply(e, "the client")))
            await writer.drain()
            return
        op = asyncio.create_task(self._dispatch(request, writer))
        gone = asyncio.create_task(reader.read(1))  # EOF: the caller was interrupted
        try:
            await asyncio.wait({op, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not op.done():
                op.cancel()
                log.info("client socket: the caller went away; %s cancelled", request.get("op"))
            with contextlib.suppress(asyncio.CancelledError):
                await op
        if not op.cancelled():
            writer.write(encode_frame(op.result()))
            await writer.drain()

    async def _dispatch(
        self, request: dict[str, Any], writer: asyncio.StreamWriter
    ) -> dict[str, Any]:
        """Run the request; the final frame (result or error)."""
        name = request.get("op")
        args = request.get("args", {})
        try:
            if not isinstance(args, dict):
                raise LocalSocketError("client socket request: args must be an object")
            handler = self._handlers_by_op().get(str(name))
            if handler is None:
                raise LocalSocketError(f"unknown client socket request {name!r}")
            result = await handler(args, writer)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            if not isinstance(e, PrivasteadError):
                log.exception("client socket %s failed", name)
            return error_reply(e, "the client")
        return {"type": "result", "result": result}

    def _handlers_by_op(self) -> dict[str, Handler]:
        return {
            "ping": self._ping,
            "status": self._status,
            "devices": self._devices,
            "events": self._events,
            "clip": self._clip,
            "sync": self._sync,
            "resync": self._resync,
            "live": self._live,
            "playback": self._playback,
            "recordings": self._recordings,
        }

    async def _ping(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        return {"pid": os.getpid()}

    async def _status(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        return {**queries.status(self.client), "served_by": os.getpid()}

    async def _devices(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        return queries.devices(self.client)

    async def _events(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        camera, limit = _opt_str(args, "camera"), _int(args, "limit", 50)
        return queries.events(self.client.events, camera, limit)

    async def _clip(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        return queries.clip(self.client.events, _str(args, "id"))

    async def _sync(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        return await queries.sync(self.client)

    async def _resync(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        wait = args.get("wait", 60.0)
        if not _number(wait):
            raise LocalSocketError("client socket request: wait must be a number")
        groups = args.get("groups")
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise LocalSocketError("client socket request: groups must be a list of strings")
        camera = _opt_str(args, "camera")
        return await queries.resync(self.client, camera, groups, float(wait))

    async def _live(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        camera = _str(args, "camera")
        seconds = args.get("seconds")
        if seconds is not None and not _number(seconds):
            raise LocalSocketError("client socket request: seconds must be a number")
        timeout = args.get("timeout", 20.0)
        if not _number(timeout):
            raise LocalSocketError("client socket request: timeout must be a number")

        def on_change(st: LiveStatus) -> None:
            writer.write(encode_frame({"type": "progress", **_live_status(st)}))

        status = LiveStatus(on_change=on_change)
        stream = open_live(
            self.client, camera, seconds=seconds, status=status, answer_timeout=float(timeout)
        )
        try:
            async for piece in stream:
                writer.write(encode_frame({"type": "data", "size": len(piece)}) + piece)
                await writer.drain()
        finally:
            await stream.aclose()
        return _live_status(status)

    async def _playback(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        camera, out = _str(args, "camera"), Path(_str(args, "out"))
        start, end, timeout = (_num(args, k) for k in ("start", "end", "timeout"))
        retries = _int(args, "retries", 2)
        if not out.is_absolute():
            raise LocalSocketError("client socket request: out must be an absolute path")

        def on_change(st: PlaybackStatus) -> None:
            writer.write(encode_frame({"type": "progress", **playback_status(st)}))

        status = PlaybackStatus(on_change=on_change)
        await fetch_playback(
            self.client,
            camera,
            start,
            end,
            out,
            status=status,
            retries=max(0, min(retries, 5)),
            answer_timeout=timeout,
        )
        return playback_status(status)

    async def _recordings(
        self, args: dict[str, Any], writer: asyncio.StreamWriter
    ) -> dict[str, Any]:
        camera = _str(args, "camera")
        start, end, timeout = (_num(args, k) for k in ("start", "end", "timeout"))
        return await timeline(self.client, camera, start, end, timeout=timeout)


def _num(args: dict[str, Any], key: str) -> float:
    value = args.get(key)
    if not _number(value):
        raise LocalSocketError(f"client socket request: {key} must be a number")
    return float(value)  # type: ignore[arg-type]


def _live_status(st: LiveStatus) -> dict[str, Any]:
    return {
        "phase": st.phase,
        "session_id": st.session_id,
        "first_picture": st.first_picture,
        "fragments": st.fragments,
        "bytes": st.bytes,
        "dropped": st.dropped,
        "interruptions": st.interruptions,
        "ended": st.ended,
    }


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _str(args: dict[str, Any], key: str) -> str:
    value = args.get(key)
    if not isinstance(value, str):
        raise LocalSocketError(f"client socket request: {key} must be a string")
    return value


def _opt_str(args: dict[str, Any], key: str) -> str | None:
    return None if args.get(key) is None else _str(args, key)


def _int(args: dict[str, Any], key: str, default: int) -> int:
    value = args.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise LocalSocketError(f"client socket request: {key} must be an integer")
    return value


OWNER_WAIT = 15.0  # seconds a starting owner waits for a one-shot command to release the state


async def open_owner(
    root: Path, open_client: Callable[[], Client], wait: float = OWNER_WAIT
) -> Client:
    """Open the client that will own the data directory ``root``. A one-shot command
    (``status``, ``sync``...) that found no owner holds the state for a moment: wait for it, up
    to ``wait`` seconds. Another owner (a running ``listen`` or ``ui``) is an error that says
    so."""
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        try:
            return open_client()
        except StateLockedError:
            running = await call_running_client(root, "ping")
            if running is not None:
                raise StateLockedError(
                    f"privastead-app listen or ui (pid {running.get('pid')}) already runs on "
                    f"{root}: use it (other commands ask it), or stop it first"
                ) from None
            if asyncio.get_running_loop().time() >= deadline:
                raise
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def serving(client: Client) -> AsyncIterator[LocalServer]:
    """Serve ``client`` on its data directory's socket for as long as the block runs."""
    server = LocalServer(client)
    started = await server.start()
    try:
        yield server
    finally:
        if started:
            await server.close()


__all__ = ["LocalServer", "open_owner", "serving"]
