"""Nameplates: the short number at the front of a typed pairing code.

A hub (owner token) asks for a nameplate for its pairing mailbox: the relay issues a restricted
token for that one mailbox, keeps ``nameplate -> (mailbox, token)`` for at most ten minutes, and
answers a number of one to four digits. The device that types ``417-acorn-shiny`` has no token
yet; it claims nameplate 417 without one and gets the mailbox and token, once: the claim deletes
the nameplate, so nobody else (nor the same device) can claim it again.

The nameplate is not a secret and protects nothing by itself: whoever claims it first only gets
a mailbox in which to run the PAKE, where a wrong guess of the two words burns the code. So the
relay guards the *rate*: an unknown, expired or already claimed nameplate counts as a failed
attempt against the client address in the authentication throttle (429 once locked), and each
account holds at most ``MAX_PER_ACCOUNT`` open nameplates.

Nameplates live in memory, on the injected clock: a relay restart forgets them (the pairing is
started again), and they never touch the database or a log.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass, field
from functools import partial

from aiohttp import web

from privastead.clock import Clock
from privastead.errors import RelayRejectedError
from privastead.relay import accounts
from privastead.relay.api import is_mailbox_id
from privastead.relay.auth import PRINCIPAL, public, require_owner
from privastead.relay.httputil import RetryAfter, field_int, only_keys, read_json, reject
from privastead.relay.state import state_of

MAX_TTL = 600  # ten minutes: the short code's whole life
MAX_PER_ACCOUNT = 8
SHORT_RANGE = 999  # 1-3 digits while the relay holds few nameplates...
LONG_RANGE = 9999  # ...four when busy (a typed code stays within 20 characters)
_NAMEPLATE = re.compile(r"[1-9][0-9]{0,3}")


@dataclass(frozen=True)
class _Entry:
    account: str
    mailbox: str
    token: str = field(repr=False)
    expires_at: float


class Nameplates:
    """``nameplate -> entry`` with expiry on the injected clock; no I/O."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._open: dict[int, _Entry] = {}

    def _prune(self) -> None:
        now = self._clock.time()
        for n in [n for n, e in self._open.items() if e.expires_at <= now]:
            del self._open[n]

    def allocate(self, account: str, mailbox: str, token: str, expires_at: float) -> int:
        self._prune()
        if sum(e.account == account for e in self._open.values()) >= MAX_PER_ACCOUNT:
            raise reject(
                429,
                "too_many_nameplates",
                f"this account already has {MAX_PER_ACCOUNT} open nameplates; wait for one "
                "to be claimed or expire",
            )
        # Random, not sequential: a stranger cannot predict (and claim first) the next one.
        limit = SHORT_RANGE if len(self._open) < SHORT_RANGE // 2 else LONG_RANGE
        if len(self._open) >= LONG_RANGE // 2:
            raise reject(503, "nameplates_exhausted", "too many pairings in progress; retry later")
        while True:
            n = 1 + secrets.randbelow(limit)
            if n not in self._open:
                self._open[n] = _Entry(account, mailbox, token, expires_at)
                return n

    def claim(self, nameplate: int) -> _Entry | None:
        """The entry, removed (so a nameplate is claimed at most once), or None."""
        self._prune()
        return self._open.pop(nameplate, None)

    def __len__(self) -> int:
        self._prune()
        return len(self._open)


async def allocate(request: web.Request) -> web.Response:
    """POST /v1/nameplates {mailbox, ttl_seconds} (owner): a nameplate for a pairing mailbox."""
    p = request[PRINCIPAL]
    require_owner(p)
    data = await read_json(request)
    only_keys(data, "mailbox", "ttl_seconds")
    mailbox = data.get("mailbox")
    if not isinstance(mailbox, str) or not is_mailbox_id(mailbox):
        raise reject(400, "bad_field", "mailbox must be a mailbox id (32 lowercase hex)")
    ttl = field_int(data, "ttl_seconds", 1, MAX_TTL, MAX_TTL)
    st = state_of(request)
    now = st.clock.time()
    issued = await st.db.run(
        partial(
            accounts.issue_token,
            account=p.account,
            kind="restricted",
            now=now,
            mailboxes=[mailbox],
            expires_at=now + ttl,
            label="nameplate",
        )
    )
    try:
        n = st.nameplates.allocate(p.account, mailbox, issued.token, now + ttl)
    except RelayRejectedError:
        # No nameplate: the token just issued must not outlive the refusal.
        await st.db.run(
            partial(accounts.revoke_token, token_id=issued.token_id, now=now, account=p.account)
        )
        raise
    return web.json_response(
        {"nameplate": str(n), "mailbox": mailbox, "expires_at": now + ttl}, status=201
    )


@public
async def claim(request: web.Request) -> web.Response:
    """POST /v1/nameplates/{nameplate}/claim (no token): the mailbox and token, once."""
    st = state_of(request)
    addr = st.auth.addresses.key(request)
    throttle = st.auth.throttle
    wait = throttle.retry_after([addr])
    if wait > 0:
        raise RelayRejectedError(
            "too many failed attempts; retry later", 429, "too_many_attempts"
        ) from RetryAfter(math.ceil(wait))
    raw = request.match_info["nameplate"]
    if not _NAMEPLATE.fullmatch(raw):
        throttle.fail([addr])
        raise reject(400, "bad_nameplate", "a nameplate is a number from 1 to 9999")
    entry = st.nameplates.claim(int(raw))
    if entry is None:
        throttle.fail([addr])
        raise reject(
            404,
            "no_such_nameplate",
            "no pairing waits under this number (mistyped, expired or already used): "
            "check the code, or start pairing again on the hub",
        )
    return web.json_response(
        {"mailbox": entry.mailbox, "token": entry.token, "expires_at": entry.expires_at}
    )


__all__ = ["MAX_PER_ACCOUNT", "MAX_TTL", "Nameplates", "allocate", "claim"]
