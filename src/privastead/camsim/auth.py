"""RTSP authentication as IP cameras do it: digest (RFC 2617 / RFC 7616 with MD5) or Basic.

MD5 digest is what most cameras and FFmpeg speak; Basic (RFC 7617) sends the password in the
clear and is still the only scheme of some cameras. Neither protects anything on an untrusted
network, which is why the hub treats the camera LAN as hostile; this exists only to behave like
a camera. Both compare in constant time and count the requests they refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from typing import Protocol

_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]+))')


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def parse_digest(header: str) -> dict[str, str]:
    """Parameters of an ``Authorization: Digest ...`` header (empty if not digest)."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        return {}
    return {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _PARAM.finditer(rest)
    }


class Authenticator(Protocol):
    """What the RTSP server asks of a scheme: a challenge and a check per request."""

    refused: int

    def challenge(self) -> str: ...

    def check(self, method: str, header: str | None) -> bool: ...


@dataclass
class DigestAuth:
    """A realm with one user; nonces are random per server instance."""

    user: str
    password: str
    realm: str = "privastead-camsim"
    refused: int = field(default=0, init=False)  # requests with wrong or missing credentials

    def __post_init__(self) -> None:
        self.nonce = secrets.token_hex(16)

    def challenge(self) -> str:
        return f'Digest realm="{self.realm}", nonce="{self.nonce}", algorithm=MD5, qop="auth"'

    def check(self, method: str, header: str | None) -> bool:
        """True if ``header`` proves knowledge of the password for this request."""
        ok = self._check(method, header)
        self.refused += not ok
        return ok

    def _check(self, method: str, header: str | None) -> bool:
        if not header:
            return False
        p = parse_digest(header)
        if p.get("username") != self.user or p.get("nonce") != self.nonce:
            return False
        if p.get("realm") != self.realm or "uri" not in p or "response" not in p:
            return False
        ha1 = _md5(f"{self.user}:{self.realm}:{self.password}")
        ha2 = _md5(f"{method}:{p['uri']}")
        if p.get("qop") == "auth":
            expected = _md5(
                f"{ha1}:{self.nonce}:{p.get('nc', '')}:{p.get('cnonce', '')}:auth:{ha2}"
            )
        else:
            expected = _md5(f"{ha1}:{self.nonce}:{ha2}")
        return hmac.compare_digest(expected, p["response"])


@dataclass
class BasicAuth:
    """RFC 7617 Basic: ``user:password`` in base64 on every request."""

    user: str
    password: str
    realm: str = "privastead-camsim"
    refused: int = field(default=0, init=False)

    def challenge(self) -> str:
        return f'Basic realm="{self.realm}"'

    def check(self, method: str, header: str | None) -> bool:
        del method  # Basic does not bind the credentials to the request
        ok = False
        scheme, _, value = (header or "").strip().partition(" ")
        if scheme.lower() == "basic":
            try:
                given = base64.b64decode(value.strip(), validate=True)
            except (binascii.Error, ValueError):
                given = b""
            expected = f"{self.user}:{self.password}".encode()
            ok = hmac.compare_digest(given, expected)
        self.refused += not ok
        return ok


def make_auth(scheme: str, user: str, password: str) -> DigestAuth | BasicAuth:
    """``scheme`` "digest" or "basic"."""
    if scheme == "digest":
        return DigestAuth(user, password)
    if scheme == "basic":
        return BasicAuth(user, password)
    raise ValueError(f"unknown RTSP auth scheme {scheme!r}: use digest or basic")


__all__ = ["Authenticator", "BasicAuth", "DigestAuth", "make_auth", "parse_digest"]
