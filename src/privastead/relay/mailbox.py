"""Mailbox handlers: create, inspect, delete, upload, list (long-poll), fetch, register, ack."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
from collections.abc import Awaitable, Callable
from functools import partial

import aiohttp
from aiohttp import web

from privastead.logs import redact
from privastead.relay import store
from privastead.relay.accounts import Principal
from privastead.relay.api import HEADER_MESSAGE_ID, HEADER_PUSH, MessagePage, is_message_id
from privastead.relay.auth import PRINCIPAL, require_mailbox, require_owner, revoked_error
from privastead.relay.blobs import BlobStore, TooLarge, WrittenBlob
from privastead.relay.bodies import reader
from privastead.relay.download import SMALL_BLOB, BlobResponse, read_small_blob, stream_object
from privastead.relay.httputil import (
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
    p = request[PRINCIPAL]
    if "ttl_seconds" in data:
        # A TTL decides how long the hub's messages wait for everybody: the owner's call.
        require_owner(p)
        ttl = field_int(data, "ttl_seconds", 1, st.config.limits.default_ttl_seconds)
    created = await st.storage.create_mailbox(
        account=p.account, mailbox=mailbox, now=st.clock.time(), ttl_seconds=ttl
    )
    return web.json_response({"id": mailbox, "created": created}, status=201 if created else 200)


async def mailbox_info(request: web.Request) -> web.Response:
    st, mailbox = _mailbox(request)
    info = await st.storage.mailbox_info(
        account=request[PRINCIPAL].account,
        mailbox=mailbox,
        now=st.clock.time(),
        default_ttl=st.config.limits.default_ttl_seconds,
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
    blobs = await st.storage.delete_mailbox(account=request[PRINCIPAL].account, mailbox=mailbox)
    await st.blobs.delete(blobs)
    st.notifier.publish(mailbox, {"type": "deleted", "mailbox": mailbox})
    return web.Response(status=204)


def push_of(p: Principal, raw: str | None, limit: int) -> bytes | None:
    """The wake-up an upload asks for; only device and owner tokens may wake devices."""
    payload = decode_push(raw, limit)
    if payload is not None and p.kind == "restricted":
        raise reject(403, "forbidden", "a restricted token may not send wake-up pushes")
    return payload


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


def upload_headers(request: web.Request) -> tuple[str, bytes | None]:
    """Everything about an upload that is known before its body: scope, message id, push
    payload, size. Checked again by ``Expect: 100-continue`` before the body is sent."""
    _mailbox(request)
    limits = state_of(request).config.limits
    msg_id = request.headers.get(HEADER_MESSAGE_ID) or request.query.get("message_id", "")
    if not is_message_id(msg_id):
        raise reject(
            400,
            "bad_message_id",
            f"send {HEADER_MESSAGE_ID}: 1-64 chars of A-Z a-z 0-9 _ - (retries reuse it)",
        )
    push = push_of(request[PRINCIPAL], request.headers.get(HEADER_PUSH), limits.max_push_payload)
    if request.content_length == 0:
        raise reject(400, "empty_body", "a message needs a body")
    check_upload_size(request, limits.max_blob_size)  # 413 before reading any of the body
    return msg_id, push


async def check_upload(request: web.Request) -> None:
    """Before ``100 Continue``: the headers, and that the mailbox is there (the append checks
    again in its transaction; this only spares the client a useless body)."""
    upload_headers(request)
    st, mailbox = state_of(request), mailbox_param(request)
    account = request[PRINCIPAL].account
    if not await st.storage.owned(account=account, mailboxes=[mailbox]):
        raise reject(404, "mailbox_not_found", "no such mailbox")


async def upload(request: web.Request) -> web.Response:
    """POST /v1/mailboxes/{mailbox}/messages: append raw ciphertext, exactly once per id."""
    st, mailbox = _mailbox(request)
    p = request[PRINCIPAL]
    limits = st.config.limits
    msg_id, push = upload_headers(request)
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
        st.storage.append,
        msg=msg,
        now=st.clock.time(),
        default_ttl=limits.default_ttl_seconds,
        quota=limits.account_quota_bytes,
        wake=push is not None,
        evict=p.kind != "restricted",
    )
    if blob is None:
        # The queued write completes even if this request is cancelled (an evicted blob
        # is then left as an orphan file, swept at the next start).
        appended = await op()
        if appended.unlink:
            await st.blobs.delete(appended.unlink)
    else:
        # Shielded: if this request is cancelled, the queued write still completes and its
        # blob is kept or removed according to the outcome, never under a committed row.
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
    st: RelayState, op: Callable[[], Awaitable[store.Appended]], blob: WrittenBlob | None
) -> store.Appended:
    try:
        appended = await op()
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
    source = reader(request)  # stall timeout and floor rate: a trickle gets 408
    try:
        if length is not None and length <= limits.inline_max:
            # The common case (a small message in one or two TCP segments): one read.
            body = await source.exactly(length)
            if not source.at_eof():
                raise reject(400, "truncated", "the body ended early; nothing was stored")
        else:
            head = await source.upto(limits.inline_max + 1)
            if len(head) <= limits.inline_max and source.at_eof():
                body = head
            else:
                blob = await st.blobs.write(source.chunks(), limits.max_blob_size, head=head)
    except TooLarge:
        raise reject(
            413, "body_too_large", f"messages are limited to {limits.max_blob_size} bytes"
        ) from None
    except _TRUNCATED:
        raise reject(400, "truncated", "the body ended early; nothing was stored") from None
    if body == b"":  # a chunked body with no chunk
        raise reject(400, "empty_body", "a message needs a body")
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
    if not result.duplicate and not result.evicted:  # the common answer, without json.dumps
        return web.Response(
            body=b'{"seq": %d, "duplicate": false, "evicted": []}' % result.seq,
            status=201,
            content_type="application/json",
        )
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
    if _log.isEnabledFor(logging.DEBUG):
        _log.debug("stored seq %d in %s (%d bytes)", result.seq, redact(mailbox), size)


async def _push(st: RelayState, account: str, devices: list[str], payload: bytes) -> None:
    try:
        targets = await st.storage.push_targets(account=account, devices=devices)
    except Exception:  # pushes are best-effort and never fail an upload
        _log.exception("push target lookup failed")
        return
    for device_id, fcm, webhook in targets:
        st.pusher.submit(
            PushJob(
                account=account,
                device_id=device_id,
                payload=payload,
                fcm_token=fcm,
                webhook_url=webhook,
            )
        )


async def list_messages(request: web.Request) -> web.Response:
    """GET .../messages?after=&limit=&wait=: a page of messages, waiting up to ``wait`` s."""
    st, mailbox = _mailbox(request)
    limits = st.config.limits
    after = int_query(request, "after", 0, 0, 2**62)
    limit = int_query(request, "limit", 100, 1, limits.max_list)
    wait = int_query(request, "wait", 0, 0, limits.max_wait_seconds)
    fetch = partial(
        st.storage.list_messages,
        account=request[PRINCIPAL].account,
        mailbox=mailbox,
        after=after,
        limit=limit,
        list_body_max=limits.list_body_max,
    )
    page = await fetch(now=st.clock.time())
    if not page.messages and wait:
        async with st.shares.waits.hold(request[PRINCIPAL]):  # 429 past the account's share
            page = await _wait(
                st, request=request, mailbox=mailbox, fetch=fetch, wait=wait, page=page
            )
    out = [
        {
            "seq": m.seq,
            "size": m.size,
            **({"body": base64.b64encode(m.body).decode("ascii")} if m.body is not None else {}),
        }
        for m in page.messages
    ]
    return web.json_response({"messages": out, "last_seq": page.last_seq})


async def _wait(
    st: RelayState,
    *,
    request: web.Request,
    mailbox: str,
    fetch: Callable[..., Awaitable[MessagePage]],
    wait: int,
    page: MessagePage,
) -> MessagePage:
    """Long-poll: the page once a message arrives, or ``page`` (empty) after ``wait`` s."""
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
                page = await fetch(now=st.clock.time())
                if page.messages:
                    break
                await news.wait_for(remaining)
                if hold.revoked is not None:
                    raise revoked_error(hold.revoked)
        page = await fetch(now=st.clock.time())
    return page


async def get_message(request: web.Request) -> web.StreamResponse:
    """GET .../messages/{seq}: the raw ciphertext (blobs are sent from their file or object).
    With ``?presign=1`` a blob in an S3 store with a public endpoint is answered instead with
    ``{"url", "size", "expires_at"}``: a short-lived GET URL of the object itself."""
    st, mailbox = _mailbox(request)
    try:
        seq = int(request.match_info["seq"], 10)
    except ValueError:
        raise reject(400, "bad_seq", "seq must be a positive integer") from None
    if not 1 <= seq < 2**62:
        raise reject(400, "bad_seq", "seq must be a positive integer")
    presign = request.query.get("presign", "0")
    if presign not in ("0", "1"):
        raise reject(400, "bad_query", "presign is 1 (a URL for a blob, if the relay has one) or 0")
    size, body, blob = await st.storage.get_message(
        account=request[PRINCIPAL].account, mailbox=mailbox, seq=seq, now=st.clock.time()
    )
    headers = {"Cache-Control": "no-store", "Privastead-Seq": str(seq)}
    if body is not None:
        st.metrics.inc("relay_sent_bytes_total", size)
        return web.Response(body=body, content_type="application/octet-stream", headers=headers)
    assert blob is not None
    if presign == "1" and not isinstance(st.blobs, BlobStore):
        # Authorised above, for this one message: the URL opens this ciphertext only, for a
        # few minutes, and the bytes then flow from the object store, not through the relay.
        url = await st.blobs.presign(blob)
        if url is not None:
            st.metrics.inc("relay_presigned_total")
            expires_at = st.clock.time() + st.blobs.settings.presign_seconds
            return web.json_response(
                {"url": url, "size": size, "expires_at": expires_at}, headers=headers
            )
    st.metrics.inc("relay_sent_bytes_total", size)
    if not isinstance(st.blobs, BlobStore):
        streamed = await stream_object(request, st.blobs, blob, headers)
        if streamed is None:
            raise reject(404, "message_not_found", "no such message (acknowledged or expired)")
        return streamed
    path = st.blobs.path(blob)
    if size <= SMALL_BLOB:
        # Read at once (page cache) and answered with its header in one write, one syscall,
        # instead of a streamed response's separate writes.
        data = read_small_blob(path, size)
        if data is None:
            raise reject(404, "message_not_found", "no such message (acknowledged or expired)")
        return web.Response(body=data, content_type="application/octet-stream", headers=headers)
    return BlobResponse(path, size, headers, st.metrics)


async def register(request: web.Request) -> web.Response:
    """PUT .../registration: this device will receive (and must acknowledge) messages."""
    st, mailbox = _mailbox(request)
    p = request[PRINCIPAL]
    cursor = await st.storage.register(account=p.account, mailbox=mailbox, device_id=p.device_id)
    return web.json_response({"device_id": p.device_id, "cursor": cursor})


async def unregister(request: web.Request) -> web.Response:
    st, mailbox = _mailbox(request)
    p = request[PRINCIPAL]
    blobs = await st.storage.unregister(account=p.account, mailbox=mailbox, device_id=p.device_id)
    await st.blobs.delete(blobs)
    return web.Response(status=204)


async def ack(request: web.Request) -> web.Response:
    """POST .../ack {"seq": N}: cumulative; messages every device acked are deleted."""
    st, mailbox = _mailbox(request)
    p = request[PRINCIPAL]
    data = await read_json(request)
    only_keys(data, "seq")
    seq = field_int(data, "seq", 0, 2**62)
    cursor, blobs = await st.storage.ack(
        account=p.account, mailbox=mailbox, device_id=p.device_id, seq=seq
    )
    await st.blobs.delete(blobs)
    return web.json_response({"cursor": cursor})


__all__ = [
    "ack",
    "check_upload",
    "create_mailbox",
    "delete_mailbox",
    "get_message",
    "list_messages",
    "mailbox_info",
    "push_of",
    "register",
    "unregister",
    "upload",
]
