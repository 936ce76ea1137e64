"""Mailboxes and messages in the index database (plain functions over a connection).

The narrow storage interface of the relay is this module plus ``blobs.BlobStore``: append,
list, fetch, acknowledge, expire, delete. A shared database could implement the same
functions; nothing above this layer writes SQL.

Invariants:
- ``seq`` is assigned in the same transaction that inserts the message, so a message is
  visible with its seq or not at all (``kill -9`` leaves nothing partial).
- A blob file is renamed into place *before* its row commits; a crash in between leaves an
  orphan file, removed by ``BlobStore.sweep`` at start-up, never a row without its file.
- A (mailbox, message id) pair is stored once. Its receipt outlives the message (until the
  TTL), so a retry after delivery is still answered ``duplicate``.

Quota (the semantics another storage backend must keep):
- Every message is charged its size plus ``MESSAGE_OVERHEAD`` (its index row, receipt and
  bookkeeping are not free: without it, empty or tiny messages would cost nothing and a
  small quota could hold millions of rows). Empty bodies are refused before this layer.
- When a new message does not fit, the account's oldest messages (insertion order, across
  its mailboxes) are evicted, and reported to the uploader, only if the uploader's scope is
  the whole account (owner and device tokens, ``evict=True``). A restricted token (one
  pairing mailbox) never evicts: its upload fails with 507 ``quota_full`` instead, so it can
  neither destroy the hub's unread messages nor learn their ids.
- A message larger than the whole quota is refused (413 ``quota_exceeded``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from privastead.errors import RelayRejectedError
from privastead.relay.api import Eviction, MailboxInfo, MessageInfo, MessagePage, UploadResult

MESSAGE_OVERHEAD = 256  # bytes charged to the quota per message on top of its size


@dataclass(frozen=True)
class NewMessage:
    account: str
    mailbox: str
    msg_id: str
    digest: bytes
    size: int
    body: bytes | None  # inline body, or None when ``blob`` names a file
    blob: str | None


@dataclass
class Appended:
    result: UploadResult
    unlink: list[str] = field(default_factory=list)  # blobs to delete after commit
    devices: list[str] = field(default_factory=list)  # registered devices to wake


def _not_found() -> RelayRejectedError:
    # Same answer for "does not exist" and "belongs to someone else": ids are not enumerable.
    return RelayRejectedError("no such mailbox", 404, "mailbox_not_found")


def _mailbox(conn: sqlite3.Connection, account: str, mailbox: str) -> tuple[int, int | None]:
    row = conn.execute(
        "SELECT account, last_seq, ttl_seconds FROM mailboxes WHERE id = ?", (mailbox,)
    ).fetchone()
    if row is None or row[0] != account:
        raise _not_found()
    return int(row[1]), row[2]


def create_mailbox(
    conn: sqlite3.Connection, account: str, mailbox: str, now: float, ttl_seconds: int | None
) -> bool:
    """Create (True) or confirm (False) a mailbox of ``account``."""
    row = conn.execute("SELECT account FROM mailboxes WHERE id = ?", (mailbox,)).fetchone()
    if row is not None:
        if row[0] != account:
            # Someone else's id: indistinguishable from a collision, which 128 random bits
            # make impossible in practice.
            raise RelayRejectedError("mailbox id is taken", 409, "mailbox_exists")
        if ttl_seconds is not None:
            conn.execute(
                "UPDATE mailboxes SET ttl_seconds = ? WHERE id = ?", (ttl_seconds, mailbox)
            )
        return False
    conn.execute(
        "INSERT INTO mailboxes(id, account, created_at, ttl_seconds) VALUES (?, ?, ?, ?)",
        (mailbox, account, now, ttl_seconds),
    )
    return True


def delete_mailbox(conn: sqlite3.Connection, account: str, mailbox: str) -> list[str]:
    _mailbox(conn, account, mailbox)
    blobs = [
        r[0]
        for r in conn.execute(
            "SELECT blob FROM messages WHERE mailbox = ? AND blob IS NOT NULL", (mailbox,)
        )
    ]
    conn.execute("DELETE FROM mailboxes WHERE id = ?", (mailbox,))
    return blobs


def mailbox_info(
    conn: sqlite3.Connection, account: str, mailbox: str, now: float, default_ttl: int
) -> MailboxInfo:
    last_seq, ttl = _mailbox(conn, account, mailbox)
    count, size = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages WHERE mailbox = ?"
        " AND expires_at > ?",
        (mailbox, now),
    ).fetchone()
    devices = dict(
        conn.execute(
            "SELECT device_id, cursor FROM registrations WHERE mailbox = ?", (mailbox,)
        ).fetchall()
    )
    return MailboxInfo(
        id=mailbox,
        last_seq=last_seq,
        count=count,
        bytes=size,
        ttl_seconds=ttl or default_ttl,
        devices=devices,
    )


def append(
    conn: sqlite3.Connection,
    msg: NewMessage,
    now: float,
    default_ttl: int,
    quota: int,
    *,
    wake: bool = False,
    evict: bool = True,
) -> Appended:
    """Store ``msg`` once; make room by evicting the account's oldest messages when the
    uploader's scope is the account (``evict``), else fail with 507 ``quota_full``."""
    receipt = conn.execute(
        "SELECT seq, digest FROM receipts WHERE mailbox = ? AND msg_id = ?",
        (msg.mailbox, msg.msg_id),
    ).fetchone()
    if receipt is not None:
        _mailbox(conn, msg.account, msg.mailbox)
        if receipt[1] != msg.digest:
            raise RelayRejectedError(
                "this message id was already used for different bytes", 409, "message_id_conflict"
            )
        return Appended(
            UploadResult(seq=receipt[0], duplicate=True), unlink=[msg.blob] if msg.blob else []
        )
    # Take the next seq (one statement: this is the hot path). A failure below rolls it back.
    bumped = conn.execute(
        "UPDATE mailboxes SET last_seq = last_seq + 1 WHERE id = ? AND account = ?"
        " RETURNING last_seq, ttl_seconds",
        (msg.mailbox, msg.account),
    ).fetchone()
    if bumped is None:
        raise _not_found()
    seq, ttl = int(bumped[0]), bumped[1]
    row = conn.execute(
        "SELECT COALESCE(quota_bytes, ?), used_bytes FROM accounts WHERE name = ?",
        (quota, msg.account),
    ).fetchone()
    limit, used = int(row[0]), int(row[1])
    charge = msg.size + MESSAGE_OVERHEAD
    if charge > limit:
        raise RelayRejectedError("message is larger than the account quota", 413, "quota_exceeded")
    if used + charge > limit and not evict:
        raise RelayRejectedError(
            "the account's storage quota is full, and this token may not make room",
            507,
            "quota_full",
        )
    evicted: list[Eviction] = []
    unlink: list[str] = []
    while used + charge > limit:
        # Oldest first across the account (rowid order is insertion order).
        victims = conn.execute(
            "SELECT rowid, mailbox, seq, charged, blob FROM messages WHERE account = ?"
            " ORDER BY rowid LIMIT 64",
            (msg.account,),
        ).fetchall()
        for rowid, vmailbox, vseq, vsize, vblob in victims:
            conn.execute("DELETE FROM messages WHERE rowid = ?", (rowid,))
            evicted.append(Eviction(vmailbox, vseq))
            if vblob:
                unlink.append(vblob)
            used -= vsize
            if used + charge <= limit:
                break
    expires = now + (ttl or default_ttl)
    conn.execute(
        "INSERT INTO messages(mailbox, seq, account, size, charged, body, blob, created_at,"
        " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (msg.mailbox, seq, msg.account, msg.size, charge, msg.body, msg.blob, now, expires),
    )
    conn.execute(
        "INSERT OR REPLACE INTO receipts(mailbox, msg_id, seq, digest, expires_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (msg.mailbox, msg.msg_id, seq, msg.digest, expires),
    )
    devices = []
    if wake:  # only uploads that carry a push need to know whom to wake
        devices = [
            r[0]
            for r in conn.execute(
                "SELECT device_id FROM registrations WHERE mailbox = ?", (msg.mailbox,)
            )
        ]
    return Appended(UploadResult(seq=seq, evicted=tuple(evicted)), unlink=unlink, devices=devices)


def list_messages(
    conn: sqlite3.Connection,
    *,
    account: str,
    mailbox: str,
    after: int,
    limit: int,
    now: float,
    list_body_max: int,
) -> MessagePage:
    last_seq, _ = _mailbox(conn, account, mailbox)
    # Larger inline bodies stay in the database: a listing page must stay small.
    rows = conn.execute(
        "SELECT seq, size, CASE WHEN size <= ? THEN body END FROM messages"
        " WHERE mailbox = ? AND seq > ? AND expires_at > ? ORDER BY seq LIMIT ?",
        (list_body_max, mailbox, after, now, limit),
    ).fetchall()
    return MessagePage(
        messages=tuple(MessageInfo(seq=r[0], size=r[1], body=r[2]) for r in rows),
        last_seq=last_seq,
    )


def get_message(
    conn: sqlite3.Connection, account: str, mailbox: str, seq: int, now: float
) -> tuple[int, bytes | None, str | None]:
    """``(size, inline body, blob name)`` of one message."""
    _mailbox(conn, account, mailbox)
    row = conn.execute(
        "SELECT size, body, blob FROM messages WHERE mailbox = ? AND seq = ? AND expires_at > ?",
        (mailbox, seq, now),
    ).fetchone()
    if row is None:
        raise RelayRejectedError(
            "no such message (never stored, acknowledged or expired)", 404, "message_not_found"
        )
    return int(row[0]), row[1], row[2]


def register(conn: sqlite3.Connection, account: str, mailbox: str, device_id: str) -> int:
    """Register a device on a mailbox (idempotent); returns its cursor."""
    _mailbox(conn, account, mailbox)
    conn.execute(
        "INSERT OR IGNORE INTO registrations(mailbox, account, device_id, cursor)"
        " VALUES (?, ?, ?, 0)",
        (mailbox, account, device_id),
    )
    row = conn.execute(
        "SELECT cursor FROM registrations WHERE mailbox = ? AND device_id = ?", (mailbox, device_id)
    ).fetchone()
    return int(row[0])


def unregister(conn: sqlite3.Connection, account: str, mailbox: str, device_id: str) -> list[str]:
    _mailbox(conn, account, mailbox)
    if (
        conn.execute(
            "DELETE FROM registrations WHERE mailbox = ? AND device_id = ?", (mailbox, device_id)
        ).rowcount
        == 0
    ):
        raise RelayRejectedError(
            "this device is not registered on the mailbox", 409, "not_registered"
        )
    return collect(conn, mailbox)


def ack(
    conn: sqlite3.Connection, account: str, mailbox: str, device_id: str, seq: int
) -> tuple[int, list[str]]:
    """Cumulative acknowledgement up to ``seq``; returns the cursor and blobs to unlink."""
    last_seq, _ = _mailbox(conn, account, mailbox)
    row = conn.execute(
        "SELECT cursor FROM registrations WHERE mailbox = ? AND device_id = ?", (mailbox, device_id)
    ).fetchone()
    if row is None:
        raise RelayRejectedError(
            "register this device on the mailbox before acknowledging", 409, "not_registered"
        )
    if seq > last_seq:
        raise RelayRejectedError(
            f"cannot acknowledge seq {seq}: the mailbox ends at {last_seq}", 409, "ack_beyond_end"
        )
    cursor = max(int(row[0]), seq)  # acks never move a cursor backwards (replays are harmless)
    conn.execute(
        "UPDATE registrations SET cursor = ? WHERE mailbox = ? AND device_id = ?",
        (cursor, mailbox, device_id),
    )
    return cursor, collect(conn, mailbox)


def collect(conn: sqlite3.Connection, mailbox: str) -> list[str]:
    """Delete messages every registered device has acknowledged; returns blobs to unlink."""
    row = conn.execute(
        "SELECT MIN(cursor), COUNT(*) FROM registrations WHERE mailbox = ?", (mailbox,)
    ).fetchone()
    if not row[1]:
        return []  # nobody registered: keep until the TTL, somebody may still come for it
    blobs = [
        r[0]
        for r in conn.execute(
            "SELECT blob FROM messages WHERE mailbox = ? AND seq <= ? AND blob IS NOT NULL",
            (mailbox, row[0]),
        )
    ]
    conn.execute("DELETE FROM messages WHERE mailbox = ? AND seq <= ?", (mailbox, row[0]))
    return blobs


def collect_for_device(conn: sqlite3.Connection, account: str, device_id: str) -> list[str]:
    """After a device is removed: collect every mailbox of the account."""
    blobs: list[str] = []
    for (mailbox,) in conn.execute(
        "SELECT id FROM mailboxes WHERE account = ?", (account,)
    ).fetchall():
        blobs += collect(conn, mailbox)
    return blobs


def expire(conn: sqlite3.Connection, now: float, batch: int = 1000) -> tuple[int, list[str]]:
    """Delete messages and receipts past their TTL; returns (messages, blobs to unlink)."""
    rows = conn.execute(
        "SELECT rowid, blob FROM messages WHERE expires_at <= ? LIMIT ?", (now, batch)
    ).fetchall()
    conn.executemany("DELETE FROM messages WHERE rowid = ?", [(r[0],) for r in rows])
    conn.execute("DELETE FROM receipts WHERE expires_at <= ?", (now,))
    return len(rows), [r[1] for r in rows if r[1]]


def owned(conn: sqlite3.Connection, account: str, mailboxes: list[str]) -> set[str]:
    """The subset of ``mailboxes`` that exist and belong to ``account``."""
    if not mailboxes:
        return set()
    marks = ",".join("?" * len(mailboxes))
    return {
        r[0]
        for r in conn.execute(
            f"SELECT id FROM mailboxes WHERE account = ? AND id IN ({marks})",  # noqa: S608
            (account, *mailboxes),
        )
    }


def referenced_blobs(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT blob FROM messages WHERE blob IS NOT NULL")}


def push_targets(
    conn: sqlite3.Connection, account: str, devices: list[str]
) -> list[tuple[str, str | None, str | None]]:
    """``(device id, fcm token, webhook url)`` of devices that registered a push target."""
    if not devices:
        return []
    marks = ",".join("?" * len(devices))
    rows = conn.execute(
        f"SELECT device_id, fcm_token, webhook_url FROM devices WHERE account = ?"  # noqa: S608
        f" AND device_id IN ({marks}) AND (fcm_token IS NOT NULL OR webhook_url IS NOT NULL)",
        (account, *devices),
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def stats(conn: sqlite3.Connection) -> dict[str, Any]:
    """Aggregate numbers for /metrics (no per-mailbox labels: ids stay out of metrics)."""
    count, size = conn.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages").fetchone()
    deepest = conn.execute(
        "SELECT COALESCE(MAX(n), 0) FROM (SELECT COUNT(*) AS n FROM messages GROUP BY mailbox)"
    ).fetchone()[0]
    mailboxes = conn.execute("SELECT COUNT(*) FROM mailboxes").fetchone()[0]
    accounts = conn.execute("SELECT COUNT(*) FROM accounts").fetchone()[0]
    return {
        "messages": count,
        "bytes": size,
        "max_depth": deepest,
        "mailboxes": mailboxes,
        "accounts": accounts,
    }


__all__ = [
    "MESSAGE_OVERHEAD",
    "Appended",
    "NewMessage",
    "ack",
    "append",
    "collect",
    "collect_for_device",
    "create_mailbox",
    "delete_mailbox",
    "expire",
    "get_message",
    "list_messages",
    "mailbox_info",
    "owned",
    "push_targets",
    "referenced_blobs",
    "register",
    "stats",
    "unregister",
]
