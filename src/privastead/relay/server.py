"""Run the relay: uvloop, TCP (optionally TLS), signals, graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from privastead.clock import SYSTEM_CLOCK
from privastead.relay import front, peers
from privastead.relay.app import create_app, drain
from privastead.relay.config import RelayConfig
from privastead.relay.httputil import error_response
from privastead.relay.state import STATE

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
        if self.transport is not None and not _lingering(self):
            self.transport = _Lingering(self.transport)  # type: ignore[assignment]
        return response

    def data_received(self, data: bytes) -> None:
        if _lingering(self):
            return  # the rest of what was answered: read, so that closing does not reset
        super().data_received(data)


class _Lingering:
    """The transport of a connection answered with an error, closing without losing the answer.

    The client may still be sending (the rest of an oversized header, a body) when the answer
    goes out. A socket closed with unread input resets the connection, and a reset can reach
    the client, or the native front relaying for it, before it has read the answer: it saw
    the connection drop and nothing else (an oversized header, now and then). So closing
    says we are done (EOF) and goes on reading and dropping what comes, until the client
    closes too or ``LINGER_SECONDS`` pass; aiohttp does the same after an unread body.
    """

    __slots__ = ("_transport",)

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def __getattr__(self, name: str) -> object:
        return getattr(self._transport, name)

    def close(self) -> None:
        transport = self._transport
        if transport.is_closing():
            return
        if transport.can_write_eof():  # not over TLS: there the answer's length must do
            transport.write_eof()  # after what is still buffered
        if not transport.is_reading():
            transport.resume_reading()
        asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.close)


#: How long a connection answered with an error goes on reading before it closes.
LINGER_SECONDS = 2.0


def _lingering(handler: RequestHandler) -> bool:
    """The connection was answered with an error and closes by lingering."""
    return isinstance(getattr(handler, "transport", None), _Lingering)


class FrontHandler(JsonErrorHandler):
    """A connection from the native front: its first line names the client (``peers``)."""

    __slots__ = ()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        _PREAMBLE[self] = b""
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        pending = _PREAMBLE.get(self)
        if pending is None:
            super().data_received(data)
            return
        pending += data
        line, newline, rest = pending.partition(b"\n")
        if not newline:
            if len(pending) > _PREAMBLE_MAX and self.transport is not None:
                self.transport.close()
            _PREAMBLE[self] = pending
            return
        del _PREAMBLE[self]
        kind, _, address = line.decode("ascii", "replace").partition(" ")
        if kind != "PEER" or not address:
            _log.error("a front connection without its PEER line; closing it")
            if self.transport is not None:
                self.transport.close()
            return
        peers.remember(self, address)
        if rest:
            super().data_received(rest)

    def connection_lost(self, exc: BaseException | None) -> None:
        _PREAMBLE.pop(self, None)
        peers.forget(self)
        super().connection_lost(exc)


_PREAMBLE: dict[RequestHandler, bytes] = {}  # front connections before their PEER line
_PREAMBLE_MAX = 128


def json_errors(
    factory: Callable[[], RequestHandler], kind: type[JsonErrorHandler] = JsonErrorHandler
) -> Callable[[], RequestHandler]:
    """Wrap aiohttp's protocol factory so every connection uses ``kind`` (``JsonErrorHandler``,
    or ``FrontHandler`` on the native front's socket)."""

    def make() -> RequestHandler:
        handler = factory()
        handler.__class__ = kind  # same layout (no new slots): only methods
        return handler

    return make


def tls_context(config: RelayConfig) -> ssl.SSLContext | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls_cert, config.tls_key)
    return context


@dataclass
class Listening:
    """Where the relay takes connections: its own TCP server, or the native front."""

    port: int
    native: front.Front | None = None
    server: asyncio.Server | None = None

    def stop_accepting(self) -> None:
        if self.native is not None:
            self.native.begin_stop()
        if self.server is not None:
            self.server.close()

    async def close(self) -> None:
        self.stop_accepting()
        if self.native is not None:
            await self.native.stop()


async def listen(
    config: RelayConfig,
    app: web.Application,
    factory: Callable[[], RequestHandler],
    fatal: Callable[[str], None],
) -> Listening:
    """Start taking connections: through the native front when ``front.wanted``, else on
    our own listening server (not a TCPSite, so a graceful stop can close the listener first
    and keep reading bodies of uploads in flight; aiohttp's own shutdown stops reading
    request bodies at once)."""
    if front.wanted(config):
        native = front.Front(config, app[STATE], json_errors(factory, FrontHandler), fatal)
        return Listening(await native.start(), native=native)
    server = await asyncio.get_running_loop().create_server(
        json_errors(factory),
        config.host,
        config.port,
        ssl=tls_context(config),
        backlog=1024,
        reuse_address=True,
    )
    return Listening(config.port, server=server)


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
    loop = asyncio.get_running_loop()
    stopping = stop or asyncio.Event()
    failure: list[str] = []

    def fatal(reason: str) -> None:
        _log.critical("%s; stopping the relay", reason)
        failure.append(reason)
        stopping.set()

    assert runner.server is not None  # set by setup()
    # Before listening: the native front answers requests before ``listen`` returns, and a
    # SIGTERM in between used to take the default action, killing the relay without its
    # graceful stop (in-flight requests cut, the front's socket directory left behind).
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        listening = await listen(config, app, runner.server, fatal)
    except BaseException:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        raise
    scheme = "https" if config.tls_cert else "http"
    how = " (native front)" if listening.native is not None else ""
    _log.info("relay listening on %s://%s:%d%s", scheme, config.host, listening.port, how)
    print(f"privastead-server: listening on {scheme}://{config.host}:{listening.port}", flush=True)
    try:
        await stopping.wait()
        _log.info("stopping: finishing in-flight requests")
        listening.stop_accepting()
        await drain(app, limits.shutdown_timeout)
    finally:
        await listening.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
    if failure:
        raise RuntimeError(failure[0])
    _log.info("relay stopped")


def run(config: RelayConfig, operator_token: str | None) -> None:
    raise_fd_limit()
    if config.event_loop == "uvloop":
        import uvloop

        uvloop.run(serve(config, operator_token))
    else:
        asyncio.run(serve(config, operator_token))


__all__ = [
    "FrontHandler",
    "JsonErrorHandler",
    "Listening",
    "json_errors",
    "listen",
    "raise_fd_limit",
    "run",
    "serve",
    "tls_context",
]
