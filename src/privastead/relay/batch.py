"""``POST /v1/messages``: many small messages in one request (the hub's outbox flush).

One HTTP request and one database operation for up to ``MAX_BATCH`` messages, each with the
same guarantees as a single upload: its own client-chosen id (stored once), its own seq in
its mailbox, its own push, evictions reported. A malformed request (bad JSON, a bad id, not
base64, a body too large to batch) is refused whole, before anything is stored; items that
are well-formed but refused by the store (unknown mailbox, id reused for other bytes, quota,
a restricted token's limits) fail on their own: the answer lists, in order, a result or an
error per item. Bodies here are small (<= ``MAX_ITEM_BODY``, stored inline);
clip fragments go through the streaming single upload.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from aiohttp import web

from privastead.errors import RelayRejectedError
from privastead.relay import store
from privastead.relay.api import is_mailbox_id, is_message_id
from privastead.relay.auth import PRINCIPAL
from privastead.relay.httputil import only_keys, read_json, reject
from privastead.relay.mailbox import push_of, stored
from privastead.relay.state import state_of

MAX_BATCH = 256
MAX_ITEM_BODY = 16 * 1024  # batches are for small messages (and inline_max, if lower)
MAX_BATCH_BODY = 8 * 1024 * 1024  # JSON text: 256 x 16 KiB bodies in base64, with room


def _error(exc: RelayRejectedError) -> dict[str, Any]:
    return {"error": {"code": exc.code, "message": str(exc), "status": exc.status}}


async def upload_batch(request: web.Request) -> web.Response:
    st = state_of(request)
    p = request[PRINCIPAL]
    limits = st.config.limits
    data = await read_json(request, limit=MAX_BATCH_BODY)
    only_keys(data, "messages")
    raw_items = data.get("messages")
    if not isinstance(raw_items, list) or not 1 <= len(raw_items) <= MAX_BATCH:
        raise reject(400, "bad_field", f"messages must be a list of 1-{MAX_BATCH} objects")
    items: list[store.NewMessage | RelayRejectedError] = []
    pushes: list[bytes | None] = []
    for index, raw in enumerate(raw_items):
        try:
            message = _parse(raw, p.account, min(MAX_ITEM_BODY, limits.inline_max))
            pushes.append(push_of(p, raw.get("push"), limits.max_push_payload))
        except RelayRejectedError as exc:
            raise reject(exc.status, exc.code, f"messages[{index}]: {exc}") from None
        if p.may_use(message.mailbox):
            items.append(message)
        else:
            items.append(reject(403, "forbidden", "this token may not use that mailbox"))
    results = await st.storage.append_many(
        items=items,
        now=st.clock.time(),
        default_ttl=limits.default_ttl_seconds,
        quota=limits.account_quota_bytes,
        wake=[push is not None for push in pushes],
        evict=p.kind != "restricted",
    )
    answer: list[dict[str, Any]] = []
    unlink: list[str] = []
    for item, result, push in zip(items, results, pushes, strict=True):
        if isinstance(result, RelayRejectedError):
            answer.append(_error(result))
            continue
        assert isinstance(item, store.NewMessage)
        unlink += result.unlink
        stored(
            st,
            appended=result,
            mailbox=item.mailbox,
            account=p.account,
            uploader=p.device_id,
            size=item.size,
            push=push,
        )
        answer.append(result.result.to_json())
    await st.blobs.delete(unlink)
    return web.json_response({"results": answer})


def _parse(raw: Any, account: str, max_body: int) -> store.NewMessage:
    if not isinstance(raw, dict):
        raise reject(400, "bad_field", "each message is an object")
    only_keys(raw, "mailbox", "id", "body", "push")
    mailbox, msg_id, body_b64 = raw.get("mailbox"), raw.get("id"), raw.get("body")
    if not isinstance(mailbox, str) or not is_mailbox_id(mailbox):
        raise reject(400, "bad_mailbox_id", "ids are 32 lowercase hex characters (128 bits)")
    if not isinstance(msg_id, str) or not is_message_id(msg_id):
        raise reject(400, "bad_message_id", "id: 1-64 chars of A-Z a-z 0-9 _ -")
    if not isinstance(body_b64, str):
        raise reject(400, "bad_field", "body must be base64 text")
    try:
        body = base64.b64decode(body_b64, validate=True)
    except (binascii.Error, ValueError):
        raise reject(400, "bad_field", "body must be base64 text") from None
    if not body:
        raise reject(400, "empty_body", "a message needs a body")
    if len(body) > max_body:
        raise reject(
            413,
            "body_too_large",
            f"batched bodies are limited to {max_body} bytes; upload larger ones alone",
        )
    return store.NewMessage(
        account=account,
        mailbox=mailbox,
        msg_id=msg_id,
        digest=hashlib.sha256(body).digest(),
        size=len(body),
        body=body,
        blob=None,
    )


__all__ = ["MAX_BATCH", "upload_batch"]
