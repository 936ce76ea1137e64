"""Tokens, devices and revocation tombstones of the PostgreSQL storage backend.

The same operations as ``relay.accounts`` on SQLite: secrets hashed and compared in constant
time (the same cost whether or not the token exists), revoked tokens moved to tombstones
(bounded per account) in the transaction that revokes them.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from privastead.errors import RelayRejectedError
from privastead.relay import accounts
from privastead.relay.accounts import Principal, Refusal
from privastead.relay.api import IssuedToken, TokenKind
from privastead.relay.backends.pg import Connection, PgDatabase


async def bury(conn: Connection, where: str, args: list[Any], now: float) -> list[str]:
    """Move the tokens matching ``where`` ($2...) to the tombstones; returns their ids.

    Revocations take turns (a table lock held to the commit, which only other revocations
    wait for; reads never do): tombstone ids then become visible in increasing order, so a
    relay polling for "ids above the last one I saw" (``revoked_since``) misses none. Without
    it two transactions could commit ids 6 then 5, and a poll between them would skip 5.
    Revocations are rare (an owner removing a device, an operator revoking a token).
    """
    await conn.execute("LOCK TABLE revoked_tokens IN SHARE ROW EXCLUSIVE MODE")
    rows = await conn.fetch(
        "WITH gone AS (DELETE FROM tokens WHERE " + where + " RETURNING *)"  # noqa: S608
        " INSERT INTO revoked_tokens(token_id, account, kind, device_id, secret_hash, revoked_at)"
        " SELECT token_id, account, kind, device_id, secret_hash, $1 FROM gone"
        " ON CONFLICT (token_id) DO UPDATE SET revoked_at = EXCLUDED.revoked_at"
        " RETURNING token_id, account",
        now,
        *args,
    )
    for account in {r["account"] for r in rows}:
        await conn.execute(
            "DELETE FROM revoked_tokens WHERE account = $1 AND id NOT IN (SELECT id FROM"
            " revoked_tokens WHERE account = $1 ORDER BY id DESC LIMIT $2)",
            account,
            accounts.REVOKED_PER_ACCOUNT,
        )
    return [r["token_id"] for r in rows]


async def issue(
    conn: Connection,
    *,
    account: str,
    kind: TokenKind,
    now: float,
    device_id: str | None = None,
    mailboxes: list[str] | None = None,
    expires_at: float | None = None,
    label: str = "",
) -> IssuedToken:
    """Create a token inside the caller's transaction (see ``accounts.issue_token``)."""
    if await conn.fetchval("SELECT 1 FROM accounts WHERE name = $1", account) is None:
        raise RelayRejectedError(f"no account {account!r}", 404, "account_not_found")
    token_id, secret, token = accounts.new_token()
    device = accounts.token_device(kind, token_id, device_id, mailboxes, expires_at)
    if kind == "device":
        await conn.execute(
            "INSERT INTO devices(account, device_id, name, created_at)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            account,
            device,
            label,
            now,
        )
    await conn.execute(
        "INSERT INTO tokens(token_id, account, kind, secret_hash, device_id, mailboxes,"
        " expires_at, created_at, label) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        token_id,
        account,
        kind,
        accounts.secret_hash(secret),
        device,
        json.dumps(sorted(set(mailboxes))) if mailboxes else None,
        expires_at,
        now,
        label,
    )
    return IssuedToken(token_id=token_id, token=token, device_id=device, expires_at=expires_at)


class PgTokens:
    """The token and device half of ``PgStorage``."""

    db: PgDatabase

    # ---- tokens and devices --------------------------------------------------------

    async def verify_token(self, *, token_id: str, secret: str, now: float) -> Principal | Refusal:
        async def op(conn: Connection) -> Principal | Refusal:
            row = await conn.fetchrow(
                "SELECT account, kind, secret_hash, device_id, mailboxes, expires_at FROM tokens"
                " WHERE token_id = $1",
                token_id,
            )
            if row is None:
                dead = await conn.fetchrow(
                    "SELECT kind, secret_hash FROM revoked_tokens WHERE token_id = $1", token_id
                )
                # Hash and compare even when nothing matched: every path costs about the same.
                known = bytes(dead["secret_hash"]) if dead else b"\0" * 32
                matches = hmac.compare_digest(accounts.secret_hash(secret), known)
                if dead is None:
                    return Refusal("unknown")
                if not matches:
                    return Refusal("wrong_secret", token_id)
                return Refusal("revoked", token_id, str(dead["kind"]))
            if not hmac.compare_digest(accounts.secret_hash(secret), bytes(row["secret_hash"])):
                return Refusal("wrong_secret", token_id)
            expires_at = row["expires_at"]
            if expires_at is not None and now >= expires_at:
                return Refusal("expired", token_id, str(row["kind"]))
            return Principal(
                account=row["account"],
                kind=row["kind"],
                token_id=token_id,
                device_id=row["device_id"],
                mailboxes=frozenset(json.loads(row["mailboxes"])) if row["mailboxes"] else None,
                expires_at=expires_at,
            )

        return await self.db.read(op)

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
        return await self.db.transaction(
            lambda conn: issue(
                conn,
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
        async def op(conn: Connection) -> str:
            # $2/$3 in _bury's statement (its $1 is the time); a NULL account: any account.
            where = "token_id = $2 AND ($3::text IS NULL OR account = $3)"
            args: list[Any] = [token_id, account]
            kind = await conn.fetchval(
                "SELECT kind FROM tokens"
                " WHERE token_id = $1 AND ($2::text IS NULL OR account = $2)",
                token_id,
                account,
            )
            if kind is None or not await bury(conn, where, args, now):
                raise RelayRejectedError("no such token", 404, "token_not_found")
            return str(kind)

        return await self.db.transaction(op)

    async def list_tokens(self, *, account: str) -> list[dict[str, Any]]:
        async def op(conn: Connection) -> list[dict[str, Any]]:
            rows = await conn.fetch(
                "SELECT token_id, account, kind, device_id, mailboxes, expires_at, created_at,"
                " label FROM tokens WHERE account = $1 ORDER BY created_at",
                account,
            )
            return [
                {
                    **dict(r),
                    "mailboxes": json.loads(r["mailboxes"]) if r["mailboxes"] else None,
                }
                for r in rows
            ]

        return await self.db.read(op)

    async def list_devices(self, *, account: str) -> list[dict[str, Any]]:
        async def op(conn: Connection) -> list[dict[str, Any]]:
            rows = await conn.fetch(
                "SELECT device_id, name, created_at, fcm_token IS NOT NULL AS fcm,"
                " webhook_url IS NOT NULL AS webhook FROM devices WHERE account = $1"
                " ORDER BY created_at",
                account,
            )
            return [dict(r) for r in rows]

        return await self.db.read(op)

    async def set_push(
        self, *, account: str, device_id: str, fcm_token: str | None, webhook_url: str | None
    ) -> None:
        async def op(conn: Connection) -> None:
            await conn.execute(
                "INSERT INTO devices(account, device_id, created_at, fcm_token, webhook_url)"
                " VALUES ($1, $2, 0, $3, $4) ON CONFLICT (account, device_id)"
                " DO UPDATE SET fcm_token = EXCLUDED.fcm_token,"
                " webhook_url = EXCLUDED.webhook_url",
                account,
                device_id,
                fcm_token,
                webhook_url,
            )

        await self.db.transaction(op)

    async def get_push(self, *, account: str, device_id: str) -> tuple[str | None, str | None]:
        async def op(conn: Connection) -> tuple[str | None, str | None]:
            row = await conn.fetchrow(
                "SELECT fcm_token, webhook_url FROM devices WHERE account = $1 AND device_id = $2",
                account,
                device_id,
            )
            return (None, None) if row is None else (row["fcm_token"], row["webhook_url"])

        return await self.db.read(op)

    # ---- revocation tombstones -----------------------------------------------------

    async def newest_revocation(self) -> int:
        async def op(conn: Connection) -> int:
            return int(await conn.fetchval("SELECT COALESCE(MAX(id), 0) FROM revoked_tokens"))

        return await self.db.read(op)

    async def revoked_since(self, *, after_id: int) -> tuple[int, list[tuple[str, str]]]:
        async def op(conn: Connection) -> tuple[int, list[tuple[str, str]]]:
            rows = await conn.fetch(
                "SELECT id, token_id, kind FROM revoked_tokens WHERE id > $1 ORDER BY id"
                " LIMIT 10000",
                after_id,
            )
            if not rows:
                return after_id, []
            return int(rows[-1]["id"]), [(r["token_id"], r["kind"]) for r in rows]

        return await self.db.read(op)

    async def prune_revoked(self, *, before: float) -> int:
        async def op(conn: Connection) -> int:
            rows = await conn.fetch(
                "DELETE FROM revoked_tokens WHERE revoked_at < $1 RETURNING 1", before
            )
            return len(rows)

        return await self.db.transaction(op)


__all__ = ["PgTokens", "bury"]
