"""Account handlers: who am I, devices, restricted tokens, and push targets."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from privastead.relay.api import DEVICE_ID, is_mailbox_id
from privastead.relay.auth import PRINCIPAL, require_device, require_owner
from privastead.relay.httputil import field_int, field_str, only_keys, read_json, reject
from privastead.relay.state import state_of
from privastead.relay.webhook import TargetPolicy

MAX_RESTRICTED_TTL = 7 * 24 * 3600
MAX_RESTRICTED_MAILBOXES = 64


async def me(request: web.Request) -> web.Response:
    """GET /v1/me: what this token is."""
    p = request[PRINCIPAL]
    return web.json_response(
        {
            "account": p.account,
            "kind": p.kind,
            "token_id": p.token_id,
            "device_id": p.device_id,
            "mailboxes": sorted(p.mailboxes) if p.mailboxes is not None else None,
            "expires_at": p.expires_at,
        }
    )


async def create_device(request: web.Request) -> web.Response:
    """POST /v1/devices (owner): a new device and its token (shown once)."""
    p = request[PRINCIPAL]
    require_owner(p)
    data = await read_json(request, optional=True)
    only_keys(data, "name")
    name = field_str(data, "name", 100, "") or ""
    st = state_of(request)
    issued = await st.storage.issue_token(
        account=p.account, kind="device", now=st.clock.time(), label=name
    )
    return web.json_response(
        {"device_id": issued.device_id, "token_id": issued.token_id, "token": issued.token},
        status=201,
    )


async def list_devices(request: web.Request) -> web.Response:
    p = request[PRINCIPAL]
    require_owner(p)
    rows = await state_of(request).storage.list_devices(account=p.account)
    return web.json_response({"devices": rows})


async def remove_device(request: web.Request) -> web.Response:
    """DELETE /v1/devices/{device} (owner): revoke its tokens, stop it holding messages."""
    p = request[PRINCIPAL]
    require_owner(p)
    device_id = request.match_info["device"]
    if not DEVICE_ID.match(device_id):
        raise reject(400, "bad_device_id", "not a device id")
    st = state_of(request)

    revoked, blobs = await st.storage.remove_device(
        account=p.account, device_id=device_id, now=st.clock.time()
    )
    # Its sockets and long-polls end now, with 401 device_removed (not at the next request).
    st.revocations.apply([(token_id, "device") for token_id in revoked])
    await st.blobs.delete(blobs)
    return web.Response(status=204)


async def set_push(request: web.Request) -> web.Response:
    """PUT /v1/devices/self/push {fcm_token, webhook_url}: where wake-ups for me go."""
    p = request[PRINCIPAL]
    require_device(p)
    st = state_of(request)
    data = await read_json(request)
    only_keys(data, "fcm_token", "webhook_url")
    fcm = field_str(data, "fcm_token", 4096, nullable=True)
    url = field_str(data, "webhook_url", 2048, nullable=True)
    if url is not None:
        parts = urlsplit(url)
        allowed = {"https", "http"} if st.config.push.webhook_allow_http else {"https"}
        if parts.scheme not in allowed or not parts.hostname:
            raise reject(
                400,
                "bad_webhook_url",
                f"webhook_url must be an absolute {' or '.join(sorted(allowed))} URL",
            )
        # A literal private, loopback, link-local... address is refused now; a name is
        # resolved and checked each time a push is sent (webhook.py).
        TargetPolicy(st.config.push.webhook_allow_networks).check_literal(parts.hostname)
    await st.storage.set_push(
        account=p.account, device_id=p.device_id, fcm_token=fcm or None, webhook_url=url or None
    )
    return web.Response(status=204)


FCM_HINT = 6  # trailing characters of the FCM token shown back, enough to recognise it


async def get_push(request: web.Request) -> web.Response:
    """GET /v1/devices/self/push: where wake-ups for me go. The FCM token is not echoed,
    only its last characters: a leaked device token should not hand out a push address."""
    p = request[PRINCIPAL]
    require_device(p)
    fcm, url = await state_of(request).storage.get_push(account=p.account, device_id=p.device_id)
    return web.json_response(
        {
            "device_id": p.device_id,
            "fcm_token_hint": fcm[-FCM_HINT:] if fcm else None,
            "webhook_url": url,
        }
    )


async def create_restricted(request: web.Request) -> web.Response:
    """POST /v1/tokens/restricted (owner): a token for a few mailboxes until an expiry."""
    p = request[PRINCIPAL]
    require_owner(p)
    data = await read_json(request)
    only_keys(data, "mailboxes", "ttl_seconds", "label")
    mailboxes = data.get("mailboxes")
    if (
        not isinstance(mailboxes, list)
        or not 1 <= len(mailboxes) <= MAX_RESTRICTED_MAILBOXES
        or not all(isinstance(m, str) and is_mailbox_id(m) for m in mailboxes)
    ):
        raise reject(400, "bad_field", "mailboxes must be a list of 1-64 mailbox ids")
    ttl = field_int(data, "ttl_seconds", 1, MAX_RESTRICTED_TTL)
    label = field_str(data, "label", 100, "") or ""
    st = state_of(request)
    now = st.clock.time()
    issued = await st.storage.issue_token(
        account=p.account,
        kind="restricted",
        now=now,
        mailboxes=mailboxes,
        expires_at=now + ttl,
        label=label,
    )
    return web.json_response(
        {
            "token_id": issued.token_id,
            "token": issued.token,
            "device_id": issued.device_id,
            "expires_at": issued.expires_at,
        },
        status=201,
    )


async def list_tokens(request: web.Request) -> web.Response:
    p = request[PRINCIPAL]
    require_owner(p)
    rows = await state_of(request).storage.list_tokens(account=p.account)
    return web.json_response({"tokens": rows})


async def revoke_token(request: web.Request) -> web.Response:
    p = request[PRINCIPAL]
    require_owner(p)
    token_id = request.match_info["token"]
    if len(token_id) != 16 or not all(c in "0123456789abcdef" for c in token_id):
        raise reject(400, "bad_token_id", "token ids are 16 hex characters")
    st = state_of(request)
    kind = await st.storage.revoke_token(token_id=token_id, now=st.clock.time(), account=p.account)
    st.revocations.apply([(token_id, kind)])
    return web.Response(status=204)


__all__ = [
    "create_device",
    "create_restricted",
    "get_push",
    "list_devices",
    "list_tokens",
    "me",
    "remove_device",
    "revoke_token",
    "set_push",
]
