"""The local UI's HTTP and WebSocket server: a JSON API, files, and two WebSockets.

Routes, all under ``/<secret>/`` (``security.Guard`` rejects everything else):

- ``/`` the single page; ``static/*`` its script, style and icon (package data, no CDN);
- ``api/cameras``, ``api/cameras/{camera}/events``, ``api/events/{id}`` JSON;
- ``api/events/{id}/thumbnail.jpg``; ``api/events/{id}/clip.mp4[?h264=1]`` with HTTP ranges;
- ``api/devices``;
- ``api/cameras/{camera}/timeline?start=&end=`` (Unix seconds, at most 8 days): the recorded
  spans (asked from the hub) and this device's events in that time;
- ``api/cameras/{camera}/recording.mp4?start=&end=[&h264=1]`` (at most 3 hours): that range
  fetched from the hub through the relay (``playback.md``), decrypted, served with HTTP
  ranges (``h264=1``: transcoded for a browser without H.265);
- ``ws/live/{camera}[?h264=1]``: one text message ``{"mime": ...}``, then binary fMP4 pieces
  (init first); closing the socket stops the livestream;
- ``ws/pair``: send ``{"code": ..., "relay": URL or absent}``, receive pairing steps as JSON until
  the last (one of them, while the hub's owner confirms, carries the safety code and key
  fingerprint to compare).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import socket
from importlib import resources
from typing import Any

from aiohttp import WSMsgType, web

from privastead.client.ui.security import Guard, check_loopback, new_secret
from privastead.client.ui.source import UiSource, UnavailableError
from privastead.errors import ConfigError, MediaError, NothingRecordedError, PrivasteadError
from privastead.media.fmp4 import mime_codec
from privastead.protocol.playback_messages import MAX_LISTING_SECONDS, MAX_PLAYBACK_SECONDS

log = logging.getLogger(__name__)

SOURCE = web.AppKey("source", UiSource)
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
MAX_CODE = 4096  # a pairing code is a few hundred characters


def _json(value: Any) -> web.Response:
    def default(o: Any) -> Any:
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return dataclasses.asdict(o)
        return str(o)

    return web.Response(text=json.dumps(value, default=default), content_type="application/json")


def _static(name: str) -> bytes:
    return resources.files("privastead.client.ui").joinpath("static").joinpath(name).read_bytes()


async def index(_request: web.Request) -> web.Response:
    return web.Response(body=_static("index.html"), content_type="text/html", charset="utf-8")


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    suffix = name[name.rfind(".") :]
    if "/" in name or suffix not in STATIC_TYPES:
        raise web.HTTPNotFound()
    try:
        body = _static(name)
    except FileNotFoundError:
        raise web.HTTPNotFound() from None
    return web.Response(body=body, content_type=STATIC_TYPES[suffix])


async def cameras(request: web.Request) -> web.Response:
    return _json(await request.app[SOURCE].cameras())


async def events(request: web.Request) -> web.Response:
    return _json(await request.app[SOURCE].events(request.match_info["camera"]))


async def event(request: web.Request) -> web.Response:
    found = await request.app[SOURCE].event(request.match_info["event"])
    if found is None:
        raise web.HTTPNotFound(text="no such event")
    clip = await request.app[SOURCE].clip(found.event_id)
    return _json(
        {
            "event": found,
            "clip": None if clip is None else {"mime": clip.mime, "complete": clip.complete},
        }
    )


async def thumbnail(request: web.Request) -> web.Response:
    data = await request.app[SOURCE].thumbnail(request.match_info["event"])
    if data is None:
        raise web.HTTPNotFound(text="no thumbnail")
    # An event's thumbnail never changes: let the page redraw without refetching it.
    headers = {"Cache-Control": "private, max-age=86400, immutable"}
    return web.Response(body=data, content_type="image/jpeg", headers=headers)


async def clip(request: web.Request) -> web.StreamResponse:
    h264 = request.query.get("h264") == "1"
    try:
        found = await request.app[SOURCE].clip(request.match_info["event"], h264=h264)
    except (UnavailableError, MediaError) as exc:
        raise web.HTTPServiceUnavailable(text=str(exc)) from None
    if found is None:
        raise web.HTTPNotFound(text="no clip for this event yet")
    # FileResponse answers Range requests (206), which <video> uses to seek.
    return web.FileResponse(found.path, headers={"Content-Type": "video/mp4"})


async def devices(request: web.Request) -> web.Response:
    return _json(await request.app[SOURCE].devices())


def _problem(status: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=status)


def _range(request: web.Request, longest: float) -> tuple[float, float] | web.Response:
    try:
        start, end = float(request.query["start"]), float(request.query["end"])
    except (KeyError, ValueError):
        return _problem(400, "start and end must be Unix seconds")
    if not (0 <= start < end <= start + longest) or not math.isfinite(end):
        return _problem(400, f"end must be after start and at most {longest:.0f} s later")
    return start, end


async def timeline(request: web.Request) -> web.Response:
    asked = _range(request, MAX_LISTING_SECONDS)
    if isinstance(asked, web.Response):
        return asked
    try:
        found = await request.app[SOURCE].timeline(request.match_info["camera"], *asked)
    except ConfigError as exc:
        return _problem(404, str(exc))
    except PrivasteadError as exc:
        return _problem(503, str(exc))
    return _json(found)


async def recording(request: web.Request) -> web.StreamResponse:
    asked = _range(request, MAX_PLAYBACK_SECONDS)
    if isinstance(asked, web.Response):
        return asked
    try:
        path = await request.app[SOURCE].recording(
            request.match_info["camera"], *asked, h264=request.query.get("h264") == "1"
        )
    except (NothingRecordedError, ConfigError) as exc:
        return _problem(404, str(exc))
    except PrivasteadError as exc:  # the hub, the relay or the stream failed: try again later
        return _problem(503, str(exc))
    return web.FileResponse(path, headers={"Content-Type": "video/mp4"})


async def live(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=1 << 16)
    await ws.prepare(request)
    camera, h264 = request.match_info["camera"], request.query.get("h264") == "1"
    try:
        stream = request.app[SOURCE].live(camera, h264=h264)
    except PrivasteadError as exc:
        await ws.send_json({"error": str(exc)})
        await ws.close()
        return ws

    async def pump() -> None:
        first = True
        async for piece in stream:
            if first:
                try:
                    mime = f'video/mp4; codecs="{mime_codec(piece)}"'
                except MediaError as exc:
                    await ws.send_json({"error": f"the stream cannot be shown: {exc}"})
                    return
                await ws.send_json({"mime": mime})
                first = False
            await ws.send_bytes(piece)

    task = asyncio.ensure_future(pump())
    reader = asyncio.ensure_future(ws.receive())  # the page never sends; this ends on close
    try:
        await asyncio.wait({task, reader}, return_when=asyncio.FIRST_COMPLETED)
        if task.done() and task.exception() is not None:
            failure = task.exception()
            ok = isinstance(failure, PrivasteadError)
            text = str(failure) if ok else "the livestream failed"
            log.warning("livestream of %s ended: %r", camera, failure)
            await ws.send_json({"error": text})
    except ConnectionResetError:
        pass
    finally:
        for t in (task, reader):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await stream.aclose()
        await ws.close()
    return ws


async def pair(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=MAX_CODE)
    await ws.prepare(request)
    message = await ws.receive()
    if message.type is not WSMsgType.TEXT:
        await ws.close()
        return ws
    try:
        asked = json.loads(message.data)
        code = str(asked["code"])
        relay = asked.get("relay") or None
        if relay is not None and not isinstance(relay, str):
            raise TypeError("relay")
    except (ValueError, KeyError, TypeError, AttributeError):
        error = "send {code, relay (optional)}"
        await ws.send_json({"message": "bad request", "progress": 1.0, "error": error})
        await ws.close()
        return ws
    try:
        async for step in request.app[SOURCE].pair(code, relay):
            await ws.send_json(dataclasses.asdict(step))
    except PrivasteadError as exc:
        await ws.send_json({"message": "pairing failed", "progress": 1.0, "error": str(exc)})
    await ws.close()
    return ws


def make_app(source: UiSource, guard: Guard) -> web.Application:
    """The root app: the guard, then the UI under ``/<secret>/``."""
    ui = web.Application()
    ui[SOURCE] = source
    ui.add_routes(
        [
            web.get("/", index),
            web.get("/static/{name}", static),
            web.get("/api/cameras", cameras),
            web.get("/api/cameras/{camera}/events", events),
            web.get("/api/events/{event}", event),
            web.get("/api/events/{event}/thumbnail.jpg", thumbnail),
            web.get("/api/events/{event}/clip.mp4", clip),
            web.get("/api/devices", devices),
            web.get("/api/cameras/{camera}/timeline", timeline),
            web.get("/api/cameras/{camera}/recording.mp4", recording),
            web.get("/ws/live/{camera}", live),
            web.get("/ws/pair", pair),
        ]
    )
    root = web.Application(middlewares=[guard.middleware])
    root.add_subapp(f"/{guard.secret}/", ui)
    return root


class UiServer:
    """Runs the app on ``host`` (loopback only) and a port (0: any free one)."""

    def __init__(self, source: UiSource, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.source = source
        self.host = check_loopback(host)
        self.port = port
        self.secret = new_secret()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/{self.secret}/"

    async def start(self) -> str:
        # Bind first (port 0 picks one), then build the guard that knows the port.
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        app = make_app(self.source, Guard(self.secret, self.host, self.port))
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.SockSite(self._runner, sock)
        await site.start()
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


__all__ = ["UiServer", "make_app"]
