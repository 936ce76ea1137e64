"""The local UI's guard: a per-launch secret in the URL path, Host and Origin checks, headers.

Threats (docs/design/client-ui.md): other users of this machine can connect to 127.0.0.1, and
any web page the owner visits can make the browser send requests to it (CSRF, DNS rebinding,
cross-site WebSockets). So every request must carry the 256-bit secret as its first path
segment, name this server in ``Host``, and come from this server's own ``Origin`` when the
browser sends one (always for WebSockets and POSTs). The secret lives in the path, not a
cookie, because cookies are shared by every port of 127.0.0.1 and would leak to other local
servers. Failures are a bare 403 that says nothing about what was wrong.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from privastead.errors import ConfigError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the secret is in every URL
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def new_secret() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


def check_loopback(host: str) -> str:
    """``host`` if it is a loopback address; the UI refuses to listen anywhere else."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"the UI listens on a loopback IP address only, not {host!r}") from None
    if not address.is_loopback:
        raise ConfigError(f"the UI listens on 127.0.0.1 or ::1 only, not {host}")
    return host


class Guard:
    """aiohttp middleware enforcing the rules above; ``port`` is the bound port."""

    def __init__(self, secret: str, host: str, port: int) -> None:
        self.secret = secret
        names = {host, "localhost"} | ({"[::1]"} if host == "::1" else set())
        self.hosts = {f"{n}:{port}" for n in names if n != "::1"}
        self.origins = {f"http://{h}" for h in self.hosts}

    def allowed(self, request: web.Request) -> bool:
        if request.headers.get("Host", "") not in self.hosts:
            return False  # DNS rebinding: a foreign name resolving to 127.0.0.1
        origin = request.headers.get("Origin")
        if origin is not None and origin not in self.origins:
            return False
        needs_origin = request.method not in ("GET", "HEAD") or (
            request.headers.get("Upgrade", "").lower() == "websocket"
        )
        if needs_origin and origin is None:
            return False
        if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return False
        first = request.path.split("/", 2)[1] if request.path.startswith("/") else ""
        return hmac.compare_digest(first.encode(), self.secret.encode())

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self.allowed(request):
            response: web.StreamResponse = web.Response(status=403, text="forbidden\n")
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                response = web.Response(status=exc.status, text=exc.text or exc.reason)
        if not response.prepared:  # a WebSocket or a file response may be on the wire already
            response.headers.update(HEADERS)
            # Nothing is cached unless a handler says so (thumbnails: immutable, private).
            response.headers.setdefault("Cache-Control", "no-store")
        return response


__all__ = ["CSP", "Guard", "check_loopback", "new_secret"]
