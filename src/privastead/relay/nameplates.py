"""Nameplates: the short number at the front of a typed pairing code.

A hub (owner token) asks for a nameplate for its pairing mailbox: the relay keeps
``nameplate -> mailbox`` for at most ten minutes and answers a number of one to four digits.
The device that types ``417-acorn-shiny`` has no token yet; it claims nameplate 417 without
one and gets the mailbox and a restricted token for it (expiring with the nameplate), once:
the claim deletes the nameplate and issues the token in one transaction, so nobody else (nor
the same device) can claim it again. No token exists before the claim, so none sits in the
relay's storage waiting to be claimed.

The nameplate is not a secret and protects nothing by itself: whoever claims it first only gets
a mailbox in which to run the PAKE, where a wrong guess of the two words burns the code. So the
relay guards the *rate*: an unknown, expired or already claimed nameplate counts as a failed
attempt against the client address in the authentication throttle (429 once locked), and each
account holds at most ``MAX_PER_ACCOUNT`` open nameplates.

Nameplates live in the relay's storage (``Storage.add_nameplate`` / ``claim_nameplate``): in a
cluster the hub allocates through one relay process and the device claims through another.
Expiry is on the injected clock; nameplates never reach a log.
"""

from __future__ import annotations

import re
import secrets

from aiohttp import web

from privastead.relay.api import is_mailbox_id
from privastead.relay.auth import PRINCIPAL, public, require_owner
from privastead.relay.httputil import field_int, only_keys, read_json, reject
from privastead.relay.state import state_of

MAX_TTL = 600  # ten minutes: the short code's whole life
MAX_PER_ACCOUNT = 8
SHORT_RANGE = 999  # 1-3 digits while the relay holds few nameplates...
LONG_RANGE = 9999  # ...four when busy (a typed code stays within 20 characters)
_NAMEPLATE = re.compile(r"[1-9][0-9]{0,3}")


def choose(open_now: int) -> int:
    """A candidate nameplate while ``open_now`` are open (the storage retries a taken one).

    Random, not sequential: a stranger cannot predict (and claim first) the next one. At most
    half of the range is ever in use, so a free number is found in two tries on average."""
    if open_now >= LONG_RANGE // 2:
        raise reject(503, "nameplates_exhausted", "too many pairings in progress; retry later")
    limit = SHORT_RANGE if open_now < SHORT_RANGE // 2 else LONG_RANGE
    return 1 + secrets.randbelow(limit)


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
    n = await st.storage.add_nameplate(
        account=p.account,
        mailbox=mailbox,
        now=now,
        expires_at=now + ttl,
        per_account=MAX_PER_ACCOUNT,
        choose=choose,
    )
    if n is None:
        raise reject(
            429,
            "too_many_nameplates",
            f"this account already has {MAX_PER_ACCOUNT} open nameplates; wait for one "
            "to be claimed or expire",
        )
    return web.json_response(
        {"nameplate": str(n), "mailbox": mailbox, "expires_at": now + ttl}, status=201
    )


@public
async def claim(request: web.Request) -> web.Response:
    """POST /v1/nameplates/{nameplate}/claim (no token): the mailbox and token, once."""
    st = state_of(request)
    auth = st.auth
    addr = auth.addresses.key(request)
    await auth.locked([addr])  # 429 while this address is locked, on any relay process
    raw = request.match_info["nameplate"]
    if not _NAMEPLATE.fullmatch(raw):
        await auth.count_failure([addr])
        raise reject(400, "bad_nameplate", "a nameplate is a number from 1 to 9999")
    claimed = await st.storage.claim_nameplate(nameplate=int(raw), now=st.clock.time())
    if claimed is None:
        await auth.count_failure([addr])
        raise reject(
            404,
            "no_such_nameplate",
            "no pairing waits under this number (mistyped, expired or already used): "
            "check the code, or start pairing again on the hub",
        )
    mailbox, issued = claimed
    return web.json_response(
        {"mailbox": mailbox, "token": issued.token, "expires_at": issued.expires_at}
    )


__all__ = ["MAX_PER_ACCOUNT", "MAX_TTL", "allocate", "choose", "claim"]
