"""Value types of the crypto facade: what calls return, and the ciphersuites we allow."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

Kind = Literal["application", "commit", "proposal"]


class Ciphersuite(enum.IntEnum):
    """MLS ciphersuites (RFC 9420 §17.1) the core accepts."""

    #: MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519: the default (x86, Pi 5, Secluso apps).
    X25519_AES128GCM = 0x0001
    #: MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519: boards without AES instructions.
    X25519_CHACHA20POLY1305 = 0x0003


#: Default refusal threshold for incoming messages, checked before any decoding.
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
#: Default number of past epochs whose message keys a receiver keeps.
DEFAULT_MAX_PAST_EPOCHS = 2


@dataclass(frozen=True, slots=True)
class AddResult:
    """A commit for the existing members and a Welcome for the new ones."""

    commit: bytes
    welcome: bytes


@dataclass(frozen=True, slots=True)
class Member:
    """A group member: leaf index, identity (name) and Ed25519 public signature key."""

    index: int
    identity: bytes
    signature_key: bytes


@dataclass(frozen=True, slots=True)
class CommitChanges:
    """What a processed commit changed (identities)."""

    added: tuple[bytes, ...]
    removed: tuple[bytes, ...]
    updated: tuple[bytes, ...]
    removed_self: bool


@dataclass(frozen=True, slots=True)
class Received:
    """One processed incoming message.

    ``data`` is the plaintext of an application message and empty otherwise; ``commit`` is set
    for commits. ``epoch`` is the epoch the message was sent in.
    """

    kind: Kind
    data: bytes
    sender: bytes
    sender_index: int
    epoch: int
    aad: bytes
    commit: CommitChanges | None = None


@dataclass(frozen=True, slots=True)
class Peek:
    """Clear-text routing facts of a message: readable by anyone, including the relay."""

    group_id: bytes
    epoch: int
    content_type: Kind


@dataclass(frozen=True, slots=True)
class Handshake:
    """The handshake messages (commit, Welcome, proposal) of the latest call that emitted any.

    ``seq`` increases by one per such call and is stored in the same snapshot, so after a crash
    a caller can tell whether its own outbox already holds these messages.
    """

    seq: int
    messages: tuple[bytes, ...]
