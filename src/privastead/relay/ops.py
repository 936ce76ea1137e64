"""Operational handlers: health (public), metrics (operator token), the OpenAPI document."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from privastead.relay.auth import operator, public
from privastead.relay.state import state_of


@public
async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: 200 once storage is open, 503 while starting or stopping."""
    st = state_of(request)
    if not st.ready:
        return web.json_response({"status": "starting"}, status=503)
    return web.json_response({"status": "ok"})


@operator
async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: Prometheus text format."""
    st = state_of(request)
    stats = await st.storage.stats()
    m = st.metrics
    m.set("relay_mailbox_messages", stats["messages"])
    m.set("relay_mailbox_bytes", stats["bytes"])
    m.set("relay_mailbox_depth_max", stats["max_depth"])
    m.set("relay_websockets", len(st.websockets))
    m.set("relay_live_queued_bytes", sum(st.live.queued_bytes.values()))
    m.set("relay_live_sessions", len(st.live.sessions))
    return web.Response(
        text=m.render(), content_type="text/plain", headers={"Cache-Control": "no-store"}
    )


def openapi_text() -> str:
    return resources.files("privastead.relay").joinpath("openapi.yaml").read_text("utf-8")


async def openapi(request: web.Request) -> web.Response:
    """GET /v1/openapi.yaml: the API description this relay implements."""
    return web.Response(text=openapi_text(), content_type="application/yaml")


__all__ = ["healthz", "metrics", "openapi", "openapi_text"]
