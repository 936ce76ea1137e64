"""RTSP digest authentication (RFC 2617 / RFC 7616 with MD5), the scheme IP cameras use.

MD5 is what cameras and FFmpeg speak; it protects nothing on an untrusted network, which is
why the hub treats the camera LAN as hostile and this exists only to behave like a camera.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

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


@dataclass
class DigestAuth:
    """A realm with one user; nonces are random per server instance."""

    user: str
    password: str
    realm: str = "privastead-camsim"

    def __post_init__(self) -> None:
        self.nonce = secrets.token_hex(16)

    def challenge(self) -> str:
        return f'Digest realm="{self.realm}", nonce="{self.nonce}", algorithm=MD5, qop="auth"'

    def check(self, method: str, header: str | None) -> bool:
        """True if ``header`` proves knowledge of the password for this request."""
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


__all__ = ["DigestAuth", "parse_digest"]
