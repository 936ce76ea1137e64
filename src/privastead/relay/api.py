"""Wire types of the relay API, shared by the server and ``privastead.relay.client``.

Everything here is what crosses the network: identifiers and their syntax, header names,
and the JSON shapes as frozen dataclasses. ``openapi.yaml`` describes the same thing for
other languages; ``tests/relay/test_openapi.py`` checks the two agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

API_PREFIX = "/v1"
# Client-chosen random 128-bit ids, lowercase hex. Anything else is rejected with 400, which
# also rules out path traversal: the id never reaches a file name anyway.
MAILBOX_ID = re.compile(r"\A[0-9a-f]{32}\Z")
SESSION_ID = MAILBOX_ID
# Idempotency key of an upload: short, URL- and header-safe.
MESSAGE_ID = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")
DEVICE_ID = re.compile(r"\A[0-9a-z_-]{1,40}\Z")
ACCOUNT_NAME = re.compile(r"\A[a-z0-9][a-z0-9_.-]{0,62}\Z")

HEADER_MESSAGE_ID = "Privastead-Message-Id"
HEADER_PUSH = "Privastead-Push"  # base64 of the opaque wake-up ciphertext; empty = empty push

TokenKind = Literal["owner", "device", "restricted"]
OWNER_DEVICE_ID = "owner"
# Error code for a revoked device token: the device was removed and must stop retrying.
DEVICE_REMOVED = "device_removed"
# The same for a revoked owner or restricted token, and for one past its expiry.
TOKEN_REVOKED = "token_revoked"  # noqa: S105 - an error code
TOKEN_EXPIRED = "token_expired"  # noqa: S105 - an error code
# WebSocket close code (private range 4000-4999, "4" + the HTTP status) after a socket's
# token was revoked; an error frame with the code above comes first.
WS_CLOSE_REVOKED = 4401
REVOKED_CODES = frozenset({DEVICE_REMOVED, TOKEN_REVOKED, TOKEN_EXPIRED})


def is_mailbox_id(value: str) -> bool:
    return MAILBOX_ID.match(value) is not None


def is_message_id(value: str) -> bool:
    return MESSAGE_ID.match(value) is not None


@dataclass(frozen=True)
class Eviction:
    """A message removed to make room (account quota), reported to the uploader."""

    mailbox: str
    seq: int

    def to_json(self) -> dict[str, Any]:
        return {"mailbox": self.mailbox, "seq": self.seq}


@dataclass(frozen=True)
class UploadResult:
    seq: int
    duplicate: bool = False
    evicted: tuple[Eviction, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "duplicate": self.duplicate,
            "evicted": [e.to_json() for e in self.evicted],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UploadResult:
        return cls(
            seq=int(data["seq"]),
            duplicate=bool(data["duplicate"]),
            evicted=tuple(
                Eviction(str(e["mailbox"]), int(e["seq"])) for e in data.get("evicted", [])
            ),
        )


@dataclass(frozen=True)
class MessageInfo:
    """One entry of a listing. ``body`` is present for inline (small) messages only."""

    seq: int
    size: int
    body: bytes | None = None


@dataclass(frozen=True)
class MessagePage:
    messages: tuple[MessageInfo, ...]
    last_seq: int  # highest seq ever assigned in the mailbox


@dataclass(frozen=True)
class MailboxInfo:
    id: str
    last_seq: int
    count: int
    bytes: int
    ttl_seconds: int
    devices: dict[str, int] = field(default_factory=dict)  # device id -> cursor


@dataclass(frozen=True)
class IssuedToken:
    token_id: str
    token: str  # shown once; only its hash is stored
    device_id: str
    expires_at: float | None = None


__all__ = [
    "ACCOUNT_NAME",
    "API_PREFIX",
    "DEVICE_ID",
    "DEVICE_REMOVED",
    "HEADER_MESSAGE_ID",
    "HEADER_PUSH",
    "MAILBOX_ID",
    "MESSAGE_ID",
    "OWNER_DEVICE_ID",
    "REVOKED_CODES",
    "SESSION_ID",
    "TOKEN_EXPIRED",
    "TOKEN_REVOKED",
    "WS_CLOSE_REVOKED",
    "Eviction",
    "IssuedToken",
    "MailboxInfo",
    "MessageInfo",
    "MessagePage",
    "TokenKind",
    "UploadResult",
    "is_mailbox_id",
    "is_message_id",
]
