"""``Identity``: one MLS client bound to one locked, atomically written state file.

Every mutating method is a transaction: when it returns, the new state (and ``app_data``, if
given) is durable on disk; when it raises, the state is exactly as before. The Rust core runs
with the GIL released, so worker threads can encrypt while the event loop runs; calls on one
identity are serialised by a lock inside the core.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, cast

from privastead._native import NativeClient
from privastead._native import peek as _peek
from privastead._native import sha512_backend as _sha512_backend
from privastead.compat import Self
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
from privastead.errors import PrivasteadError

if TYPE_CHECKING:
    from privastead._native import _Received as _RawReceived

StrPath = str | os.PathLike[str]


def peek(message: bytes, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> Peek:
    """Group id, epoch and content type of ``message``, without any key: for routing and for
    buffering messages of a future epoch. Raises ``DecodeError`` on malformed input."""
    group_id, epoch, kind = _peek(bytes(message), max_message_size)
    return Peek(group_id=group_id, epoch=epoch, content_type=cast(Kind, kind))


def signature_hash_backend() -> str:
    """Which SHA-512 implementation this process's Ed25519 signatures hash messages with: the
    system's OpenSSL 3 (``"OpenSSL 3.x.y ... (system libcrypto)"``) where it loads and passes
    its self-test, AWS-LC otherwise (``"AWS-LC (why)"``). Speed only; signatures are the same."""
    return _sha512_backend()


def _received(raw: _RawReceived) -> Received:
    kind, data, sender, index, epoch, aad, changes = raw
    commit = None
    if changes is not None:
        added, removed, updated, removed_self = changes
        commit = CommitChanges(tuple(added), tuple(removed), tuple(updated), removed_self)
    return Received(
        kind=cast(Kind, kind),
        data=data,
        sender=sender,
        sender_index=index,
        epoch=epoch,
        aad=aad,
        commit=commit,
    )


class Identity:
    """An MLS client (one signer, its groups, its app data) owning one state file.

    Policy enforced on incoming messages: only encrypted framing; the sender is a member; only
    the group's committer (its creator, or for a joiner the Welcome's sender) commits; other
    members only propose updates of their own leaf; commits carry nothing beyond path updates,
    Adds, Removes (never of the committer), Updates by reference and PSKs the receiver holds.
    """

    __slots__ = ("_native",)

    def __init__(self, native: NativeClient) -> None:
        self._native = native

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: StrPath,
        name: bytes,
        *,
        ciphersuite: Ciphersuite = Ciphersuite.X25519_AES128GCM,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_past_epochs: int = DEFAULT_MAX_PAST_EPOCHS,
    ) -> Self:
        """Create a new state file with a fresh Ed25519 signer. ``name`` is the identity other
        members see. Raises ``StorageError`` if the file exists, ``StateLockedError`` if
        another process holds it."""
        return cls(
            NativeClient.create(
                path, bytes(name), int(ciphersuite), max_message_size, max_past_epochs
            )
        )

    @classmethod
    def open(
        cls,
        path: StrPath,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_past_epochs: int = DEFAULT_MAX_PAST_EPOCHS,
    ) -> Self:
        """Open an existing state file and lock it for this process. Raises
        ``StateLockedError`` if another process holds it, ``StorageError`` if it is missing,
        corrupt or from an unsupported version."""
        return cls(NativeClient.open(path, max_message_size, max_past_epochs))

    def close(self) -> None:
        """Release the state file's lock. Later calls raise ``GroupStateError``."""
        self._native.close()

    @property
    def closed(self) -> bool:
        return self._native.closed

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- who we are ------------------------------------------------------------------------

    @property
    def name(self) -> bytes:
        return self._native.name

    @property
    def signature_key(self) -> bytes:
        """Our Ed25519 public key; show its fingerprint to let peers check who invited them."""
        return self._native.signature_key

    @property
    def ciphersuite(self) -> Ciphersuite:
        return Ciphersuite(self._native.ciphersuite)

    @property
    def max_message_size(self) -> int:
        return self._native.max_message_size

    @property
    def app_data(self) -> bytes:
        """Opaque bytes kept in the same atomic snapshot as the MLS state (e.g. an outbox)."""
        return self._native.app_data

    def set_app_data(self, data: bytes) -> None:
        self._native.set_app_data(bytes(data))

    @property
    def last_handshake(self) -> Handshake:
        """The handshake messages of the latest call that emitted any, for crash recovery."""
        seq, messages = self._native.last_handshake()
        return Handshake(seq=seq, messages=tuple(messages))

    # -- joining ---------------------------------------------------------------------------

    def key_package(self, *, app_data: bytes | None = None) -> bytes:
        """A fresh KeyPackage, durable before it is returned (so its Welcome can be joined)."""
        return self._native.key_package(app_data)

    def create_group(self, *, app_data: bytes | None = None) -> bytes:
        """Create a group with a random 16-byte id; we are its only committer."""
        return self._native.create_group(app_data)

    def add_members(
        self,
        group_id: bytes,
        key_packages: Sequence[bytes],
        *,
        psk: bytes | None = None,
        app_data: bytes | None = None,
    ) -> AddResult:
        """Add members: a commit for current members and a Welcome for the new ones. Stored
        update proposals are folded in. With ``psk`` (the pairing secret) the commit mixes it
        into the key schedule: only a joiner holding it can join, and every existing member
        would need it too, so pair through a fresh two-member group."""
        commit, welcome = self._native.add_members(
            group_id, [bytes(k) for k in key_packages], psk, app_data
        )
        return AddResult(commit=commit, welcome=welcome)

    def join(
        self,
        welcome: bytes,
        *,
        inviter_identity: bytes | None = None,
        inviter_signature_key: bytes | None = None,
        psk: bytes | None = None,
        app_data: bytes | None = None,
    ) -> bytes:
        """Join from a Welcome and return the group id. At least one inviter check is
        required (``ValueError`` otherwise). A wrong or missing ``psk`` or an unexpected
        inviter raises ``JoinError`` and leaves the state, key packages included, unchanged."""
        return self._native.join(
            bytes(welcome), inviter_identity, inviter_signature_key, psk, app_data
        )

    # -- committing (the group's committer only) -------------------------------------------

    def remove_members(
        self,
        group_id: bytes,
        members: Sequence[bytes | int],
        *,
        app_data: bytes | None = None,
    ) -> bytes:
        """Remove members given by identity (bytes) or leaf index (int); returns the commit.
        Removed members decrypt nothing sent after it."""
        identities = [m for m in members if isinstance(m, bytes)]
        indexes = [m for m in members if isinstance(m, int)]
        return self._native.remove_members(group_id, identities, indexes, app_data)

    def self_update(self, group_id: bytes, *, app_data: bytes | None = None) -> bytes:
        """Commit new keys for ourselves and for every member whose update proposal we stored
        (post-compromise security for clients). Returns the commit."""
        return self._native.self_update(group_id, app_data)

    def propose_update(self, group_id: bytes, *, app_data: bytes | None = None) -> bytes:
        """For members that may not commit: an Update proposal the committer will fold in.
        Until that commit arrives this member cannot send application messages."""
        return self._native.propose_update(group_id, app_data)

    # -- messages --------------------------------------------------------------------------

    def process(
        self, group_id: bytes, message: bytes, *, app_data: bytes | None = None
    ) -> Received:
        """Decrypt and apply an incoming message under the group policy.

        Raises ``DecryptionError`` (any cryptographic failure, one fixed text),
        ``WrongEpochError`` (a future epoch: buffer it), ``StaleMessageError`` (keys gone),
        ``DuplicateMessageError`` (already processed: drop), ``PolicyError`` or ``DecodeError``.
        """
        return _received(self._native.process(group_id, bytes(message), app_data))

    def process_batch(
        self, group_id: bytes, messages: Sequence[bytes], *, app_data: bytes | None = None
    ) -> list[Received | PrivasteadError]:
        """``process`` for several messages of one group, with one durable write.

        Returns one entry per message, in order: its ``Received``, or the exception ``process``
        would have raised for it (that message changed nothing; the others stand). Raises
        ``StorageError`` only if the batch could not be persisted, and then none of it
        happened. Use it for everything one fetch from the relay brought.
        """
        results = self._native.process_batch(group_id, [bytes(m) for m in messages], app_data)
        out: list[Received | PrivasteadError] = []
        for r in results:
            if isinstance(r, PrivasteadError):
                out.append(r)
            elif isinstance(r, BaseException):  # never: the core maps every error
                raise r
            else:
                out.append(_received(r))
        return out

    def encrypt(
        self,
        group_id: bytes,
        plaintext: bytes,
        aad: bytes = b"",
        *,
        app_data: bytes | None = None,
    ) -> bytes:
        """Encrypt one application message. ``aad`` travels in the clear: keep secrets out."""
        return self._native.encrypt(group_id, bytes(plaintext), bytes(aad), app_data)

    def encrypt_batch(
        self,
        group_id: bytes,
        plaintexts: Sequence[bytes],
        aad: bytes = b"",
        *,
        app_data: bytes | None = None,
    ) -> list[bytes]:
        """Encrypt several messages with one durable write, all or nothing: if one cannot be
        encrypted, none is and the state is as before (e.g. fragments queued together)."""
        return self._native.encrypt_batch(
            group_id, [bytes(p) for p in plaintexts], bytes(aad), app_data
        )

    # -- reading the group -----------------------------------------------------------------

    def export_secret(self, group_id: bytes, label: str, context: bytes, length: int) -> bytes:
        """An MLS exporter secret of the current epoch (1..65535 bytes)."""
        return self._native.export_secret(group_id, label, bytes(context), length)

    def epoch(self, group_id: bytes) -> int:
        return self._native.epoch(group_id)

    def committer(self, group_id: bytes) -> int:
        """Leaf index of the only member allowed to commit."""
        return self._native.committer(group_id)

    def members(self, group_id: bytes) -> list[Member]:
        return [Member(i, ident, key) for i, ident, key in self._native.members(group_id)]

    def safety_code(self, group_id: bytes) -> str:
        """12 digits (``"1234 5678 9012"``) from the epoch authenticator: equal on every member
        at the same epoch; owners compare them to detect a man in the middle."""
        return self._native.safety_code(group_id)

    def groups(self) -> list[bytes]:
        return self._native.groups()

    def delete_group(self, group_id: bytes, *, app_data: bytes | None = None) -> None:
        """Forget a group and every key of it."""
        self._native.delete_group(group_id, app_data)

    @staticmethod
    def peek(message: bytes, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> Peek:
        """See :func:`privastead.crypto.peek`."""
        return peek(message, max_message_size=max_message_size)
