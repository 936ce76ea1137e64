"""End-to-end encryption: a typed facade over the MLS core in ``privastead._native``.

Everything is bytes in, bytes out; no sockets. One :class:`Identity` per state file::

    with Identity.create(path, b"hub") as hub:
        gid = hub.create_group()
        added = hub.add_members(gid, [key_package], psk=pairing_secret)
        ciphertext = hub.encrypt(gid, b"motion at the door")

Errors come from :mod:`privastead.errors` (``CryptoError`` and ``StorageError`` subclasses).
"""

from __future__ import annotations

from privastead.crypto.identity import Identity, peek, signature_hash_backend
from privastead.crypto.short_pairing import ShortCodeExchange
from privastead.crypto.types import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_PAST_EPOCHS,
    AddResult,
    Ciphersuite,
    CommitChanges,
    Handshake,
    Kind,
    Member,
    Peek,
    Received,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_PAST_EPOCHS",
    "AddResult",
    "Ciphersuite",
    "CommitChanges",
    "Handshake",
    "Identity",
    "Kind",
    "Member",
    "Peek",
    "Received",
    "ShortCodeExchange",
    "peek",
    "signature_hash_backend",
]
