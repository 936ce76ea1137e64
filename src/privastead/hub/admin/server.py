"""The running hub's local admin socket (hub-admin.md): pairing and removal inside `run`.

`privastead-hub run` holds the groups' state files locked, so `pair`, `pair --replace` and
`devices list|remove` ask it, over a Unix domain socket, to do the work in its own process:

- ``<data_dir>/admin/hub.sock``; the directory is made 0700 (and must belong to the hub's user),
  the socket 0600. Only processes of the same uid (or root) get an answer: the peer's uid comes
  from the kernel (``SO_PEERCRED``), not from anything the peer says.
- A stale socket file (the last hub was killed) is replaced at start: the hub binds it only
  after it locked the groups' state, so no other live hub can own it.
- One request per connection, length-prefixed JSON (``admin.wire``). Pairing streams its
  progress: the codes (long and short) as soon as they exist, the pending device with its
  safety code and key fingerprint, security alerts, the result. ``approve`` / ``reject``
  decide a pending device; they run beside the pairing that waits for them. If the CLI goes away
  (Ctrl-C) the operation is cancelled (a pairing then deletes its one-time mailbox).
- Operations that change the groups run one at a time; each MLS call runs on its group's worker
  (``hub.delivery.worker``), in order with the hub's own messages; the loop only awaits it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from privastead import compat
from privastead.errors import AdminError, ConfigError, PrivasteadError
from privastead.hub.admin.ops import HubAdmin
from privastead.hub.admin.wire import (
    MAX_REQUEST,
    MAX_SOCKET_PATH,
    encode_frame,
    error_reply,
    read_frame,
)
from privastead.hub.state.pending import PendingDevice
from privastead.protocol.frames import peer_credentials, serve_private_socket
from privastead.protocol.pairing_code import PairingCode
from privastead.protocol.short_code import ShortCode

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0  # a connection that sends no whole request by then is dropped


def check_peer(uid: int, own_uid: int) -> None:
    """Only the hub's own user and root may administer it."""
    if uid not in (own_uid, 0):
        raise AdminError(
            f"uid {uid} may not administer this hub: run the command as the hub's user"
        )


def _str_list(value: object, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AdminError(f"admin request: {what} must be a list of strings")
    return list(value)


class AdminServer:
    def __init__(self, path: Path, admin: HubAdmin, *, own_uid: int | None = None) -> None:
        self.path = path
        self.admin = admin
        self.own_uid = os.geteuid() if own_uid is None else own_uid
        self._server: asyncio.AbstractServer | None = None
        self._busy = asyncio.Lock()
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> bool:
        """Listen; False (logged) if the path cannot be a socket address on this system."""
        if len(os.fsencode(self.path)) > MAX_SOCKET_PATH:
            log.warning(
                "admin socket path %s is too long for a Unix socket: `pair` and `devices "
                "remove` need the hub stopped (use a shorter data_dir)",
                self.path,
            )
            return False
        # We hold the groups' locks: a socket file here is a dead hub's, never a live one's.
        self._server = await serve_private_socket(self.path, self._accept, owner="the hub's user")
        log.info("admin socket: %s", self.path)
        resumable = getattr(self.admin, "resumable", None)
        for pending in resumable() if resumable is not None else []:
            task = asyncio.create_task(self._resume(pending))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        return True

    async def _resume(self, pending: PendingDevice) -> None:
        """A pairing the last hub process held pending: it waits on (approve|reject reach it
        through this socket), without a CLI to show anything: the log says what happens."""
        log.warning(
            "device %r is still pending (pending id %s): approve or reject it with "
            "`privastead-hub devices approve|reject %s`",
            pending.name,
            pending.pending_id,
            pending.pending_id,
        )
        try:
            async with self._busy:
                paired = await self.admin.resume(pending, _LogEvents())
        except PrivasteadError as e:
            log.warning("pending device %r: %s", pending.name, e)
            return
        log.info("paired device %r (id %s) after a restart", paired.device_name, paired.device_id)

    async def close(self) -> None:
        self.admin.stopping = True  # pending pairings stay, to be resumed at the next start
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._handlers):
            task.cancel()
        for task in list(self._handlers):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.path.unlink(missing_ok=True)

    # -- one connection ----------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the CLI went away
        except Exception:
            log.exception("admin request failed")
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            _pid, uid, _gid = peer_credentials(writer.get_extra_info("socket"))
            check_peer(uid, self.own_uid)
            try:
                async with compat.timeout(REQUEST_TIMEOUT):
                    request = await read_frame(reader, MAX_REQUEST)
            except TimeoutError:
                raise AdminError(f"no complete request within {REQUEST_TIMEOUT:.0f} s") from None
            if request is None:
                return
        except AdminError as e:
            log.warning("admin socket: %s", e)
            writer.write(encode_frame(error_reply(e)))
            await writer.drain()
            return
        op = asyncio.create_task(self._dispatch(request, writer))
        gone = asyncio.create_task(reader.read(1))  # EOF: the CLI was interrupted
        try:
            await asyncio.wait({op, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not op.done():
                op.cancel()
                log.info("admin: the client went away; %s cancelled", request.get("op"))
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
                raise AdminError("admin request: args must be an object")
            if name == "ping":
                result: dict[str, Any] = {"pid": os.getpid()}
            elif name == "devices":
                # Reads every group's member list and the registry: off the loop.
                result = await asyncio.to_thread(self.admin.devices)
            elif name in ("approve", "reject"):
                # Not one at a time: the pairing that holds the device waits for this answer.
                decided = await self.admin.decide(str(args.get("device", "")), name == "approve")
                result = {"pending_id": decided.pending_id, "name": decided.name}
            elif name in ("remove", "remove_unknown", "pair"):
                if self._busy.locked():
                    raise AdminError(
                        "another pairing or removal is running in the hub: wait for it to end "
                        "(or interrupt its `privastead-hub` command) and try again"
                    )
                async with self._busy:
                    result = await self._change(name, args, writer)
            else:
                raise AdminError(f"unknown admin request {name!r}")
        except asyncio.CancelledError:
            raise
        except Exception as e:
            if not isinstance(e, PrivasteadError):
                log.exception("admin %s failed", name)
            elif not isinstance(e, (AdminError, ConfigError)):
                log.warning("admin %s failed: %s", name, e)
            return error_reply(e)
        return {"type": "result", "result": result}

    async def _change(
        self, name: str, args: dict[str, Any], writer: asyncio.StreamWriter
    ) -> dict[str, Any]:
        """One of the operations that change the groups (run one at a time)."""
        if name == "remove":
            removed = await self.admin.remove(str(args.get("device", "")))
            return {"name": removed.name, "groups": list(removed.groups)}
        if name == "remove_unknown":
            return {"removed": await self.admin.remove_unknown()}
        return await self._pair(args, writer)

    async def _pair(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        cameras = _str_list(args.get("cameras", []), "cameras")
        ttl = args.get("ttl", 600.0)
        replace = args.get("replace")
        if not isinstance(ttl, (int, float)) or isinstance(ttl, bool):
            raise AdminError("admin request: ttl must be a number")
        if replace is not None and not isinstance(replace, str):
            raise AdminError("admin request: replace must be a device id or name")
        short = args.get("short", True)
        if not isinstance(short, bool):
            raise AdminError("admin request: short must be true or false")
        events = _FrameEvents(writer)
        paired = await self.admin.pair(cameras, float(ttl), replace, events, short=short)
        return {
            "device_id": paired.device_id,
            "device_name": paired.device_name,
            "safety": paired.safety_code,
            "cameras": list(paired.cameras),
        }


class _LogEvents:
    """A resumed pairing's progress, with nobody at a terminal: the hub's log."""

    async def code(
        self, code: PairingCode, short: ShortCode | None, cameras: Sequence[str]
    ) -> None:
        return None

    def pending(self, device: PendingDevice) -> None:
        return None

    def alert(self, text: str) -> None:
        log.warning("%s", text)

    def safety(self, safety: str) -> None:
        return None


class _FrameEvents:
    """A pairing's progress as admin frames to the `pair` command (``PairingEvents``)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    def _send(self, event: str, **fields: Any) -> None:
        self.writer.write(encode_frame({"type": "progress", "event": event, **fields}))

    async def code(
        self, code: PairingCode, short: ShortCode | None, cameras: Sequence[str]
    ) -> None:
        self._send(
            "code",
            code=code.to_text(),
            short_code=str(short) if short is not None else None,
            cameras=list(cameras),
            expires=code.expires,
        )
        await self.writer.drain()

    def pending(self, device: PendingDevice) -> None:
        self._send("pending", pending_id=device.pending_id, device=device.to_json())

    def alert(self, text: str) -> None:
        self._send("alert", text=text)

    def safety(self, safety: str) -> None:
        self._send("safety", safety=safety)


__all__ = ["AdminServer", "check_peer", "peer_credentials"]
