"""THE routes table of the relay, and so the index of its API.

Every route needs a bearer token unless its handler is marked ``@public`` (``/healthz``) or
``@operator`` (``/metrics``); ``openapi.yaml`` documents each one.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from privastead.relay import batch, devices, live, mailbox, ops, ws
from privastead.relay.expect import expect_after
from privastead.relay.httputil import MAX_JSON_BODY, body_limit

MAILBOX = "/v1/mailboxes/{mailbox}"
# `Expect: 100-continue` is answered only after authentication and the route's own checks
# (aiohttp's default would say 100 to anybody, before any check).
JSON: dict[str, Any] = {"expect_handler": expect_after(body_limit(MAX_JSON_BODY))}
NO_BODY: dict[str, Any] = {"expect_handler": expect_after(body_limit(0)), "allow_head": False}

ROUTES: list[web.RouteDef] = [
    # operations
    web.get("/healthz", ops.healthz, **NO_BODY),
    web.get("/metrics", ops.metrics, **NO_BODY),
    web.get("/v1/openapi.yaml", ops.openapi, **NO_BODY),
    # who am I, devices, tokens, push targets
    web.get("/v1/me", devices.me, **NO_BODY),
    web.post("/v1/devices", devices.create_device, **JSON),
    web.get("/v1/devices", devices.list_devices, **NO_BODY),
    web.put("/v1/devices/self/push", devices.set_push, **JSON),
    web.get("/v1/devices/self/push", devices.get_push, **NO_BODY),
    web.delete("/v1/devices/{device}", devices.remove_device, **JSON),
    web.post("/v1/tokens/restricted", devices.create_restricted, **JSON),
    web.get("/v1/tokens", devices.list_tokens, **NO_BODY),
    web.delete("/v1/tokens/{token}", devices.revoke_token, **JSON),
    # mailboxes
    web.post(
        "/v1/messages",
        batch.upload_batch,
        expect_handler=expect_after(body_limit(batch.MAX_BATCH_BODY)),
    ),
    web.put(MAILBOX, mailbox.create_mailbox, **JSON),
    web.get(MAILBOX, mailbox.mailbox_info, **NO_BODY),
    web.delete(MAILBOX, mailbox.delete_mailbox, **JSON),
    web.post(
        MAILBOX + "/messages", mailbox.upload, expect_handler=expect_after(mailbox.check_upload)
    ),
    web.get(MAILBOX + "/messages", mailbox.list_messages, **NO_BODY),
    web.get(MAILBOX + "/messages/{seq}", mailbox.get_message, **NO_BODY),
    web.put(MAILBOX + "/registration", mailbox.register, **JSON),
    web.delete(MAILBOX + "/registration", mailbox.unregister, **JSON),
    web.post(MAILBOX + "/ack", mailbox.ack, **JSON),
    # waiting for news, live channels
    web.get("/v1/ws", ws.subscribe_socket, **NO_BODY),
    web.get("/v1/live/{session}", live.live_socket, **NO_BODY),
]

__all__ = ["ROUTES"]
