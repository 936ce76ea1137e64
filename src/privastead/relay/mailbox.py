"""Mailbox handlers: create, inspect, delete, upload, list (long-poll), fetch, register, ack."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from functools import partial

import aiohttp
from aiohttp import web

from privastead import compat
from privastead.errors import RelayRejectedError
from privastead.logs import redact
from privastead.relay import store
from privastead.relay.api import HEADER_MESSAGE_ID, HEADER_PUSH, is_message_id
from privastead.relay.auth import PRINCIPAL, require_mailbox, require_owner, revoked_error
from privastead.relay.blobs import TooLarge, WrittenBlob
from privastead.relay.download import BlobResponse
from privastead.relay.httputil import (
    error_response,
    field_int,
    int_query,
    mailbox_param,
    only_keys,
    read_json,
    reject,
)
from privastead.relay.push import PushJob
from privastead.relay.state import RelayState, state_of

_log = logging.getLogger(__name__)
# What a broken or vanished client connection looks like while reading a body.
_TRUNCATED = (
    asyncio.IncompleteReadError,
    aiohttp.ClientError,
    ConnectionError,
    aiohttp.http_exceptions.HttpProcessingError,
)


def _mailbox(request: web.Request) -> tuple[RelayState, str]:
    mailbox = mailbox_param(request)
    require_mailbox(request[PRINCIPAL], mailbox)
    return state_of(request), mailbox


async def create_mailbox(request: web.Request) -> web.Response:
    """PUT /v1/mailboxes/{mailbox}: create (201) or confirm (200) a mailbox of my account."""
    st, mailbox = _mailbox(request)
    data = await read_json(request, optional=True)
    only_keys(data, "ttl_seconds")
    ttl = None
    if "ttl_seconds" in data:
        ttl = field_int(data, "ttl_seconds", 1, st.config.limits.default_ttl_seconds)
    p = request[PRINCIPAL]
    created = await st.db.run(
        partial(
            store.create_mailbox,
            account=p.account,
            mailbox=mailbox,
            now=st.clock.time(),
            ttl_seconds=ttl,
        )
    )
    return web.json_response({"id": mailbox, "created": created}, status=201 if created else 200)


async def mailbox_info(request: web.Request) -> web.Response:
    st, mailbox = _mailbox(request)
    info = st.db.read(
        partial(
            store.mailbox_info,
            account=request[PRINCIPAL].account,
            mailbox=mailbox,
            now=st.clock.time(),
            default_ttl=st.config.limits.default_ttl_seconds,
        )
    )
    return web.json_response(
        {
            "id": info.id,
            "last_seq": info.last_seq,
            "count": info.count,
            "bytes": info.bytes,
            "ttl_seconds": info.ttl_seconds,
            "devices": info.devices,
        }
    )


async def delete_mailbox(request: web.Request) -> web.Response:
    """DELETE /v1/mailboxes/{mailbox}: the hub's reset; owner only."""
    st, mailbox = _mailbox(request)
    require_owner(request[PRINCIPAL])
    blobs = await st.db.run(
        partial(store.delete_mailbox, account=request[PRINCIPAL].account, mailbox=mailbox)
    )
    await st.blobs.delete(blobs)
    st.notifier.publish(mailbox, {"type": "deleted", "mailbox": mailbox})
    return web.Response(status=204)


async def _chunks(request: web.Request, idle: float) -> AsyncIterator[bytes]:
    while True:
        try:
            async with compat.timeout(idle):
                chunk = await request.content.readany()
        except TimeoutError:
            raise reject(408, "body_timeout", "the upload stalled; nothing was stored") from None
        if not chunk:
            return
        yield chunk


async def _read_small(request: web.Request, want: int, idle: float) -> bytes:
    """Up to ``want`` bytes (fewer only at the end of the body)."""
    return b"".join([chunk async for chunk in _chunks_upto(request, want, idle)])


async def _chunks_upto(request: web.Request, want: int, idle: float) -> AsyncIterator[bytes]:
    got = 0
    while got < want:
        try:
            async with compat.timeout(idle):
                chunk = await request.content.read(want - got)
        except TimeoutError:
            raise reject(408, "body_timeout", "the upload stalled; nothing was stored") from None
        if not chunk:
            return
        got += len(chunk)
        yield chunk


def _push_payload(request: web.Request, limit: int) -> bytes | None:
    return decode_push(request.headers.get(HEADER_PUSH), limit)


def decode_push(raw: str | None, limit: int) -> bytes | None:
    """An opaque wake-up payload from base64 (None: no push wanted)."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise reject(400, "bad_push_payload", "a push payload is base64 text")
    if len(raw) > (limit + 2) // 3 * 4 + 4:
        raise reject(413, "push_too_large", f"push payloads are limited to {limit} bytes")
    try:
        payload = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise reject(400, "bad_push_payload", f"{HEADER_PUSH} must be base64") from None
    if len(payload) > limit:
        raise reject(413, "push_too_large", f"push payloads are limited to {limit} bytes")
    return payload


def check_upload_size(request: web.Request, limit: int) -> None:
    length = request.content_length
    if length is not None and length > limit:
        raise reject(413, "body_too_large", f"messages are limited to {limit} bytes")


async def expect_upload(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue``: refuse an oversized body before the client sends it."""
    try:
        check_upload_size(request, state_of(request).config.limits.max_blob_size)
    except RelayRejectedError as exc:
        # Runs before the middlewares, so it builds the JSON error itself.
        return error_response(exc.status, exc.code, str(exc), {"Connection": "close"})
    if request.version >= aiohttp.HttpVersion11 and request.transport is not None:
        request.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    return None


async def upload(request: web.Request) -> web.Response:
    """POST /v1/mailboxes/{mailbox}/messages: append raw ciphertext, exactly once per id."""
    st, mailbox = _mailbox(request)
    p = request[PRINCIPAL]
    limits = st.config.limits
    msg_id = request.headers.get(HEADER_MESSAGE_ID) or request.query.get("message_id", "")
    if not is_message_id(msg_id):
        raise reject(
            400,
            "bad_message_id",
            f"send {HEADER_MESSAGE_ID}: 1-64 chars of A-Z a-z 0-9 _ - (retries reuse it)",
        )
    push = _push_payload(request, limits.max_push_payload)
    check_upload_size(request, limits.max_blob_size)  # 413 before reading any of the body
    body, blob = await _receive(request, st)
    if body is not None:
        size, digest = len(body), hashlib.sha256(body).digest()
    else:
        assert blob is not None
        size, digest = blob.size, blob.digest
    msg = store.NewMessage(
        account=p.account,
        mailbox=mailbox,
        msg_id=msg_id,
        digest=digest,
        size=size,
        body=body,
        blob=blob.name if blob else None,
    )
    op = partial(
        store.append,
        msg=msg,
        now=st.clock.time(),
        default_ttl=limits.default_ttl_seconds,
        quota=limits.account_quota_bytes,
        wake=push is not None,
    )
    # Shielded: if this request is cancelled, the queued write still completes and its blob
    # is kept or removed according to the outcome, never removed under a committed row.
    appended = await asyncio.shield(_commit(st, op, blob))
    return _answer(
        st,
        appended=appended,
        mailbox=mailbox,
        account=p.account,
        uploader=p.device_id,
        size=size,
        push=push,
    )


async def _commit(
    st: RelayState, op: Callable[[sqlite3.Connection], store.Appended], blob: WrittenBlob | None
) -> store.Appended:
    try:
        appended = await st.db.run(op)
    except BaseException:
        if blob is not None:
            await st.blobs.delete([blob.name])
        raise
    await st.blobs.delete(appended.unlink)
    return appended


async def _receive(request: web.Request, st: RelayState) -> tuple[bytes | None, WrittenBlob | None]:
    """The body: inline bytes when small, else a blob streamed to disk (never both)."""
    limits = st.config.limits
    length = request.content_length
    body: bytes | None = None
    blob = None
    try:
        if length is not None and length <= limits.inline_max:
            # The common case (a small message in one or two TCP segments): one read.
            try:
                async with compat.timeout(limits.body_timeout):
                    body = await request.content.readexactly(length)
            except TimeoutError:
                raise reject(
                    408, "body_timeout", "the upload stalled; nothing was stored"
                ) from None
            if not request.content.at_eof():
                raise reject(400, "truncated", "the body ended early; nothing was stored")
        else:
            head = await _read_small(request, limits.inline_max + 1, limits.body_timeout)
            if len(head) <= limits.inline_max and request.content.at_eof():
                body = head
            else:
                blob = await st.blobs.write(
                    _chunks(request, limits.body_timeout), limits.max_blob_size, head=head
                )
    except TooLarge:
        raise reject(
            413, "body_too_large", f"messages are limited to {limits.max_blob_size} bytes"
        ) from None
    except _TRUNCATED:
        raise reject(400, "truncated", "the body ended early; nothing was stored") from None
    return body, blob


def _answer(
    st: RelayState,
    *,
    appended: store.Appended,
    mailbox: str,
    account: str,
    uploader: str,
    size: int,
    push: bytes | None,
) -> web.Response:
    stored(
        st,
        appended=appended,
        mailbox=mailbox,
        account=account,
        uploader=uploader,
        size=size,
        push=push,
    )
    result = appended.result
    return web.json_response(result.to_json(), status=200 if result.duplicate else 201)


def stored(
    st: RelayState,
    *,
    appended: store.Appended,
    mailbox: str,
    account: str,
    uploader: str,
    size: int,
    push: bytes | None,
) -> None:
    """After a commit: count, notify subscribers, queue wake-ups (not for the uploader)."""
    result = appended.result
    m = st.metrics
    if result.duplicate:
        m.inc("relay_messages_duplicate_total")
        return
    m.inc("relay_messages_stored_total")
    m.inc("relay_received_bytes_total", size)
    if result.evicted:
        m.inc("relay_messages_evicted_total", len(result.evicted))
        _log.info("quota evicted %d messages of an account", len(result.evicted))
    st.notifier.publish(mailbox, {"type": "message", "mailbox": mailbox, "seq": result.seq})
    wake = [d for d in appended.devices if d != uploader]
    if push is not None and wake:
        task = asyncio.get_running_loop().create_task(_push(st, account, wake, push))
        st.background.add(task)  # keep a reference until done
        task.add_done_callback(st.background.discard)
    _log.debug("stored seq %d in %s (%d bytes)", result.seq, redact(mailbox), size)


async def _push(st: RelayState, account: str, devices: list[str], payload: bytes) -> None:
    try:
        targets = st.db.read(partial(store.push_targets, account=account, devices=devices))
    except Exception:  # pushes are best-effort and never fail an upload
        _log.exception("push target lookup failed")
        return
    for device_id, fcm, webhook in targets:
        st.pusher.submit(
            PushJob(device_id=device_id, payload=payload, fcm_token=fcm, webhook_url=webhook)
        )


async def list_messages(request: web.Request) -> web.Response:
    """GET .../messages?after=&limit=&wait=: a page of messages, waiting up to ``wait`` s."""
    st, mailbox = _mailbox(request)
    limits = st.config.limits
    after = int_query(request, "after", 0, 0, 2**62)
    limit = int_query(request, "limit", 100, 1, limits.max_list)
    wait = int_query(request, "wait", 0, 0, limits.max_wait_seconds)
    fetch = partial(
        store.list_messages,
        account=request[PRINCIPAL].account,
        mailbox=mailbox,
        after=after,
        limit=limit,
        inline_max=limits.inline_max,
    )
    page = st.db.read(partial(fetch, now=st.clock.time()))
    if not page.messages and wait:
        deadline = asyncio.get_running_loop().time() + wait
        while not page.messages:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            async with st.notifier.waiting(mailbox) as news:
                # A revocation ends the wait at once, answered 401 device_removed.
                with st.revocations.hold(
                    request[PRINCIPAL].token_id, lambda _code: news.event.set()
                ) as hold:
                    # Re-check after registering, so a message stored in between is not missed.
                    page = st.db.read(partial(fetch, now=st.clock.time()))
                    if page.messages:
                        break
                    await news.wait_for(remaining)
                    if hold.revoked is not None:
                        raise revoked_error(hold.revoked)
            page = st.db.read(partial(fetch, now=st.clock.time()))
    out = [
        {
            "seq": m.seq,
            "size": m.size,
            **({"body": base64.b64encode(m.body).decode("ascii")} if m.body is not None else {}),
        }
        for m in page.messages
    ]
    return web.json_response({"messages": out, "last_seq": page.last_seq})


async def get_message(request: web.Request) -> web.StreamResponse:
    """GET .../messages/{seq}: the raw ciphertext (blobs are sent from their file)."""
    st, mailbox = _mailbox(request)
    try:
        seq = int(request.match_info["seq"], 10)
    except ValueError:
        raise reject(400, "bad_seq", "seq must be a positive integer") from None
    if not 1 <= seq < 2**62:
        raise reject(400, "bad_seq", "seq must be a positive integer")
    size, body, blob = st.db.read(
        partial(
            store.get_message,
            account=request[PRINCIPAL].account,
            mailbox=mailbox,
            seq=seq,
            now=st.clock.time(),
        )
    )
    st.metrics.inc("relay_sent_bytes_total", size)
    headers = {"Cache-Control": "no-store", "Privastead-Seq": str(seq)}
    if body is not None:
        return web.Response(body=body, content_type="application/octet-stream", headers=headers)
    assert blob is not None
    return BlobResponse(st.blobs.path(blob), size, headers)


async def register(request: web.Request) -> web.Response:
    """PUT .../registration: this device will receive (and must acknowledge) messages."""
    st, mailbox = _mailbox(request)
    p = request[PRINCIPAL]
    cursor = await st.db.run(
        partial(store.register, account=p.account, mailbox=mailbox, device_id=p.device_id)
    )
    return web.json_response({"device_id": p.device_id, "cursor": cursor})


async def unregister(request: web.Request) -> web.Response:
    st, mailbox = _mailbox(request)
    p = request[PRINCIPAL]
    blobs = await st.db.run(
        partial(store.unregister, account=p.account, mailbox=mailbox, device_id=p.device_id)
    )
    await st.blobs.delete(blobs)
    return web.Response(status=204)


async def ack(request: web.Request) -> web.Response:
    """POST .../ack {"seq": N}: cumulative; messages every device acked are deleted."""
    st, mailbox = _mailbox(request)
    p = request[PRINCIPAL]
    data = await read_json(request)
    only_keys(data, "seq")
    seq = field_int(data, "seq", 0, 2**62)
    cursor, blobs = await st.db.run(
        partial(store.ack, account=p.account, mailbox=mailbox, device_id=p.device_id, seq=seq)
    )
    await st.blobs.delete(blobs)
    return web.json_response({"cursor": cursor})


__all__ = [
    "ack",
    "create_mailbox",
    "delete_mailbox",
    "expect_upload",
    "get_message",
    "list_messages",
    "mailbox_info",
    "register",
    "unregister",
    "upload",
]
