"""Nameplates of short-code pairing in PostgreSQL, so that every relay process sees them.

A hub allocates a nameplate through one relay process and the device, behind the same load
balancer, claims it through another: the table is the only place both can see. The row holds
no token: the claim removes the row and issues the pairing mailbox's restricted token in the
same transaction, so a nameplate yields at most one token, on whichever process claims first.
"""

from __future__ import annotations

from collections.abc import Callable

from privastead.relay.api import IssuedToken
from privastead.relay.backends.pg import Connection, PgDatabase
from privastead.relay.backends.pg_tokens import issue


class PgNameplates:
    """The nameplate half of ``PgStorage``."""

    db: PgDatabase

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
        async def op(conn: Connection) -> int | None:
            # The account row serialises one account's allocations on every process, so two
            # at once cannot both pass the per-account count.
            await conn.execute("SELECT 1 FROM accounts WHERE name = $1 FOR UPDATE", account)
            await conn.execute("DELETE FROM nameplates WHERE expires_at <= $1", now)
            held = await conn.fetchval(
                "SELECT COUNT(*) FROM nameplates WHERE account = $1", account
            )
            if held >= per_account:
                return None
            total = int(await conn.fetchval("SELECT COUNT(*) FROM nameplates"))
            while True:
                n = await conn.fetchval(
                    "INSERT INTO nameplates(nameplate, account, mailbox, expires_at)"
                    " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING nameplate",
                    choose(total),
                    account,
                    mailbox,
                    expires_at,
                )
                if n is not None:
                    return int(n)

        return await self.db.transaction(op)

    async def claim_nameplate(
        self, *, nameplate: int, now: float
    ) -> tuple[str, IssuedToken] | None:
        async def op(conn: Connection) -> tuple[str, IssuedToken] | None:
            row = await conn.fetchrow(
                "DELETE FROM nameplates WHERE nameplate = $1"
                " RETURNING account, mailbox, expires_at",
                nameplate,
            )
            if row is None or row["expires_at"] <= now:
                return None
            issued = await issue(
                conn,
                account=row["account"],
                kind="restricted",
                now=now,
                mailboxes=[row["mailbox"]],
                expires_at=row["expires_at"],
                label="nameplate",
            )
            return row["mailbox"], issued

        return await self.db.transaction(op)


__all__ = ["PgNameplates"]
