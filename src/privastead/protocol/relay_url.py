"""Which relay URLs a client may use: ``https://`` everywhere, ``http://`` only on loopback.

Every request to a relay carries a bearer token, and pairing codes carry a pairing token: over
plain HTTP anyone on the path could copy them. Loopback (``localhost``, 127.0.0.0/8, ``::1``)
never leaves the machine, so tests, the demo and a relay behind a local TLS proxy keep working.
A trusted network without TLS is still possible, but only when the owner says so explicitly,
for each process: ``PRIVASTEAD_INSECURE_HTTP=1`` in the environment of the hub and of the app
(an environment variable, not a flag, so that every command and the running services agree).
"""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

from privastead.errors import ConfigError


def is_loopback_host(host: str) -> bool:
    """``localhost`` (and ``*.localhost``, RFC 6761) or a loopback IP address."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: The environment variable that allows plain http:// to a relay on another host.
INSECURE_HTTP_ENV = "PRIVASTEAD_INSECURE_HTTP"


def insecure_http_allowed() -> bool:
    """Whether the owner allowed plain http:// to other hosts for this process."""
    return os.environ.get(INSECURE_HTTP_ENV, "").strip().lower() in ("1", "yes", "true")


def check_relay_url(url: str, *, insecure_http: bool | None = None) -> str:
    """Returns ``url`` if a client may send tokens to it; else a :class:`ConfigError` that
    says what to do. ``insecure_http`` defaults to :func:`insecure_http_allowed`."""
    if insecure_http is None:
        insecure_http = insecure_http_allowed()
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as e:
        raise ConfigError(f"relay URL {url!r} is not a valid URL ({e})") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(
            f"relay URL {url!r} must look like https://relay.example.org (scheme and host)"
        )
    if parts.scheme == "http" and not insecure_http and not is_loopback_host(host):
        raise ConfigError(
            f"relay URL {url!r} uses plain http:// to a host that is not this machine: tokens "
            "would cross the network unencrypted. Use https:// (put the relay behind a TLS "
            f"proxy), or, only if this network is trusted, set {INSECURE_HTTP_ENV}=1 in the "
            "environment of the hub and the app"
        )
    return url
