"""The relay's application factory: ``create_app(config, clock=...) -> web.Application``.

State lives under one typed key (``state.STATE``); storage, pushes and the TTL sweeper are
started and stopped by a cleanup context; middlewares turn every failure into the API's
one JSON error shape and enforce deny-by-default authentication.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import WSCloseCode, web
from aiohttp.typedefs import Handler

from privastead import compat
from privastead.clock import SYSTEM_CLOCK, Clock
from privastead.errors import RelayRejectedError, StorageError
from privastead.relay.auth import PRINCIPAL, Authenticator, access_of
from privastead.relay.backend import backend_for
from privastead.relay.bodies import LIMITS
from privastead.relay.budgets import BODY_SLOT, Shares
from privastead.relay.config import RelayConfig
from privastead.relay.httputil import MAX_JSON_BODY, error_response, retry_after_of
from privastead.relay.live import LiveHub
from privastead.relay.metrics import standard
from privastead.relay.notify import Notifier
from privastead.relay.push import Pusher
from privastead.relay.revocations import Revocations
from privastead.relay.routes import ROUTES
from privastead.relay.state import STATE, RelayState

if TYPE_CHECKING:
    from privastead.relay.backends.pg_leases import PgLeases

_log = logging.getLogger(__name__)
BLOB_SWEEP_SECONDS = 600.0  # how often the shared object store is checked for orphans

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "too_many_attempts",
}


@web.middleware
async def relay_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The relay's one middleware (each layer costs a coroutine per request): it counts the
    request for graceful shutdown and metrics, authenticates it (deny by default), holds an
    upload slot of its account while a body is received, and turns every failure into the
    API's JSON error."""
    st = request.app[STATE]
    st.in_flight += 1
    st.idle.clear()
    try:
        try:
            response = await _authenticated(st, request, handler)
        except Exception as exc:
            response = _failure(request, exc)
    finally:
        slot = request.get(BODY_SLOT)  # taken by an expect handler before its 100 Continue
        if slot is not None:
            slot.release()
        st.in_flight -= 1
        if not st.in_flight:
            st.idle.set()
    resource = request.match_info.route.resource
    st.metrics.inc(
        "relay_requests_total",
        route=resource.canonical if resource is not None else "unmatched",
        method=request.method,
        status=str(response.status),
    )
    return response


async def _authenticated(
    st: RelayState, request: web.Request, handler: Handler
) -> web.StreamResponse:
    access = access_of(request.match_info.handler)
    if access == "operator":
        await st.auth.check_operator(request)
    elif access != "public" and PRINCIPAL not in request:  # (set by an expect handler)
        try:
            request[PRINCIPAL] = await st.auth.principal(request)
        except RelayRejectedError:
            st.metrics.inc("relay_auth_failures_total")
            raise
    p = request.get(PRINCIPAL)
    if p is None or not request.body_exists or BODY_SLOT in request:
        return await handler(request)
    # A household sending many (slow) bodies at once uses up its own share, not everybody's.
    async with st.shares.bodies.hold(p):
        return await handler(request)


def _failure(request: web.Request, exc: Exception) -> web.StreamResponse:
    """Every failure becomes ``{"error": {"code", "message"}}`` with a precise status."""
    if isinstance(exc, RelayRejectedError):
        wait = retry_after_of(exc)
        return error_response(
            exc.status, exc.code, str(exc), {"Retry-After": str(wait)} if wait else None
        )
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return error_response(
            exc.status, _STATUS_CODES.get(exc.status, "http_error"), exc.reason, headers
        )
    if isinstance(exc, StorageError):
        cause = exc.__cause__ or exc.__context__
        full = isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)
        full = full or "disk" in str(exc).lower() or "full" in str(exc).lower()
        _log.error("storage failure on %s: %s", request.method, exc)
        if full:
            return error_response(
                507, "storage_full", "the relay's storage is full; nothing was stored, retry later"
            )
        return error_response(
            503,
            "storage_unavailable",
            "storage failed; nothing was stored, retry later",
            {"Retry-After": "5"},
        )
    if isinstance(exc, ConnectionError):
        raise exc  # the client went away: nobody to answer
    # A bug: still the API's error shape, and the traceback goes to the operator's log.
    _log.error("unexpected failure on %s %s", request.method, request.path, exc_info=exc)
    return error_response(500, "internal_error", "the relay failed on this request; retry later")


async def sweep(st: RelayState) -> int:
    """Remove expired messages now (in batches); returns how many went."""
    total = 0
    retention = st.config.auth.revoked_retention_days * 86400
    await st.storage.prune_revoked(before=st.clock.time() - retention)
    if st.backend.pg is not None:
        from privastead.relay.backends.pg_throttle import PgThrottle

        if isinstance(st.auth.shared, PgThrottle):
            await st.auth.shared.prune()
    while True:
        count, blobs = await st.storage.expire(now=st.clock.time())
        await st.blobs.delete(blobs)
        total += count
        if count < 1000:
            break
    if total:
        st.metrics.inc("relay_messages_expired_total", total)
    return total


async def _sweeper(st: RelayState, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)  # real time on purpose: a FakeClock must not spin this
        try:
            await sweep(st)
        except Exception:
            _log.exception("TTL sweep failed")


async def _blob_sweeper(st: RelayState, interval: float) -> None:
    """Objects left by a crash between their upload and their row's commit (shared store)."""
    while True:
        try:
            await st.backend.sweep_blobs()
        except Exception:
            _log.exception("object store sweep failed")
        await asyncio.sleep(interval)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    st = app[STATE]
    config = st.config
    await st.backend.open(config)
    try:
        await st.pusher.start()
        await st.revocations.start()
        if st.leases is not None:
            await st.leases.start()
    except BaseException:
        await st.backend.close()
        raise
    # Revocations made elsewhere (the CLI, or another relay process on the same database).
    tasks = [asyncio.create_task(st.revocations.watch(config.auth.revocation_poll_seconds))]
    if config.sweep_interval_seconds > 0:
        tasks.append(asyncio.create_task(_sweeper(st, config.sweep_interval_seconds)))
        if st.backend.shared:
            tasks.append(asyncio.create_task(_blob_sweeper(st, BLOB_SWEEP_SECONDS)))
    st.ready = True
    where = config.data_dir if st.backend.sqlite is not None else "PostgreSQL and S3"
    _log.info("relay storage open (%s)", where)
    try:
        yield
    finally:
        st.ready = False
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await st.pusher.stop()
        if st.leases is not None:
            await st.leases.stop()
        await st.backend.close()
        _log.info("relay storage closed")


async def drain(app: web.Application, grace: float) -> None:
    """Graceful stop, first half: close sockets, let in-flight requests (uploads still
    receiving their bodies included) finish, for at most ``grace`` seconds."""
    await _close_websockets(app)
    st = app[STATE]
    if st.in_flight:
        with contextlib.suppress(TimeoutError):
            async with compat.timeout(grace):
                await st.idle.wait()


async def _close_websockets(app: web.Application) -> None:
    """On shutdown, sockets are closed so in-flight HTTP requests can finish in time."""
    st = app[STATE]
    st.ready = False
    await asyncio.gather(
        *(
            ws.close(code=WSCloseCode.GOING_AWAY, message=b"relay stopping")
            for ws in list(st.websockets)
        ),
        return_exceptions=True,
    )


def create_app(
    config: RelayConfig, *, clock: Clock = SYSTEM_CLOCK, operator_token: str | None = None
) -> web.Application:
    """Build the relay application. Nothing touches the disk until it starts."""
    metrics = standard()
    notifier = Notifier()
    backend = backend_for(config, notifier)
    storage = backend.storage
    auth = Authenticator(storage, config.auth, clock, operator_token)
    leases: PgLeases | None = None
    if backend.pg is not None:  # several processes: one count of failures for all ...
        from privastead.relay.backends.pg_leases import PgLeases
        from privastead.relay.backends.pg_throttle import PgThrottle

        auth.shared = PgThrottle(backend.pg, config.auth, clock)
        # ... and one count of each account's slots: its share holds across processes.
        leases = PgLeases(backend.pg, config.budgets.lease_seconds, clock)
    state = RelayState(
        config=config,
        clock=clock,
        backend=backend,
        auth=auth,
        revocations=Revocations(storage, auth.forget),
        shares=Shares.of(config.budgets, config.limits.max_websockets, leases),
        leases=leases,
        notifier=notifier,
        metrics=metrics,
        pusher=Pusher(config.push, clock, metrics),
        live=LiveHub(clock, metrics, config.limits.live_queue_frames, config.budgets),
    )
    app = web.Application(
        middlewares=[relay_middleware],
        client_max_size=MAX_JSON_BODY + 1,
    )
    app[STATE] = state
    app[LIMITS] = config.limits
    app.add_routes(ROUTES)
    app.cleanup_ctx.append(_lifecycle)
    app.on_shutdown.append(_close_websockets)
    return app


__all__ = ["create_app", "drain", "sweep"]
