"""THE routes table of the relay, and so the index of its API.

Every route needs a bearer token unless its handler is marked ``@public`` (``/healthz``) or
``@operator`` (``/metrics``); ``openapi.yaml`` documents each one.
"""

from __future__ import annotations

from aiohttp import web

from privastead.relay import batch, devices, live, mailbox, ops, ws

MAILBOX = "/v1/mailboxes/{mailbox}"

ROUTES: list[web.RouteDef] = [
    # operations
    web.get("/healthz", ops.healthz, allow_head=False),
    web.get("/metrics", ops.metrics, allow_head=False),
    web.get("/v1/openapi.yaml", ops.openapi, allow_head=False),
    # who am I, devices, tokens, push targets
    web.get("/v1/me", devices.me, allow_head=False),
    web.post("/v1/devices", devices.create_device),
    web.get("/v1/devices", devices.list_devices, allow_head=False),
    web.put("/v1/devices/self/push", devices.set_push),
    web.get("/v1/devices/self/push", devices.get_push, allow_head=False),
    web.delete("/v1/devices/{device}", devices.remove_device),
    web.post("/v1/tokens/restricted", devices.create_restricted),
    web.get("/v1/tokens", devices.list_tokens, allow_head=False),
    web.delete("/v1/tokens/{token}", devices.revoke_token),
    # mailboxes
    web.post("/v1/messages", batch.upload_batch),
    web.put(MAILBOX, mailbox.create_mailbox),
    web.get(MAILBOX, mailbox.mailbox_info, allow_head=False),
    web.delete(MAILBOX, mailbox.delete_mailbox),
    web.post(MAILBOX + "/messages", mailbox.upload, expect_handler=mailbox.expect_upload),
    web.get(MAILBOX + "/messages", mailbox.list_messages, allow_head=False),
    web.get(MAILBOX + "/messages/{seq}", mailbox.get_message, allow_head=False),
    web.put(MAILBOX + "/registration", mailbox.register),
    web.delete(MAILBOX + "/registration", mailbox.unregister),
    web.post(MAILBOX + "/ack", mailbox.ack),
    # waiting for news, live channels
    web.get("/v1/ws", ws.subscribe_socket, allow_head=False),
    web.get("/v1/live/{session}", live.live_socket, allow_head=False),
]

__all__ = ["ROUTES"]
