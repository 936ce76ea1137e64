"""Accounts, tokens and devices in the index database (plain functions over a connection).

Tokens look like ``pst_<token id>_<secret>``: the id (64 random bits, hex) finds the row, the
secret (256 random bits) is checked against its stored SHA-256 with ``hmac.compare_digest``.
Only the hash is stored, so a stolen database does not yield usable tokens. The functions are
shared by the running relay (through ``db.Database``) and by the CLI (a direct connection).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import sqlite3
from dataclasses import dataclass
from typing import Any, Literal

from privastead.errors import RelayRejectedError
from privastead.relay.api import (
    ACCOUNT_NAME,
    OWNER_DEVICE_ID,
    IssuedToken,
    TokenKind,
    is_mailbox_id,
)

TOKEN_PREFIX = "pst"  # noqa: S105 - a public marker, not a secret
# Tombstones kept per account beyond which the oldest go (a household that removes devices
# every day for years must not grow the table without bound; see also the retention).
REVOKED_PER_ACCOUNT = 1000


@dataclass(frozen=True)
class Principal:
    """Who a request acts for, after its token checked out."""

    account: str
    kind: TokenKind
    token_id: str
    device_id: str
    mailboxes: frozenset[str] | None = None  # restricted tokens only
    expires_at: float | None = None

    def may_use(self, mailbox: str) -> bool:
        return self.mailboxes is None or mailbox in self.mailboxes


@dataclass(frozen=True)
class Refusal:
    """Why a token did not check out.

    ``unknown``: no such token id (ever, or beyond the tombstones' retention);
    ``wrong_secret``: the token id exists (or was revoked) but the secret is wrong;
    ``expired`` / ``revoked``: the secret is right, the token is over. Only the last two
    prove the caller holds the token, so only they are answered distinctly and never
    counted as failures.
    """

    reason: Literal["unknown", "wrong_secret", "expired", "revoked"]
    token_id: str = ""
    kind: str = ""


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


_TOKEN = re.compile(r"\A" + TOKEN_PREFIX + r"_([0-9a-f]{16})_([A-Za-z0-9_-]{43})\Z")


def split_token(token: str) -> tuple[str, str] | None:
    """``(token_id, secret)`` of a well-formed token, else None (also for any non-ASCII)."""
    match = _TOKEN.match(token)
    return (match.group(1), match.group(2)) if match else None


def new_token() -> tuple[str, str, str]:
    token_id = secrets.token_hex(8)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")
    return token_id, secret, f"{TOKEN_PREFIX}_{token_id}_{secret}"


def add_account(
    conn: sqlite3.Connection, name: str, now: float, quota_bytes: int | None = None
) -> None:
    if not ACCOUNT_NAME.match(name):
        raise RelayRejectedError(
            "account names are 1-63 chars of a-z 0-9 _ . -", 400, "bad_account_name"
        )
    try:
        conn.execute(
            "INSERT INTO accounts(name, created_at, quota_bytes) VALUES (?, ?, ?)",
            (name, now, quota_bytes),
        )
    except sqlite3.IntegrityError:
        raise RelayRejectedError(f"account {name!r} exists", 409, "account_exists") from None


def list_accounts(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT a.name, a.created_at, a.quota_bytes, a.used_bytes,"
        " (SELECT COUNT(*) FROM mailboxes m WHERE m.account = a.name),"
        " (SELECT COUNT(*) FROM devices d WHERE d.account = a.name)"
        " FROM accounts a ORDER BY a.name"
    ).fetchall()
    return [
        {
            "name": r[0],
            "created_at": r[1],
            "quota_bytes": r[2],
            "used_bytes": r[3],
            "mailboxes": r[4],
            "devices": r[5],
        }
        for r in rows
    ]


def remove_account(conn: sqlite3.Connection, name: str) -> list[str]:
    """Delete an account with everything it owns; returns blob names to unlink."""
    if conn.execute("SELECT 1 FROM accounts WHERE name = ?", (name,)).fetchone() is None:
        raise RelayRejectedError(f"no account {name!r}", 404, "account_not_found")
    blobs = [
        r[0]
        for r in conn.execute(
            "SELECT blob FROM messages WHERE account = ? AND blob IS NOT NULL", (name,)
        )
    ]
    conn.execute("DELETE FROM accounts WHERE name = ?", (name,))
    return blobs


def token_device(
    kind: TokenKind,
    token_id: str,
    device_id: str | None,
    mailboxes: list[str] | None,
    expires_at: float | None,
) -> str:
    """The device a new token belongs to (every storage backend issues tokens by this rule):
    the owner's, the given or a new device's, or for a restricted token (which must name its
    mailboxes and expire) one of its own."""
    if kind == "owner":
        return OWNER_DEVICE_ID
    if kind == "device":
        return device_id or "d" + secrets.token_hex(8)
    if not mailboxes or not all(is_mailbox_id(m) for m in mailboxes):
        raise RelayRejectedError(
            "a restricted token needs a list of mailbox ids", 400, "bad_request"
        )
    if expires_at is None:
        raise RelayRejectedError("a restricted token needs an expiry", 400, "bad_request")
    return "r" + token_id


def issue_token(
    conn: sqlite3.Connection,
    account: str,
    kind: TokenKind,
    now: float,
    *,
    device_id: str | None = None,
    mailboxes: list[str] | None = None,
    expires_at: float | None = None,
    label: str = "",
) -> IssuedToken:
    """Create a token. Device tokens create their device; restricted ones need mailboxes."""
    if conn.execute("SELECT 1 FROM accounts WHERE name = ?", (account,)).fetchone() is None:
        raise RelayRejectedError(f"no account {account!r}", 404, "account_not_found")
    token_id, secret, token = new_token()
    device_id = token_device(kind, token_id, device_id, mailboxes, expires_at)
    if kind == "device":
        conn.execute(
            "INSERT OR IGNORE INTO devices(account, device_id, name, created_at)"
            " VALUES (?, ?, ?, ?)",
            (account, device_id, label, now),
        )
    conn.execute(
        "INSERT INTO tokens(token_id, account, kind, secret_hash, device_id, mailboxes,"
        " expires_at, created_at, label) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            token_id,
            account,
            kind,
            secret_hash(secret),
            device_id,
            json.dumps(sorted(set(mailboxes))) if mailboxes else None,
            expires_at,
            now,
            label,
        ),
    )
    return IssuedToken(token_id=token_id, token=token, device_id=device_id, expires_at=expires_at)


def verify_token(
    conn: sqlite3.Connection, token_id: str, secret: str, now: float
) -> Principal | Refusal:
    """The token's principal, or why it was refused (``Refusal``)."""
    row = conn.execute(
        "SELECT account, kind, secret_hash, device_id, mailboxes, expires_at FROM tokens"
        " WHERE token_id = ?",
        (token_id,),
    ).fetchone()
    if row is None:
        return _verify_revoked(conn, token_id, secret)
    if not hmac.compare_digest(secret_hash(secret), row[2]):
        return Refusal("wrong_secret", token_id)
    if row[5] is not None and now >= row[5]:
        return Refusal("expired", token_id, str(row[1]))
    mailboxes = frozenset(json.loads(row[4])) if row[4] else None
    return Principal(
        account=row[0],
        kind=row[1],
        token_id=token_id,
        device_id=row[3],
        mailboxes=mailboxes,
        expires_at=row[5],
    )


def _verify_revoked(conn: sqlite3.Connection, token_id: str, secret: str) -> Refusal:
    row = conn.execute(
        "SELECT kind, secret_hash FROM revoked_tokens WHERE token_id = ?", (token_id,)
    ).fetchone()
    # Hash and compare even when nothing matched, so every path costs about the same.
    matches = hmac.compare_digest(secret_hash(secret), row[1] if row else b"\0" * 32)
    if row is None:
        return Refusal("unknown")
    if not matches:
        return Refusal("wrong_secret", token_id)
    return Refusal("revoked", token_id, str(row[0]))


def _bury(conn: sqlite3.Connection, where: str, args: list[Any], now: float) -> list[str]:
    """Move the tokens matching ``where`` to the tombstones; returns their ids."""
    ids = [r[0] for r in conn.execute(f"SELECT token_id FROM tokens WHERE {where}", args)]  # noqa: S608
    if not ids:
        return []
    conn.execute(
        "INSERT OR REPLACE INTO revoked_tokens(token_id, account, kind, device_id,"  # noqa: S608
        f" secret_hash, revoked_at) SELECT token_id, account, kind, device_id, secret_hash, ?"
        f" FROM tokens WHERE {where}",
        [now, *args],
    )
    conn.execute(f"DELETE FROM tokens WHERE {where}", args)  # noqa: S608
    for account in {
        r[0]
        for r in conn.execute(
            f"SELECT DISTINCT account FROM revoked_tokens WHERE token_id IN"  # noqa: S608
            f" ({','.join('?' * len(ids))})",
            ids,
        )
    }:
        conn.execute(
            "DELETE FROM revoked_tokens WHERE account = ? AND id NOT IN (SELECT id FROM"
            " revoked_tokens WHERE account = ? ORDER BY id DESC LIMIT ?)",
            (account, account, REVOKED_PER_ACCOUNT),
        )
    return ids


def prune_revoked(conn: sqlite3.Connection, before: float) -> int:
    """Forget tombstones of tokens revoked before ``before`` (the retention)."""
    return int(conn.execute("DELETE FROM revoked_tokens WHERE revoked_at < ?", (before,)).rowcount)


def revoked_since(conn: sqlite3.Connection, after_id: int) -> tuple[int, list[tuple[str, str]]]:
    """``(token id, kind)`` revoked after tombstone ``after_id``, and the newest tombstone id."""
    rows = conn.execute(
        "SELECT id, token_id, kind FROM revoked_tokens WHERE id > ? ORDER BY id LIMIT 10000",
        (after_id,),
    ).fetchall()
    if not rows:
        return after_id, []
    return int(rows[-1][0]), [(r[1], r[2]) for r in rows]


def newest_revocation(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM revoked_tokens").fetchone()[0])


def revoke_token(
    conn: sqlite3.Connection, token_id: str, now: float, account: str | None = None
) -> str:
    """Revoke one token; it is remembered (tombstone) so its holder is told, not throttled.
    Returns its kind."""
    where, args = "token_id = ?", [token_id]
    if account is not None:
        where += " AND account = ?"
        args.append(account)
    row = conn.execute(f"SELECT kind FROM tokens WHERE {where}", args).fetchone()  # noqa: S608
    if row is None or not _bury(conn, where, args, now):
        raise RelayRejectedError("no such token", 404, "token_not_found")
    return str(row[0])


def list_tokens(conn: sqlite3.Connection, account: str | None = None) -> list[dict[str, Any]]:
    sql = (
        "SELECT token_id, account, kind, device_id, mailboxes, expires_at, created_at, label"
        " FROM tokens"
    )
    rows = (
        conn.execute(sql + " WHERE account = ? ORDER BY created_at", (account,))
        if account
        else conn.execute(sql + " ORDER BY account, created_at")
    )
    return [
        {
            "token_id": r[0],
            "account": r[1],
            "kind": r[2],
            "device_id": r[3],
            "mailboxes": json.loads(r[4]) if r[4] else None,
            "expires_at": r[5],
            "created_at": r[6],
            "label": r[7],
        }
        for r in rows
    ]


def list_devices(conn: sqlite3.Connection, account: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT device_id, name, created_at, fcm_token IS NOT NULL, webhook_url IS NOT NULL"
        " FROM devices WHERE account = ? ORDER BY created_at",
        (account,),
    ).fetchall()
    return [
        {
            "device_id": r[0],
            "name": r[1],
            "created_at": r[2],
            "fcm": bool(r[3]),
            "webhook": bool(r[4]),
        }
        for r in rows
    ]


def remove_device(conn: sqlite3.Connection, account: str, device_id: str, now: float) -> list[str]:
    """Revoke a device: its tokens go (tombstoned), and its registrations stop holding
    messages back. Returns the revoked token ids."""
    if (
        conn.execute(
            "DELETE FROM devices WHERE account = ? AND device_id = ?", (account, device_id)
        ).rowcount
        == 0
    ):
        raise RelayRejectedError("no such device", 404, "device_not_found")
    revoked = _bury(conn, "account = ? AND device_id = ?", [account, device_id], now)
    conn.execute(
        "DELETE FROM registrations WHERE account = ? AND device_id = ?", (account, device_id)
    )
    return revoked


def set_push(
    conn: sqlite3.Connection,
    account: str,
    device_id: str,
    fcm_token: str | None,
    webhook_url: str | None,
) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO devices(account, device_id, created_at) VALUES (?, ?, 0)",
        (account, device_id),
    )
    conn.execute(
        "UPDATE devices SET fcm_token = ?, webhook_url = ? WHERE account = ? AND device_id = ?",
        (fcm_token, webhook_url, account, device_id),
    )


def get_push(
    conn: sqlite3.Connection, account: str, device_id: str
) -> tuple[str | None, str | None]:
    """``(fcm token, webhook url)`` this device registered (None: none)."""
    row = conn.execute(
        "SELECT fcm_token, webhook_url FROM devices WHERE account = ? AND device_id = ?",
        (account, device_id),
    ).fetchone()
    return (None, None) if row is None else (row[0], row[1])


__all__ = [
    "REVOKED_PER_ACCOUNT",
    "Principal",
    "Refusal",
    "add_account",
    "get_push",
    "issue_token",
    "list_accounts",
    "list_devices",
    "list_tokens",
    "new_token",
    "newest_revocation",
    "prune_revoked",
    "remove_account",
    "remove_device",
    "revoke_token",
    "revoked_since",
    "secret_hash",
    "set_push",
    "split_token",
    "token_device",
    "verify_token",
]
