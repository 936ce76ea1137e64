"""The PostgreSQL backend of ``relay.storage.Storage``: the same operations as the SQLite
backend (``relay.store``, ``relay.accounts``), in asyncpg SQL, for several relay processes.

Each operation is one transaction on a pooled connection (``PgDatabase``: retried on
serialisation failures and deadlocks, and when a pooled connection was found dead before it
began). What SQLite's single writer gave for free is taken with row locks:

- an upload locks its mailbox row (``FOR UPDATE``) before it looks for a receipt of its
  message id: two processes retrying one upload at once store it once, and seqs stay dense;
- it locks its account row too before the quota check, so concurrent uploads of one account
  through different processes never overshoot the quota together (other accounts never wait);
- an upload is four round trips: BEGIN, lock-and-check, store (seq, message and receipt in
  one statement), COMMIT; ``bench_cluster`` measures it beside the same work in plain SQL;
- eviction follows ``messages.id`` (insertion order, SQLite's rowid).

Tokens, devices and tombstones are in ``pg_tokens`` (``PgTokens``), nameplates in
``pg_nameplates`` (``PgNameplates``): the other parts of the class.
"""

from __future__ import annotations

from typing import Any

from privastead.errors import RelayRejectedError
from privastead.relay.api import (
    Eviction,
    MailboxInfo,
    MessageInfo,
    MessagePage,
    UploadResult,
)
from privastead.relay.backends.pg import Connection, PgDatabase
from privastead.relay.backends.pg_nameplates import PgNameplates
from privastead.relay.backends.pg_tokens import PgTokens, bury
from privastead.relay.storage import PushTarget, Storage
from privastead.relay.store import MESSAGE_OVERHEAD, Appended, NewMessage

_READ_MAILBOX = "SELECT account, last_seq, ttl_seconds FROM mailboxes WHERE id = $1"
_LOCK_MAILBOX = _READ_MAILBOX + " FOR UPDATE"


def _not_found() -> RelayRejectedError:
    return RelayRejectedError("no such mailbox", 404, "mailbox_not_found")


async def _mailbox(
    conn: Connection, account: str, mailbox: str, *, lock: bool = False
) -> tuple[int, int | None]:
    row = await conn.fetchrow(_LOCK_MAILBOX if lock else _READ_MAILBOX, mailbox)
    if row is None or row["account"] != account:
        raise _not_found()
    return int(row["last_seq"]), row["ttl_seconds"]


async def _collect(conn: Connection, mailbox: str) -> list[str]:
    """Delete messages every registered device acknowledged; returns their blobs."""
    row = await conn.fetchrow(
        "SELECT MIN(cursor) AS low, COUNT(*) AS n FROM registrations WHERE mailbox = $1", mailbox
    )
    if row is None or not row["n"]:
        return []  # nobody registered: kept until the TTL
    rows = await conn.fetch(
        "DELETE FROM messages WHERE mailbox = $1 AND seq <= $2 RETURNING blob",
        mailbox,
        row["low"],
    )
    return [r["blob"] for r in rows if r["blob"]]


# Lock the mailbox and its account (in that order of intent; a deadlock between two of these
# is retried by the pool). The receipt is looked up by a second statement on purpose: under
# READ COMMITTED a statement that waited for a row lock re-reads only the locked rows, so a
# receipt joined into the locking statement would come from the snapshot taken before the
# wait and miss the one the lock holder just committed (the same message stored twice).
_APPEND_LOCK = """
SELECT m.account, m.ttl_seconds, COALESCE(a.quota_bytes, $2) AS quota, a.used_bytes
FROM mailboxes m
JOIN accounts a ON a.name = m.account
WHERE m.id = $1
FOR UPDATE OF m, a
"""
_APPEND_RECEIPT = "SELECT seq, digest FROM receipts WHERE mailbox = $1 AND msg_id = $2"

# One round trip: take the next seq, insert the message and its receipt.
_APPEND_STORE = """
WITH m AS (
    UPDATE mailboxes SET last_seq = last_seq + 1 WHERE id = $1::text RETURNING last_seq
), ins AS (
    INSERT INTO messages(mailbox, seq, account, size, charged, body, blob, created_at,
                         expires_at)
    SELECT $1::text, last_seq, $2::text, $3::integer, $4::bigint, $5::bytea, $6::text,
           $7::float8, $8::float8
    FROM m RETURNING seq
)
INSERT INTO receipts(mailbox, msg_id, seq, digest, expires_at)
SELECT $1::text, $9::text, seq, $10::bytea, $8::float8 FROM ins
ON CONFLICT (mailbox, msg_id) DO UPDATE
    SET seq = EXCLUDED.seq, digest = EXCLUDED.digest, expires_at = EXCLUDED.expires_at
RETURNING seq
"""


async def _append(
    conn: Connection,
    msg: NewMessage,
    *,
    now: float,
    default_ttl: int,
    quota: int,
    wake: bool,
    evict: bool,
) -> Appended:
    row = await conn.fetchrow(_APPEND_LOCK, msg.mailbox, quota)
    if row is None or row["account"] != msg.account:
        raise _not_found()
    receipt = await conn.fetchrow(_APPEND_RECEIPT, msg.mailbox, msg.msg_id)
    if receipt is not None:
        if bytes(receipt["digest"]) != msg.digest:
            raise RelayRejectedError(
                "this message id was already used for different bytes", 409, "message_id_conflict"
            )
        return Appended(
            UploadResult(seq=int(receipt["seq"]), duplicate=True),
            unlink=[msg.blob] if msg.blob else [],
        )
    limit, used = int(row["quota"]), int(row["used_bytes"])
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
        victims = await conn.fetch(
            "SELECT id, mailbox, seq, charged, blob FROM messages WHERE account = $1"
            " ORDER BY id LIMIT 64",
            msg.account,
        )
        for v in victims:
            await conn.execute("DELETE FROM messages WHERE id = $1", v["id"])
            evicted.append(Eviction(v["mailbox"], int(v["seq"])))
            if v["blob"]:
                unlink.append(v["blob"])
            used -= int(v["charged"])
            if used + charge <= limit:
                break
    expires = now + (row["ttl_seconds"] or default_ttl)
    seq = await conn.fetchval(
        _APPEND_STORE,
        msg.mailbox,
        msg.account,
        msg.size,
        charge,
        msg.body,
        msg.blob,
        now,
        expires,
        msg.msg_id,
        msg.digest,
    )
    devices: list[str] = []
    if wake:  # only uploads that carry a push need to know whom to wake
        rows = await conn.fetch(
            "SELECT device_id FROM registrations WHERE mailbox = $1", msg.mailbox
        )
        devices = [r["device_id"] for r in rows]
    return Appended(
        UploadResult(seq=int(seq), evicted=tuple(evicted)), unlink=unlink, devices=devices
    )


class PgStorage(PgTokens, PgNameplates):
    """``relay.storage.Storage`` on PostgreSQL (a relay process's pool: ``PgDatabase``)."""

    def __init__(self, db: PgDatabase) -> None:
        self.db = db

    # ---- mailboxes and messages ----------------------------------------------------

    async def create_mailbox(
        self, *, account: str, mailbox: str, now: float, ttl_seconds: int | None
    ) -> bool:
        async def op(conn: Connection) -> bool:
            created = await conn.fetchval(
                "INSERT INTO mailboxes(id, account, created_at, ttl_seconds)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING RETURNING true",
                mailbox,
                account,
                now,
                ttl_seconds,
            )
            if created:
                return True
            owner = await conn.fetchval("SELECT account FROM mailboxes WHERE id = $1", mailbox)
            if owner != account:
                raise RelayRejectedError("mailbox id is taken", 409, "mailbox_exists")
            if ttl_seconds is not None:
                await conn.execute(
                    "UPDATE mailboxes SET ttl_seconds = $1 WHERE id = $2", ttl_seconds, mailbox
                )
            return False

        return await self.db.transaction(op)

    async def mailbox_info(
        self, *, account: str, mailbox: str, now: float, default_ttl: int
    ) -> MailboxInfo:
        async def op(conn: Connection) -> MailboxInfo:
            last_seq, ttl = await _mailbox(conn, account, mailbox)
            row = await conn.fetchrow(
                "SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes FROM messages"
                " WHERE mailbox = $1 AND expires_at > $2",
                mailbox,
                now,
            )
            assert row is not None  # an aggregate always has a row
            devices = await conn.fetch(
                "SELECT device_id, cursor FROM registrations WHERE mailbox = $1", mailbox
            )
            return MailboxInfo(
                id=mailbox,
                last_seq=last_seq,
                count=int(row["n"]),
                bytes=int(row["bytes"]),
                ttl_seconds=ttl or default_ttl,
                devices={r["device_id"]: int(r["cursor"]) for r in devices},
            )

        return await self.db.read(op)

    async def delete_mailbox(self, *, account: str, mailbox: str) -> list[str]:
        async def op(conn: Connection) -> list[str]:
            await _mailbox(conn, account, mailbox, lock=True)
            rows = await conn.fetch(
                "SELECT blob FROM messages WHERE mailbox = $1 AND blob IS NOT NULL", mailbox
            )
            await conn.execute("DELETE FROM mailboxes WHERE id = $1", mailbox)
            return [r["blob"] for r in rows]

        return await self.db.transaction(op)

    async def owned(self, *, account: str, mailboxes: list[str]) -> set[str]:
        if not mailboxes:
            return set()

        async def op(conn: Connection) -> set[str]:
            rows = await conn.fetch(
                "SELECT id FROM mailboxes WHERE account = $1 AND id = ANY($2::text[])",
                account,
                mailboxes,
            )
            return {r["id"] for r in rows}

        return await self.db.read(op)

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
        return await self.db.transaction(
            lambda conn: _append(
                conn,
                msg,
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
        async def op(conn: Connection) -> list[Appended | RelayRejectedError]:
            out: list[Appended | RelayRejectedError] = []
            for item, want_wake in zip(items, wake, strict=True):
                if isinstance(item, RelayRejectedError):
                    out.append(item)
                    continue
                try:
                    async with conn.transaction():  # a savepoint: a refusal spoils nothing else
                        out.append(
                            await _append(
                                conn,
                                item,
                                now=now,
                                default_ttl=default_ttl,
                                quota=quota,
                                wake=want_wake,
                                evict=evict,
                            )
                        )
                except RelayRejectedError as exc:
                    out.append(exc)
            return out

        return await self.db.transaction(op)

    async def list_messages(
        self, *, account: str, mailbox: str, after: int, limit: int, now: float, list_body_max: int
    ) -> MessagePage:
        async def op(conn: Connection) -> MessagePage:
            last_seq, _ = await _mailbox(conn, account, mailbox)
            # Larger inline bodies stay in the database: a listing page must stay small.
            rows = await conn.fetch(
                "SELECT seq, size, CASE WHEN size <= $1 THEN body END AS body FROM messages"
                " WHERE mailbox = $2 AND seq > $3 AND expires_at > $4 ORDER BY seq LIMIT $5",
                list_body_max,
                mailbox,
                after,
                now,
                limit,
            )
            return MessagePage(
                messages=tuple(
                    MessageInfo(
                        seq=int(r["seq"]),
                        size=int(r["size"]),
                        body=None if r["body"] is None else bytes(r["body"]),
                    )
                    for r in rows
                ),
                last_seq=last_seq,
            )

        return await self.db.read(op)

    async def get_message(
        self, *, account: str, mailbox: str, seq: int, now: float
    ) -> tuple[int, bytes | None, str | None]:
        async def op(conn: Connection) -> tuple[int, bytes | None, str | None]:
            await _mailbox(conn, account, mailbox)
            row = await conn.fetchrow(
                "SELECT size, body, blob FROM messages WHERE mailbox = $1 AND seq = $2"
                " AND expires_at > $3",
                mailbox,
                seq,
                now,
            )
            if row is None:
                raise RelayRejectedError(
                    "no such message (never stored, acknowledged or expired)",
                    404,
                    "message_not_found",
                )
            body = bytes(row["body"]) if row["body"] is not None else None
            return int(row["size"]), body, row["blob"]

        return await self.db.read(op)

    async def register(self, *, account: str, mailbox: str, device_id: str) -> int:
        async def op(conn: Connection) -> int:
            await _mailbox(conn, account, mailbox)
            await conn.execute(
                "INSERT INTO registrations(mailbox, account, device_id, cursor)"
                " VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING",
                mailbox,
                account,
                device_id,
            )
            return int(
                await conn.fetchval(
                    "SELECT cursor FROM registrations WHERE mailbox = $1 AND device_id = $2",
                    mailbox,
                    device_id,
                )
            )

        return await self.db.transaction(op)

    async def unregister(self, *, account: str, mailbox: str, device_id: str) -> list[str]:
        async def op(conn: Connection) -> list[str]:
            await _mailbox(conn, account, mailbox, lock=True)
            gone = await conn.fetchval(
                "DELETE FROM registrations WHERE mailbox = $1 AND device_id = $2 RETURNING 1",
                mailbox,
                device_id,
            )
            if gone is None:
                raise RelayRejectedError(
                    "this device is not registered on the mailbox", 409, "not_registered"
                )
            return await _collect(conn, mailbox)

        return await self.db.transaction(op)

    async def ack(
        self, *, account: str, mailbox: str, device_id: str, seq: int
    ) -> tuple[int, list[str]]:
        async def op(conn: Connection) -> tuple[int, list[str]]:
            last_seq, _ = await _mailbox(conn, account, mailbox, lock=True)
            cursor = await conn.fetchval(
                "SELECT cursor FROM registrations WHERE mailbox = $1 AND device_id = $2",
                mailbox,
                device_id,
            )
            if cursor is None:
                raise RelayRejectedError(
                    "register this device on the mailbox before acknowledging",
                    409,
                    "not_registered",
                )
            if seq > last_seq:
                raise RelayRejectedError(
                    f"cannot acknowledge seq {seq}: the mailbox ends at {last_seq}",
                    409,
                    "ack_beyond_end",
                )
            moved = max(int(cursor), seq)  # acks never move a cursor backwards
            await conn.execute(
                "UPDATE registrations SET cursor = $1 WHERE mailbox = $2 AND device_id = $3",
                moved,
                mailbox,
                device_id,
            )
            return moved, await _collect(conn, mailbox)

        return await self.db.transaction(op)

    async def push_targets(self, *, account: str, devices: list[str]) -> list[PushTarget]:
        if not devices:
            return []

        async def op(conn: Connection) -> list[PushTarget]:
            rows = await conn.fetch(
                "SELECT device_id, fcm_token, webhook_url FROM devices WHERE account = $1"
                " AND device_id = ANY($2::text[])"
                " AND (fcm_token IS NOT NULL OR webhook_url IS NOT NULL)",
                account,
                devices,
            )
            return [(r["device_id"], r["fcm_token"], r["webhook_url"]) for r in rows]

        return await self.db.read(op)

    async def expire(self, *, now: float) -> tuple[int, list[str]]:
        async def op(conn: Connection) -> tuple[int, list[str]]:
            rows = await conn.fetch(
                "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE expires_at <= $1"
                " LIMIT 1000 FOR UPDATE SKIP LOCKED) RETURNING blob",
                now,
            )
            await conn.execute("DELETE FROM receipts WHERE expires_at <= $1", now)
            return len(rows), [r["blob"] for r in rows if r["blob"]]

        return await self.db.transaction(op)

    async def referenced_blobs(self) -> set[str]:
        async def op(conn: Connection) -> set[str]:
            rows = await conn.fetch("SELECT blob FROM messages WHERE blob IS NOT NULL")
            return {r["blob"] for r in rows}

        return await self.db.read(op)

    async def stats(self) -> dict[str, Any]:
        async def op(conn: Connection) -> dict[str, Any]:
            row = await conn.fetchrow(
                "SELECT (SELECT COUNT(*) FROM messages) AS messages,"
                " (SELECT COALESCE(SUM(size), 0) FROM messages) AS bytes,"
                " (SELECT COALESCE(MAX(n), 0) FROM (SELECT COUNT(*) AS n FROM messages"
                "  GROUP BY mailbox) d) AS max_depth,"
                " (SELECT COUNT(*) FROM mailboxes) AS mailboxes,"
                " (SELECT COUNT(*) FROM accounts) AS accounts"
            )
            assert row is not None
            return {k: int(v) for k, v in dict(row).items()}

        return await self.db.read(op)

    async def remove_device(
        self, *, account: str, device_id: str, now: float
    ) -> tuple[list[str], list[str]]:
        async def op(conn: Connection) -> tuple[list[str], list[str]]:
            gone = await conn.fetchval(
                "DELETE FROM devices WHERE account = $1 AND device_id = $2 RETURNING 1",
                account,
                device_id,
            )
            if gone is None:
                raise RelayRejectedError("no such device", 404, "device_not_found")
            revoked = await bury(conn, "account = $2 AND device_id = $3", [account, device_id], now)
            await conn.execute(
                "DELETE FROM registrations WHERE account = $1 AND device_id = $2",
                account,
                device_id,
            )
            blobs: list[str] = []
            boxes = await conn.fetch(
                "SELECT id FROM mailboxes WHERE account = $1 ORDER BY id FOR UPDATE", account
            )
            for box in boxes:
                blobs += await _collect(conn, box["id"])
            return revoked, blobs

        return await self.db.transaction(op)


# mypy checks here that the class implements the whole interface.
_CONFORMS: type[Storage] = PgStorage

__all__ = ["PgStorage"]
