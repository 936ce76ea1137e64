"""The SQLite backend of ``relay.storage.Storage``: the relay's single-process default.

Writes go to the ``Database`` writer thread (group commit, one transaction per operation);
reads run on the event loop against the reader connection (WAL: a consistent snapshot that
never waits for the writer), which is what the relay did before this interface existed, so
behaviour and cost are unchanged. The SQL itself lives in ``store`` and ``accounts``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from functools import partial
from typing import Any

from privastead.errors import RelayRejectedError
from privastead.relay import accounts, store
from privastead.relay.accounts import Principal, Refusal
from privastead.relay.api import IssuedToken, MailboxInfo, MessagePage, TokenKind
from privastead.relay.db import Database
from privastead.relay.storage import PushTarget, Storage
from privastead.relay.store import Appended, NewMessage


def append_many(
    conn: sqlite3.Connection,
    *,
    items: list[NewMessage | RelayRejectedError],
    now: float,
    default_ttl: int,
    quota: int,
    wake: list[bool],
    evict: bool = True,
) -> list[Appended | RelayRejectedError]:
    """Append each message in its own savepoint, so one bad item spoils nothing else."""
    out: list[Appended | RelayRejectedError] = []
    for item, want_wake in zip(items, wake, strict=True):
        if isinstance(item, RelayRejectedError):
            out.append(item)
            continue
        conn.execute("SAVEPOINT item")
        try:
            out.append(
                store.append(conn, item, now, default_ttl, quota, wake=want_wake, evict=evict)
            )
        except RelayRejectedError as exc:
            conn.execute("ROLLBACK TO item")
            out.append(exc)
        conn.execute("RELEASE item")
    return out


def _remove_device(
    conn: sqlite3.Connection, account: str, device_id: str, now: float
) -> tuple[list[str], list[str]]:
    revoked = accounts.remove_device(conn, account, device_id, now)
    return revoked, store.collect_for_device(conn, account, device_id)


def _add_nameplate(
    conn: sqlite3.Connection,
    *,
    account: str,
    mailbox: str,
    now: float,
    expires_at: float,
    per_account: int,
    choose: Callable[[int], int],
) -> int | None:
    conn.execute("DELETE FROM nameplates WHERE expires_at <= ?", (now,))
    held = conn.execute("SELECT COUNT(*) FROM nameplates WHERE account = ?", (account,)).fetchone()
    if held[0] >= per_account:
        return None
    total = int(conn.execute("SELECT COUNT(*) FROM nameplates").fetchone()[0])
    while True:
        n = choose(total)
        added = conn.execute(
            "INSERT OR IGNORE INTO nameplates(nameplate, account, mailbox, expires_at)"
            " VALUES (?, ?, ?, ?)",
            (n, account, mailbox, expires_at),
        )
        if added.rowcount:
            return n


def _claim_nameplate(
    conn: sqlite3.Connection, *, nameplate: int, now: float
) -> tuple[str, IssuedToken] | None:
    row = conn.execute(
        "SELECT account, mailbox, expires_at FROM nameplates WHERE nameplate = ?", (nameplate,)
    ).fetchone()
    if row is None:
        return None
    conn.execute("DELETE FROM nameplates WHERE nameplate = ?", (nameplate,))
    account, mailbox, expires_at = row
    if expires_at <= now:
        return None
    issued = accounts.issue_token(
        conn,
        account,
        "restricted",
        now,
        mailboxes=[mailbox],
        expires_at=expires_at,
        label="nameplate",
    )
    return mailbox, issued


class SqliteStorage:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- mailboxes and messages ----------------------------------------------------

    async def create_mailbox(
        self, *, account: str, mailbox: str, now: float, ttl_seconds: int | None
    ) -> bool:
        return await self.db.run(
            partial(
                store.create_mailbox,
                account=account,
                mailbox=mailbox,
                now=now,
                ttl_seconds=ttl_seconds,
            )
        )

    async def mailbox_info(
        self, *, account: str, mailbox: str, now: float, default_ttl: int
    ) -> MailboxInfo:
        return self.db.read(
            partial(
                store.mailbox_info,
                account=account,
                mailbox=mailbox,
                now=now,
                default_ttl=default_ttl,
            )
        )

    async def delete_mailbox(self, *, account: str, mailbox: str) -> list[str]:
        return await self.db.run(partial(store.delete_mailbox, account=account, mailbox=mailbox))

    async def owned(self, *, account: str, mailboxes: list[str]) -> set[str]:
        return self.db.read(partial(store.owned, account=account, mailboxes=mailboxes))

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
        return await self.db.run(
            partial(
                store.append,
                msg=msg,
                now=now,
                default_ttl=default_ttl,
                quota=quota,
                wake=wake,
                evict=evict,
            )
        )

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
        return await self.db.run(
            partial(
                append_many,
                items=items,
                now=now,
                default_ttl=default_ttl,
                quota=quota,
                wake=wake,
                evict=evict,
            )
        )

    async def list_messages(
        self, *, account: str, mailbox: str, after: int, limit: int, now: float, list_body_max: int
    ) -> MessagePage:
        return self.db.read(
            partial(
                store.list_messages,
                account=account,
                mailbox=mailbox,
                after=after,
                limit=limit,
                now=now,
                list_body_max=list_body_max,
            )
        )

    async def get_message(
        self, *, account: str, mailbox: str, seq: int, now: float
    ) -> tuple[int, bytes | None, str | None]:
        return self.db.read(
            partial(store.get_message, account=account, mailbox=mailbox, seq=seq, now=now)
        )

    async def register(self, *, account: str, mailbox: str, device_id: str) -> int:
        return await self.db.run(
            partial(store.register, account=account, mailbox=mailbox, device_id=device_id)
        )

    async def unregister(self, *, account: str, mailbox: str, device_id: str) -> list[str]:
        return await self.db.run(
            partial(store.unregister, account=account, mailbox=mailbox, device_id=device_id)
        )

    async def ack(
        self, *, account: str, mailbox: str, device_id: str, seq: int
    ) -> tuple[int, list[str]]:
        return await self.db.run(
            partial(store.ack, account=account, mailbox=mailbox, device_id=device_id, seq=seq)
        )

    async def push_targets(self, *, account: str, devices: list[str]) -> list[PushTarget]:
        return self.db.read(partial(store.push_targets, account=account, devices=devices))

    async def expire(self, *, now: float) -> tuple[int, list[str]]:
        return await self.db.run(partial(store.expire, now=now))

    async def referenced_blobs(self) -> set[str]:
        return await self.db.run(store.referenced_blobs)

    async def stats(self) -> dict[str, Any]:
        return await self.db.run(store.stats)

    # ---- tokens and devices --------------------------------------------------------

    async def verify_token(self, *, token_id: str, secret: str, now: float) -> Principal | Refusal:
        return self.db.read(
            partial(accounts.verify_token, token_id=token_id, secret=secret, now=now)
        )

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
    ) -> IssuedToken:
        return await self.db.run(
            partial(
                accounts.issue_token,
                account=account,
                kind=kind,
                now=now,
                device_id=device_id,
                mailboxes=mailboxes,
                expires_at=expires_at,
                label=label,
            )
        )

    async def revoke_token(self, *, token_id: str, now: float, account: str | None = None) -> str:
        return await self.db.run(
            partial(accounts.revoke_token, token_id=token_id, now=now, account=account)
        )

    async def list_tokens(self, *, account: str) -> list[dict[str, Any]]:
        return self.db.read(partial(accounts.list_tokens, account=account))

    async def list_devices(self, *, account: str) -> list[dict[str, Any]]:
        return self.db.read(partial(accounts.list_devices, account=account))

    async def remove_device(
        self, *, account: str, device_id: str, now: float
    ) -> tuple[list[str], list[str]]:
        return await self.db.run(
            partial(_remove_device, account=account, device_id=device_id, now=now)
        )

    async def set_push(
        self, *, account: str, device_id: str, fcm_token: str | None, webhook_url: str | None
    ) -> None:
        await self.db.run(
            partial(
                accounts.set_push,
                account=account,
                device_id=device_id,
                fcm_token=fcm_token,
                webhook_url=webhook_url,
            )
        )

    async def get_push(self, *, account: str, device_id: str) -> tuple[str | None, str | None]:
        return self.db.read(partial(accounts.get_push, account=account, device_id=device_id))

    # ---- revocation tombstones -----------------------------------------------------

    async def newest_revocation(self) -> int:
        return self.db.read(accounts.newest_revocation)

    async def revoked_since(self, *, after_id: int) -> tuple[int, list[tuple[str, str]]]:
        return self.db.read(partial(accounts.revoked_since, after_id=after_id))

    async def prune_revoked(self, *, before: float) -> int:
        return await self.db.run(partial(accounts.prune_revoked, before=before))

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
        return await self.db.run(
            partial(
                _add_nameplate,
                account=account,
                mailbox=mailbox,
                now=now,
                expires_at=expires_at,
                per_account=per_account,
                choose=choose,
            )
        )

    async def claim_nameplate(
        self, *, nameplate: int, now: float
    ) -> tuple[str, IssuedToken] | None:
        return await self.db.run(partial(_claim_nameplate, nameplate=nameplate, now=now))


# mypy checks here that the class implements the whole interface.
_CONFORMS: type[Storage] = SqliteStorage

__all__ = ["SqliteStorage", "append_many"]
