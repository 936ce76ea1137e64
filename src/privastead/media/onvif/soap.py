"""The SOAP that ONVIF cameras speak: envelopes, WS-Security UsernameToken, careful parsing.

ONVIF (Profile S) is SOAP 1.2 over HTTP for the device and media services, and over UDP for
WS-Discovery. The hub only needs a handful of calls, so envelopes are small templates and
answers are read by element *local* names: cameras disagree on prefixes and sometimes on
namespace versions, never on names.

Everything a camera sends is untrusted (the camera LAN is hostile): messages are bounded in
size, and any document type declaration is refused before parsing. SOAP forbids DTDs (SOAP
1.2 part 1, 5), and without one no entity can expand, so neither a billion-laughs document nor
an external entity reaches the parser.

Authentication is the WS-Security UsernameToken of ONVIF Core 5.12: ``PasswordDigest =
Base64(SHA-1(nonce + created + password))``, with ``created`` on the camera's clock (read
first with the unauthenticated ``GetSystemDateAndTime``), since cameras reject tokens made
far from their own time.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import secrets
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from xml.sax.saxutils import escape

from privastead.errors import MediaError

SOAP_ENV = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
_OASIS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401"
_TOKEN_PROFILE = _OASIS + "-wss-username-token-profile-1.0"
DIGEST_TYPE = f"{_TOKEN_PROFILE}#PasswordDigest"  # the URI naming the scheme
NONCE_ENCODING = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)
MAX_MESSAGE = 1 << 20  # bytes: a profile list of a 16-channel NVR fits many times over


class OnvifError(MediaError):
    """A camera's ONVIF service failed, refused, or answered something unreadable."""


class OnvifAuthError(OnvifError):
    """The camera refused the credentials (or asked for some)."""


def parse(data: bytes) -> ET.Element:
    """An untrusted XML message as an element tree (``OnvifError`` if refused)."""
    if len(data) > MAX_MESSAGE:
        raise OnvifError(f"message of {len(data)} bytes is too large")
    head = data[:4096].lower()
    if b"<!doctype" in data.lower() or b"<!entity" in head:
        raise OnvifError("message carries a document type declaration (SOAP forbids it)")
    try:
        return ET.fromstring(data)  # noqa: S314 - bounded and DTD-free (checked above)
    except ET.ParseError as exc:
        raise OnvifError(f"malformed XML: {exc}") from None


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def children(element: ET.Element, name: str) -> Iterator[ET.Element]:
    """Direct children of ``element`` named ``name`` (any namespace)."""
    return (c for c in element if local(c.tag) == name)


def find(element: ET.Element, *path: str) -> ET.Element | None:
    """The first descendant reached through ``path`` (local names; the first step may be
    anywhere below ``element``, later steps are children)."""
    for start in element.iter():
        if local(start.tag) != path[0]:
            continue
        node: ET.Element | None = start
        for name in path[1:]:
            node = next(children(node, name), None) if node is not None else None
        if node is not None:
            return node
    return None


def text(element: ET.Element | None, *path: str) -> str:
    node = find(element, *path) if element is not None and path else element
    return (node.text or "").strip() if node is not None else ""


def fault(envelope: ET.Element) -> str | None:
    """The reason of a SOAP fault in ``envelope`` (None if it is no fault)."""
    node = find(envelope, "Fault")
    if node is None:
        return None
    reason = text(node, "Reason", "Text") or text(node, "faultstring")
    subcodes = [local((s.text or "").strip()) for s in node.iter() if local(s.tag) == "Value"]
    return " / ".join(p for p in (reason, ", ".join(subcodes)) if p) or "SOAP fault"


def is_auth_fault(reason: str) -> bool:
    lowered = reason.lower()
    return "notauthorized" in lowered or "not authorized" in lowered


def username_token(user: str, password: str, now: datetime.datetime) -> str:
    """The WS-Security header of a request, ``now`` on the camera's clock (UTC)."""
    nonce = secrets.token_bytes(16)
    created = now.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    digest = hashlib.sha1(nonce + created.encode() + password.encode()).digest()  # noqa: S324 - ONVIF's mandated scheme
    return (
        f'<wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}" s:mustUnderstand="1">'
        "<wsse:UsernameToken>"
        f"<wsse:Username>{escape(user)}</wsse:Username>"
        f'<wsse:Password Type="{DIGEST_TYPE}">{base64.b64encode(digest).decode()}'
        "</wsse:Password>"
        f'<wsse:Nonce EncodingType="{NONCE_ENCODING}">{base64.b64encode(nonce).decode()}'
        "</wsse:Nonce>"
        f"<wsu:Created>{created}</wsu:Created>"
        "</wsse:UsernameToken></wsse:Security>"
    )


def check_username_token(
    header: ET.Element | None, user: str, password: str, now: datetime.datetime, skew: float
) -> bool:
    """Whether ``header`` holds a valid PasswordDigest token for ``user`` made within
    ``skew`` seconds of ``now`` (the device side; camsim uses it)."""
    import hmac

    token = find(header, "UsernameToken") if header is not None else None
    if token is None or text(token, "Username") != user:
        return False
    try:
        nonce = base64.b64decode(text(token, "Nonce"), validate=True)
        given = base64.b64decode(text(token, "Password"), validate=True)
        created = text(token, "Created")
        when = datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return False
    if abs((now - when).total_seconds()) > skew:
        return False
    expected = hashlib.sha1(nonce + created.encode() + password.encode()).digest()  # noqa: S324
    return hmac.compare_digest(expected, given)


def envelope(body: str, header: str = "", namespaces: str = "") -> bytes:
    """A SOAP 1.2 envelope around ``body`` (``namespaces``: extra xmlns declarations)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{SOAP_ENV}" {namespaces}>'
        f"<s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def message_id() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


__all__ = [
    "MAX_MESSAGE",
    "SOAP_ENV",
    "OnvifAuthError",
    "OnvifError",
    "check_username_token",
    "children",
    "envelope",
    "fault",
    "find",
    "is_auth_fault",
    "local",
    "message_id",
    "parse",
    "text",
    "username_token",
]
