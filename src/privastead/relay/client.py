"""A typed async client for the relay API (used by the hub, the client app, tests, bench).

Errors: a 4xx becomes ``RelayRejectedError`` (with the API's ``code`` and status; retrying
the same request will not help), ``DeviceRemovedError`` when this device's token was revoked;
a 5xx, timeout or network failure ``RelayUnavailableError`` (retry later; uploads are
idempotent thanks to their message id).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, cast
from urllib.parse import quote

import aiohttp

from privastead.clock import Clock
from privastead.compat import Self
from privastead.errors import DeviceRemovedError, RelayRejectedError, RelayUnavailableError
from privastead.protocol.relay_url import check_relay_url
from privastead.relay.api import (
    DEVICE_REMOVED,
    HEADER_MESSAGE_ID,
    HEADER_PUSH,
    REVOKED_CODES,
    WS_CLOSE_REVOKED,
    IssuedToken,
    MailboxInfo,
    MessageInfo,
    MessagePage,
    UploadResult,
)

Body = bytes | AsyncIterable[bytes] | Path


async def _raise_for(resp: aiohttp.ClientResponse) -> None:
    if resp.status < 400:
        return
    code, message = "http_error", resp.reason or ""
    try:
        data = await resp.json(content_type=None)
        code, message = data["error"]["code"], data["error"]["message"]
    except (ValueError, KeyError, TypeError, aiohttp.ClientError):
        pass
    if resp.status >= 500:
        raise RelayUnavailableError(f"relay error {resp.status} {code}: {message}")
    if code == DEVICE_REMOVED:
        raise DeviceRemovedError(message, resp.status, code)
    raise RelayRejectedError(message, resp.status, code)


# How long both ends of a live channel try to join it again after losing it (the hub as its
# publisher, a viewer), and how long the hub then waits for a viewer and a viewer for pictures:
# a load balancer's failover plus the other side's own rejoin. One figure for both ends.
LIVE_REJOIN_SECONDS = 10.0
LIVE_REJOIN_RETRY = 0.5  # seconds between two attempts
# How many times one live session resumes (a side's socket was lost, or its last viewer left
# and one came back) before both ends give up on it: a relay that cuts the sockets forever
# must not keep the hub's publisher and the viewer rejoining until the session's time limit.
# Generous for honest trouble (a few Wi-Fi hand-overs, a relay failover or two in a session).
LIVE_MAX_RESUMES = 8


def _revoked(code: str, message: str = "") -> RelayRejectedError:
    if code == DEVICE_REMOVED:
        return DeviceRemovedError(message or "this device was removed: pair it again")
    return RelayRejectedError(message or "this token was revoked", 401, code)


async def _file_chunks(path: Path, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(size):
            yield chunk


class RelaySocket(aiohttp.ClientWebSocketResponse[Literal[True]]):
    """A WebSocket that always gives its connection back when closed.

    aiohttp marks a client socket closed without releasing its connection on some ways a
    socket ends (a connection error while receiving); ``close()`` then returns at once and
    the connection stays open until it is garbage collected, holding a file descriptor and
    warning. A relay restart or a load balancer cutting sockets ends them exactly that way.
    """

    async def close(self, *, code: int = aiohttp.WSCloseCode.OK, message: bytes = b"") -> bool:
        try:
            return await super().close(code=code, message=message)
        finally:
            self._response.close()  # idempotent: a no-op once released


@dataclass
class Subscription:
    """An open ``/v1/ws`` socket; iterate it for events (dicts)."""

    ws: aiohttp.ClientWebSocketResponse

    async def subscribe(self, mailboxes: list[str]) -> None:
        await self.ws.send_json({"type": "subscribe", "mailboxes": mailboxes})

    async def unsubscribe(self, mailboxes: list[str]) -> None:
        await self.ws.send_json({"type": "unsubscribe", "mailboxes": mailboxes})

    async def next_event(self) -> dict[str, Any]:
        """The next event; ``DeviceRemovedError`` once this device's token was revoked."""
        msg = await self.ws.receive()
        if msg.type != aiohttp.WSMsgType.TEXT:
            if msg.type == aiohttp.WSMsgType.CLOSE and msg.data == WS_CLOSE_REVOKED:
                raise _revoked(str(msg.extra or DEVICE_REMOVED))
            raise RelayUnavailableError(f"subscription socket closed ({msg.type.name})")
        event: dict[str, Any] = json.loads(msg.data)
        if event.get("type") == "error" and event.get("code") in REVOKED_CODES:
            raise _revoked(str(event["code"]), str(event.get("message", "")))
        return event

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            try:
                yield await self.next_event()
            except RelayUnavailableError:
                return

    async def close(self) -> None:
        await self.ws.close()


@dataclass(frozen=True)
class Nameplate:
    nameplate: str
    mailbox: str
    expires_at: float


@dataclass(frozen=True)
class NameplateClaim:
    mailbox: str
    token: str = field(repr=False)
    expires_at: float


class RelayClient:
    """One relay, one token. Use as ``async with RelayClient(url, token) as relay: ...``."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 60.0,
        ssl: Any = True,
        insecure_http: bool | None = None,  # None: PRIVASTEAD_INSECURE_HTTP decides
    ) -> None:
        # Refuse before any token is sent: http:// only to loopback unless asked for.
        check_relay_url(base_url, insecure_http=insecure_http)
        self.base_url = base_url.rstrip("/")
        # No token: only the public routes (a nameplate claim) can be used.
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._own_session = session is None
        self._session = session or aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout),
            ws_response_class=RelaySocket,
        )
        self._ssl = ssl
        # Sockets still open when the client closes are closed with it (a task cancelled
        # between opening a socket and its own cleanup must not leak the connection).
        self._sockets: weakref.WeakSet[aiohttp.ClientWebSocketResponse] = weakref.WeakSet()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close()
        if self._own_session:
            await self._session.close()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        hdrs = {**self._headers, **(headers or {})}
        try:
            async with self._session.request(
                method,
                self.base_url + path,
                json=json_body,
                data=data,
                headers=hdrs,
                params=params,
                ssl=self._ssl,
            ) as resp:
                await _raise_for(resp)
                if resp.status == 204:
                    return None
                if resp.content_type == "application/json":
                    return await resp.json()
                return await resp.read()
        except (aiohttp.ClientError, TimeoutError, asyncio.TimeoutError) as exc:
            raise RelayUnavailableError(f"cannot reach the relay: {type(exc).__name__}") from exc

    # --- identity, devices, tokens -------------------------------------------------------
    async def me(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", "/v1/me")
        return result

    async def create_device(self, name: str = "") -> IssuedToken:
        d = await self._request("POST", "/v1/devices", json_body={"name": name})
        return IssuedToken(token_id=d["token_id"], token=d["token"], device_id=d["device_id"])

    async def list_devices(self) -> list[dict[str, Any]]:
        return list((await self._request("GET", "/v1/devices"))["devices"])

    async def remove_device(self, device_id: str) -> None:
        await self._request("DELETE", f"/v1/devices/{device_id}")

    async def create_restricted_token(
        self, mailboxes: list[str], ttl_seconds: int, label: str = ""
    ) -> IssuedToken:
        d = await self._request(
            "POST",
            "/v1/tokens/restricted",
            json_body={"mailboxes": mailboxes, "ttl_seconds": ttl_seconds, "label": label},
        )
        return IssuedToken(
            token_id=d["token_id"],
            token=d["token"],
            device_id=d["device_id"],
            expires_at=d["expires_at"],
        )

    # --- nameplates (short-code pairing) ---------------------------------------------------
    async def allocate_nameplate(self, mailbox: str, ttl_seconds: int = 600) -> Nameplate:
        """Owner: a short number naming ``mailbox`` until claimed or ``ttl_seconds`` pass."""
        d = await self._request(
            "POST", "/v1/nameplates", json_body={"mailbox": mailbox, "ttl_seconds": ttl_seconds}
        )
        return Nameplate(nameplate=d["nameplate"], mailbox=d["mailbox"], expires_at=d["expires_at"])

    async def claim_nameplate(self, nameplate: str) -> NameplateClaim:
        """No token needed: the pairing mailbox and its token, once (404 afterwards)."""
        d = await self._request("POST", f"/v1/nameplates/{quote(nameplate, safe='')}/claim")
        return NameplateClaim(mailbox=d["mailbox"], token=d["token"], expires_at=d["expires_at"])

    async def revoke_token(self, token_id: str) -> None:
        await self._request("DELETE", f"/v1/tokens/{token_id}")

    async def set_push(
        self, *, fcm_token: str | None = None, webhook_url: str | None = None
    ) -> None:
        await self._request(
            "PUT",
            "/v1/devices/self/push",
            json_body={"fcm_token": fcm_token, "webhook_url": webhook_url},
        )

    async def get_push(self) -> dict[str, Any]:
        """This device's push targets: ``fcm_token_hint`` (last characters) and
        ``webhook_url``, each None when not registered."""
        result: dict[str, Any] = await self._request("GET", "/v1/devices/self/push")
        return result

    # --- mailboxes ---------------------------------------------------------------------------
    async def create_mailbox(self, mailbox: str, ttl_seconds: int | None = None) -> bool:
        body = {"ttl_seconds": ttl_seconds} if ttl_seconds else {}
        return bool(
            (await self._request("PUT", f"/v1/mailboxes/{mailbox}", json_body=body))["created"]
        )

    async def mailbox_info(self, mailbox: str) -> MailboxInfo:
        d = await self._request("GET", f"/v1/mailboxes/{mailbox}")
        return MailboxInfo(
            id=d["id"],
            last_seq=d["last_seq"],
            count=d["count"],
            bytes=d["bytes"],
            ttl_seconds=d["ttl_seconds"],
            devices=d["devices"],
        )

    async def delete_mailbox(self, mailbox: str) -> None:
        await self._request("DELETE", f"/v1/mailboxes/{mailbox}")

    async def upload(
        self, mailbox: str, body: Body, message_id: str, *, push: bytes | None = None
    ) -> UploadResult:
        """Append ``body``; retrying with the same ``message_id`` stores it once."""
        headers = {HEADER_MESSAGE_ID: message_id, "Content-Type": "application/octet-stream"}
        if push is not None:
            headers[HEADER_PUSH] = base64.b64encode(push).decode("ascii")
        data: Any = body
        if isinstance(body, bytes) and len(body) > 1024 * 1024:
            data = io.BytesIO(body)  # large bodies are written in chunks, not in one go
        elif isinstance(body, Path):
            headers["Content-Length"] = str(body.stat().st_size)
            data = _file_chunks(body)
        d = await self._request(
            "POST", f"/v1/mailboxes/{mailbox}/messages", data=data, headers=headers
        )
        return UploadResult.from_json(d)

    async def upload_many(
        self, items: list[tuple[str, bytes, str, bytes | None]]
    ) -> list[UploadResult | RelayRejectedError]:
        """Upload small messages ``(mailbox, body, message id, push)`` in one request.

        Each item succeeds or fails on its own; failures come back as exceptions in place.
        """
        d = await self._request(
            "POST",
            "/v1/messages",
            json_body={
                "messages": [
                    {
                        "mailbox": mailbox,
                        "id": message_id,
                        "body": base64.b64encode(body).decode("ascii"),
                        **(
                            {"push": base64.b64encode(push).decode("ascii")}
                            if push is not None
                            else {}
                        ),
                    }
                    for mailbox, body, message_id, push in items
                ]
            },
        )
        out: list[UploadResult | RelayRejectedError] = []
        for r in d["results"]:
            if "error" in r:
                e = r["error"]
                out.append(RelayRejectedError(e["message"], e["status"], e["code"]))
            else:
                out.append(UploadResult.from_json(r))
        return out

    async def list_messages(
        self, mailbox: str, after: int = 0, limit: int = 100, wait: int = 0
    ) -> MessagePage:
        d = await self._request(
            "GET",
            f"/v1/mailboxes/{mailbox}/messages",
            params={"after": str(after), "limit": str(limit), "wait": str(wait)},
        )
        return MessagePage(
            messages=tuple(
                MessageInfo(
                    seq=m["seq"],
                    size=m["size"],
                    body=base64.b64decode(m["body"]) if "body" in m else None,
                )
                for m in d["messages"]
            ),
            last_seq=d["last_seq"],
        )

    async def fetch(self, mailbox: str, seq: int, *, direct: bool = False) -> bytes:
        """Message ``seq``'s body. ``direct``: a blob comes straight from the relay's object
        store, by a short-lived URL the relay hands out after checking this token (when it
        has an object store with a public endpoint; otherwise through the relay as usual)."""
        path = f"/v1/mailboxes/{mailbox}/messages/{seq}"
        if not direct:
            return bytes(await self._request("GET", path))
        answer = await self._request("GET", path, params={"presign": "1"})
        if not isinstance(answer, dict):
            return bytes(answer)  # inline, or a relay without presigned URLs
        return await self._fetch_presigned(str(answer["url"]), int(answer["size"]))

    async def _fetch_presigned(self, url: str, size: int) -> bytes:
        # The URL is its own credential: no Authorization header (the store would refuse a
        # request signed twice, and the relay's token has no business there).
        check_relay_url(url)  # the same https rule as for the relay itself
        try:
            async with self._session.get(url, ssl=self._ssl) as resp:
                if resp.status in (403, 404):  # acknowledged meanwhile, or the URL expired
                    raise RelayRejectedError(
                        "the message is gone or its download URL expired; fetch it again",
                        404,
                        "message_not_found",
                    )
                if resp.status != 200:
                    raise RelayUnavailableError(f"object store answered {resp.status}")
                body = await resp.read()
        except (aiohttp.ClientError, TimeoutError, asyncio.TimeoutError) as exc:
            raise RelayUnavailableError(
                f"cannot reach the object store: {type(exc).__name__}"
            ) from exc
        if len(body) != size:
            raise RelayUnavailableError("the object store sent a partial body; fetch it again")
        return body

    async def body_of(self, mailbox: str, info: MessageInfo) -> bytes:
        """The body of a listed message: inline if the listing had it, else fetched."""
        return info.body if info.body is not None else await self.fetch(mailbox, info.seq)

    async def register(self, mailbox: str) -> int:
        return int((await self._request("PUT", f"/v1/mailboxes/{mailbox}/registration"))["cursor"])

    async def unregister(self, mailbox: str) -> None:
        await self._request("DELETE", f"/v1/mailboxes/{mailbox}/registration")

    async def ack(self, mailbox: str, seq: int) -> int:
        return int(
            (await self._request("POST", f"/v1/mailboxes/{mailbox}/ack", json_body={"seq": seq}))[
                "cursor"
            ]
        )

    # --- sockets -----------------------------------------------------------------------------
    async def _ws(self, path: str, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
        url = self.base_url.replace("http", "ws", 1) + path
        try:
            ws = await self._session.ws_connect(
                url, headers=self._headers, ssl=self._ssl, heartbeat=30.0, **kwargs
            )
            # aiohttp's overloads narrow decode_text to Literal[True] only on Python >= 3.11
            sock = cast("aiohttp.ClientWebSocketResponse", ws)
            self._sockets.add(sock)
            return sock
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 401:
                # The handshake's error body is not exposed: ask why with a plain request,
                # which raises DeviceRemovedError for a removed device.
                await self.me()
            if 400 <= exc.status < 500:
                raise RelayRejectedError(exc.message, exc.status, "handshake_rejected") from exc
            raise RelayUnavailableError(f"websocket refused: {exc.status}") from exc
        except (aiohttp.ClientError, TimeoutError, asyncio.TimeoutError) as exc:
            raise RelayUnavailableError(f"cannot reach the relay: {type(exc).__name__}") from exc

    async def subscribe(self, mailboxes: list[str]) -> Subscription:
        """Open ``/v1/ws`` and subscribe; the first event is ``subscribed``."""
        sub = Subscription(await self._ws("/v1/ws"))
        await sub.subscribe(mailboxes)
        return sub

    async def live(
        self, session: str, role: str = "viewer", max_msg_size: int = 4 * 1024 * 1024
    ) -> aiohttp.ClientWebSocketResponse:
        """A live channel socket (``publisher`` sends binary frames; viewers receive them)."""
        return await self._ws(f"/v1/live/{session}?role={role}", max_msg_size=max_msg_size)

    async def rejoin_live(
        self, session: str, role: str, *, wanted: Callable[[], bool] = lambda: True
    ) -> aiohttp.ClientWebSocketResponse | None:
        """The live channel ``session`` joined again after its socket was lost (its relay
        died; behind a load balancer the same id leads to a survivor), trying every
        ``LIVE_REJOIN_RETRY`` seconds for ``LIVE_REJOIN_SECONDS`` while ``wanted()``; None
        then. Only an unreachable relay is tried again, and a publisher's ``409`` (the relay
        has not yet noticed that the lost socket is gone, as after a half-open connection):
        any other refusal (a removed device, a full session) is the answer and raises."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LIVE_REJOIN_SECONDS
        while wanted() and loop.time() < deadline:
            try:
                return await self.live(session, role)
            except RelayUnavailableError:
                pass
            except RelayRejectedError as e:
                if role != "publisher" or e.status != 409:
                    raise
            await asyncio.sleep(LIVE_REJOIN_RETRY)
        return None


async def next_message(
    relay: RelayClient, mailbox: str, after: int, deadline: float, clock: Clock
) -> tuple[int, bytes]:
    """The first message of ``mailbox`` after seq ``after``, long-polling until ``deadline``."""
    while True:
        left = deadline - clock.time()
        if left <= 0:
            raise RelayUnavailableError("timed out: no answer from the other side")
        page = await relay.list_messages(mailbox, after=after, limit=1, wait=int(min(left, 20)))
        if page.messages:
            info = page.messages[0]
            return info.seq, await relay.body_of(mailbox, info)


__all__ = [
    "LIVE_MAX_RESUMES",
    "LIVE_REJOIN_SECONDS",
    "Nameplate",
    "NameplateClaim",
    "RelayClient",
    "RelaySocket",
    "Subscription",
    "next_message",
]
