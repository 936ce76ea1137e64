"""``Expect: 100-continue``: the client waits for our go-ahead before sending its body, so
the relay answers it only once the request may succeed: authenticated, allowed, within the
size limit and the budgets (the upload slot is taken before the 100, so a client never sends
a body the relay then refuses for its share). Anything else is refused with the JSON error
(and the connection closed) before a single body byte is sent.

aiohttp runs expect handlers before the middlewares, so this one authenticates itself and
leaves the principal on the request for the middleware (no second check, no failure
counted twice).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from privastead.errors import RelayRejectedError
from privastead.relay.auth import PRINCIPAL, access_of
from privastead.relay.budgets import BODY_SLOT
from privastead.relay.httputil import error_response, reject, retry_after_of
from privastead.relay.state import state_of

# A route's check: synchronous (limits from the headers) or a coroutine (it asks the storage).
Check = Callable[[web.Request], Awaitable[None] | None]


def expect_after(
    check: Check | None = None,
) -> Callable[[web.Request], Awaitable[web.StreamResponse | None]]:
    """An expect handler that authenticates, runs ``check`` (limits, scope), then says 100."""

    async def expect(request: web.Request) -> web.StreamResponse | None:
        try:
            if request.headers.get("Expect", "").lower() != "100-continue":
                raise reject(417, "expectation_failed", "only Expect: 100-continue is understood")
            st = state_of(request)
            access = access_of(request.match_info.handler)
            if access == "operator":
                await st.auth.check_operator(request)
            elif access != "public":
                try:
                    request[PRINCIPAL] = await st.auth.principal(request)
                except RelayRejectedError:
                    st.metrics.inc("relay_auth_failures_total")
                    raise
            if PRINCIPAL in request:
                # No 100 past its upload share (of this process, and of all processes on
                # PostgreSQL): the slot is taken now and given back when the request ends.
                request[BODY_SLOT] = await st.shares.bodies.acquire(request[PRINCIPAL])
            if check is not None:
                pending = check(request)
                if pending is not None:
                    await pending
        except BaseException as exc:
            slot = request.pop(BODY_SLOT, None)
            if slot is not None:
                slot.release()
            if not isinstance(exc, RelayRejectedError):
                raise
            wait = retry_after_of(exc)
            headers = {"Connection": "close", **({"Retry-After": str(wait)} if wait else {})}
            return error_response(exc.status, exc.code, str(exc), headers)
        if request.version >= aiohttp.HttpVersion11 and request.transport is not None:
            request.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return None

    return expect


__all__ = ["expect_after"]
