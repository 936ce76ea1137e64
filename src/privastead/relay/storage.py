"""The relay's index behind one interface: what every storage backend implements.

Handlers ask a ``Storage`` (accounts, tokens, devices, mailboxes, messages, receipts,
revocation tombstones) and never touch a database connection. Each operation is one
transaction of the backend's: all of it happens or none of it does, and a ``RelayRejectedError``
raised inside leaves nothing behind. Operations that free message bodies stored outside the
index return the blob names to delete once the transaction committed (the caller deletes
them from the blob store: a crash in between leaves an orphan for the sweep, never a row
without its blob).

Every operation is a coroutine, so that a backend reached over the network (PostgreSQL)
fits the same handlers; the SQLite backend (``sqlite_storage``) answers its reads on the
event loop from its reader connection, as the relay always did, and queues its writes to its
single writer thread.

Times (``now``) are passed in by the caller, from the relay's clock, never read here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from privastead.errors import RelayRejectedError
from privastead.relay.accounts import Principal, Refusal
from privastead.relay.api import IssuedToken, MailboxInfo, MessagePage, TokenKind
from privastead.relay.store import Appended, NewMessage

PushTarget = tuple[str, str | None, str | None]  # (device id, FCM token, webhook URL)


class Storage(Protocol):
    # ---- mailboxes and messages ----------------------------------------------------

    async def create_mailbox(
        self, *, account: str, mailbox: str, now: float, ttl_seconds: int | None
    ) -> bool:
        """Create ``mailbox`` for ``account``; False when it already exists (theirs)."""

    async def mailbox_info(
        self, *, account: str, mailbox: str, now: float, default_ttl: int
    ) -> MailboxInfo: ...

    async def delete_mailbox(self, *, account: str, mailbox: str) -> list[str]:
        """Delete the mailbox and its messages; returns the blobs to delete."""

    async def owned(self, *, account: str, mailboxes: list[str]) -> set[str]:
        """Which of ``mailboxes`` exist and belong to ``account``."""

    async def append(
        self,
        *,
        msg: NewMessage,
        now: float,
        default_ttl: int,
        quota: int,
        wake: bool = False,
        evict: bool = True,
    ) -> Appended:
        """Store ``msg`` exactly once per message id (a retry answers the first result)."""

    async def append_many(
        self,
        *,
        items: list[NewMessage | RelayRejectedError],
        now: float,
        default_ttl: int,
        quota: int,
        wake: list[bool],
        evict: bool = True,
    ) -> list[Appended | RelayRejectedError]:
        """One transaction, each item on its own: a refused item spoils nothing else."""

    async def list_messages(
        self, *, account: str, mailbox: str, after: int, limit: int, now: float, list_body_max: int
    ) -> MessagePage: ...

    async def get_message(
        self, *, account: str, mailbox: str, seq: int, now: float
    ) -> tuple[int, bytes | None, str | None]:
        """``(size, inline body, blob name)`` of one message (exactly one of the two set)."""

    async def register(self, *, account: str, mailbox: str, device_id: str) -> int:
        """Register the device as a receiver of the mailbox; returns its cursor."""

    async def unregister(self, *, account: str, mailbox: str, device_id: str) -> list[str]: ...

    async def ack(
        self, *, account: str, mailbox: str, device_id: str, seq: int
    ) -> tuple[int, list[str]]:
        """Move the device's cursor; returns it and the blobs of messages every device acked."""

    async def push_targets(self, *, account: str, devices: list[str]) -> list[PushTarget]: ...

    async def expire(self, *, now: float) -> tuple[int, list[str]]:
        """Delete expired messages and receipts (one batch); returns (count, blobs)."""

    async def referenced_blobs(self) -> set[str]: ...

    async def stats(self) -> dict[str, Any]: ...

    # ---- tokens and devices --------------------------------------------------------

    async def verify_token(self, *, token_id: str, secret: str, now: float) -> Principal | Refusal:
        """Constant-time check of a token's secret; a Refusal says why not."""

    async def issue_token(
        self,
        *,
        account: str,
        kind: TokenKind,
        now: float,
        device_id: str | None = None,
        mailboxes: list[str] | None = None,
        expires_at: float | None = None,
        label: str = "",
    ) -> IssuedToken: ...

    async def revoke_token(self, *, token_id: str, now: float, account: str | None = None) -> str:
        """Revoke (leaving a tombstone); returns the revoked token's kind."""

    async def list_tokens(self, *, account: str) -> list[dict[str, Any]]: ...

    async def list_devices(self, *, account: str) -> list[dict[str, Any]]: ...

    async def remove_device(
        self, *, account: str, device_id: str, now: float
    ) -> tuple[list[str], list[str]]:
        """Revoke the device's tokens and drop its registrations, in one transaction;
        returns (revoked token ids, blobs to delete)."""

    async def set_push(
        self, *, account: str, device_id: str, fcm_token: str | None, webhook_url: str | None
    ) -> None: ...

    async def get_push(self, *, account: str, device_id: str) -> tuple[str | None, str | None]: ...

    # ---- revocation tombstones -----------------------------------------------------

    async def newest_revocation(self) -> int: ...

    async def revoked_since(self, *, after_id: int) -> tuple[int, list[tuple[str, str]]]:
        """Tombstones written after ``after_id``: (newest id, [(token id, kind)])."""

    async def prune_revoked(self, *, before: float) -> int: ...

    # ---- nameplates (short-code pairing) -------------------------------------------

    async def add_nameplate(
        self,
        *,
        account: str,
        mailbox: str,
        now: float,
        expires_at: float,
        per_account: int,
        choose: Callable[[int], int],
    ) -> int | None:
        """Open a nameplate naming ``mailbox`` until ``expires_at`` (expired ones are dropped
        first). ``choose(open)`` picks a candidate number given how many are open, or raises
        to refuse; None when ``account`` already holds ``per_account``."""

    async def claim_nameplate(
        self, *, nameplate: int, now: float
    ) -> tuple[str, IssuedToken] | None:
        """Remove the nameplate and, in the same transaction, issue a restricted token for
        its mailbox expiring with it: ``(mailbox, token)``, or None (unknown or expired)."""


__all__ = ["PushTarget", "Storage"]
