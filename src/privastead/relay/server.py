"""Run the relay: uvloop, TCP (optionally TLS), signals, graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import ssl
from collections.abc import Callable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from privastead.clock import SYSTEM_CLOCK
from privastead.relay.app import create_app, drain
from privastead.relay.config import RelayConfig
from privastead.relay.httputil import error_response

_log = logging.getLogger(__name__)


def raise_fd_limit() -> int:
    """Thousands of idle WebSockets need thousands of descriptors: use the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class JsonErrorHandler(RequestHandler):
    """aiohttp's connection handler, answering what it cannot parse (a malformed request
    line or header, a bad chunk size, an oversized header, TLS sent to plain HTTP...) with the
    API's JSON error shape instead of text/plain, logged quietly: it is the client's fault."""

    __slots__ = ()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> StreamResponse:
        if request.writer.output_size > 0:  # an answer is half sent: only closing is left
            raise ConnectionError("response already started; closing the connection")
        if status >= 500:
            _log.error("error handling a request", exc_info=exc)
            response = error_response(
                status, "internal_error", "the relay failed on this request; retry later"
            )
        else:
            _log.debug("malformed HTTP request: %s", exc)
            detail = (message or str(exc or "") or "malformed HTTP request")[:200]
            response = error_response(status, "malformed_http", detail)
        response.force_close()
        return response


def json_errors(factory: Callable[[], RequestHandler]) -> Callable[[], RequestHandler]:
    """Wrap aiohttp's protocol factory so every connection uses ``JsonErrorHandler``."""

    def make() -> RequestHandler:
        handler = factory()
        handler.__class__ = JsonErrorHandler  # same layout (no new slots): only the method
        return handler

    return make


def tls_context(config: RelayConfig) -> ssl.SSLContext | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls_cert, config.tls_key)
    return context


async def serve(
    config: RelayConfig, operator_token: str | None, stop: asyncio.Event | None = None
) -> None:
    """Serve until SIGINT/SIGTERM (or ``stop``), then finish in-flight requests and close."""
    app = create_app(config, clock=SYSTEM_CLOCK, operator_token=operator_token)
    limits = config.limits
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        keepalive_timeout=limits.idle_timeout,
        shutdown_timeout=limits.shutdown_timeout,
        lingering_time=2.0,
    )
    await runner.setup()
    context = tls_context(config)
    # Our own listening server (not a TCPSite), so a graceful stop can close the listener
    # first and keep reading bodies of uploads in flight; aiohttp's own shutdown stops
    # reading request bodies at once.
    loop = asyncio.get_running_loop()
    protocol_factory = runner.server
    assert protocol_factory is not None  # set by setup()
    listener = await loop.create_server(
        json_errors(protocol_factory),
        config.host,
        config.port,
        ssl=context,
        backlog=1024,
        reuse_address=True,
    )
    scheme = "https" if context else "http"
    _log.info("relay listening on %s://%s:%d", scheme, config.host, config.port)
    print(f"privastead-server: listening on {scheme}://{config.host}:{config.port}", flush=True)
    stop = stop or asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        _log.info("stopping: finishing in-flight requests")
        listener.close()
        await drain(app, limits.shutdown_timeout)
    finally:
        listener.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
    _log.info("relay stopped")


def run(config: RelayConfig, operator_token: str | None) -> None:
    raise_fd_limit()
    if config.event_loop == "uvloop":
        import uvloop

        uvloop.run(serve(config, operator_token))
    else:
        asyncio.run(serve(config, operator_token))


__all__ = ["JsonErrorHandler", "json_errors", "raise_fd_limit", "run", "serve", "tls_context"]
