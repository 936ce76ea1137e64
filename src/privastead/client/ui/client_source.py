"""The UI over this device's data directory: ``LocalSource`` plus the client's receive loop.

Once the directory is paired, a ``Client`` (``client.app``: the same receive loop as
``privastead-app listen``) runs in the UI's process, so events, clips and the hub's health stay
current while the page is open, and decryption never leaves this process; it also answers the
other commands on its local socket (``client.local_socket``). Before that, the pairing page
pairs the directory (``client.pairing.pair``) and the loop starts right after.

Live view asks the hub through that same ``Client`` (``client.live_request.open_live``: a
``LiveRequest`` in the control group, then the relay's live channel); for H.265 cameras the
page asks for H.264 and ``LocalSource`` transcodes on the fly (``h264_live``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from privastead.client.app import Client, ClientOptions
from privastead.client.defaults import DEFAULT_OFFLINE_AFTER
from privastead.client.device import DataDir
from privastead.client.live_request import ANSWER_TIMEOUT, open_live
from privastead.client.local_socket import LocalServer, open_owner
from privastead.client.playback_request import fetch_playback
from privastead.client.timeline import timeline
from privastead.client.ui.source import (
    NEEDS_RELAY,
    WAITING,
    Camera,
    Clip,
    Device,
    Event,
    LiveStream,
    LocalSource,
    PairingStep,
    UnavailableError,
)
from privastead.clock import Clock
from privastead.errors import CameraUnavailableError, DecodeError, PrivasteadError
from privastead.media.transcode import transcode_clip
from privastead.protocol.pairing_code import PairingCode

log = logging.getLogger(__name__)


class ClientSource:
    def __init__(
        self,
        data: DataDir,
        *,
        clock: Clock,
        device_name: str,
        poll: float = 5.0,
        offline_after: float = DEFAULT_OFFLINE_AFTER,
        live_timeout: float = ANSWER_TIMEOUT,
    ) -> None:
        self.data = data
        self.live_timeout = live_timeout  # seconds to wait for the hub to answer a request
        self.clock = clock
        self.device_name = device_name
        self.poll = poll
        self.offline_after = offline_after
        self.syncer: Client | None = None
        self._local: LocalSource | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._server: LocalServer | None = None

    async def start(self) -> None:
        if self.data.paired():
            await self._open()

    async def _open(self) -> None:
        options = ClientOptions(offline_after=self.offline_after)
        syncer = await open_owner(
            self.data.root, lambda: Client(self.data, clock=self.clock, options=options)
        )
        info = syncer.info

        def devices() -> list[Device]:
            return [
                Device(info.hub_name, "hub", info.hub_name, info.safety_code),
                Device(info.device_name, "this device", info.hub_name, info.safety_code),
            ]

        self._local = LocalSource(
            syncer.events,
            cache_dir=self.data.root / "ui-cache",
            hubs={info.hub_name: syncer.health},
            camera_hubs=dict.fromkeys(info.cameras(), info.hub_name),
            devices=devices,
            live=lambda camera: self._live(syncer, camera),
            transcode_clip=transcode_clip,
            timeline=lambda camera, start, end: timeline(syncer, camera, start, end),
            playback=lambda camera, start, end, out: fetch_playback(
                syncer, camera, start, end, out
            ),
        )
        self.syncer = syncer
        self._server = LocalServer(syncer)  # `status`, `live`... ask this process meanwhile
        await self._server.start()
        self._task = asyncio.ensure_future(self._listen(syncer))

    async def _live(self, syncer: Client, camera: str) -> LiveStream:
        """``open_live`` with the page's words for a hub that does not answer."""
        stream = open_live(syncer, camera, answer_timeout=self.live_timeout)
        try:
            async for piece in stream:
                yield piece
        except CameraUnavailableError as exc:
            if not str(exc).startswith("no answer from the hub"):
                raise  # the hub answered: its reason (camera disconnected...) is the message
            health = syncer.health.report().detail
            raise CameraUnavailableError(
                f"The hub did not answer within {self.live_timeout:.0f} s: it is offline or "
                f"`privastead-hub run` is not running; {health}."
            ) from exc
        finally:
            await stream.aclose()

    async def _listen(self, syncer: Client) -> None:
        try:
            await syncer.listen(poll=self.poll, stop=self._stop)
        except PrivasteadError as exc:  # the page shows health; the log says why
            log.error("receive loop stopped: %s", exc)

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._server is not None:
            await self._server.close()
        if self.syncer is not None:
            await self.syncer.close()

    # -- UiSource --------------------------------------------------------------------------

    async def cameras(self) -> list[Camera]:
        return [] if self._local is None else await self._local.cameras()

    async def events(self, camera: str, limit: int = 100) -> list[Event]:
        return [] if self._local is None else await self._local.events(camera, limit)

    async def event(self, event_id: str) -> Event | None:
        return None if self._local is None else await self._local.event(event_id)

    async def thumbnail(self, event_id: str) -> bytes | None:
        return None if self._local is None else await self._local.thumbnail(event_id)

    async def clip(self, event_id: str, *, h264: bool = False) -> Clip | None:
        return None if self._local is None else await self._local.clip(event_id, h264=h264)

    def live(self, camera: str, *, h264: bool = False) -> LiveStream:
        if self._local is None:
            raise UnavailableError("this device is not paired with a hub yet: pair it first")
        return self._local.live(camera, h264=h264)

    async def devices(self) -> list[Device]:
        return [] if self._local is None else await self._local.devices()

    async def timeline(self, camera: str, start: float, end: float) -> dict[str, Any]:
        if self._local is None:
            raise UnavailableError("this device is not paired with a hub yet: pair it first")
        return await self._local.timeline(camera, start, end)

    async def recording(self, camera: str, start: float, end: float, *, h264: bool = False) -> Path:
        if self._local is None:
            raise UnavailableError("this device is not paired with a hub yet: pair it first")
        return await self._local.recording(camera, start, end, h264=h264)

    async def pair(self, code: str, relay: str | None = None) -> AsyncIterator[PairingStep]:
        """Long code, or short code through ``relay`` (else the remembered relay); a step
        with the safety code and key fingerprint while the hub's owner confirms."""
        if self._local is not None:
            yield PairingStep(
                "this device is already paired", 1.0, error="start the UI with another --data-dir"
            )
            return
        from privastead.client.pairing import pair

        yield PairingStep("reading the pairing code", 0.1)
        try:
            parsed = await self._pairing_code(code, relay)
        except DecodeError as exc:
            yield PairingStep("the code is not valid", 1.0, error=str(exc))
            return
        except PrivasteadError as exc:  # the short code's exchange failed (burned, expired)
            yield PairingStep("pairing failed", 1.0, error=str(exc))
            return
        if parsed is None:
            yield PairingStep("which relay?", 1.0, error=NEEDS_RELAY)
            return
        yield PairingStep("contacting the relay and waiting for the hub", 0.3)
        steps: asyncio.Queue[PairingStep] = asyncio.Queue()

        def waiting(safety: str, fingerprint: str) -> None:
            steps.put_nowait(
                PairingStep(WAITING, 0.6, waiting_safety_code=safety, fingerprint=fingerprint)
            )

        task = asyncio.ensure_future(
            pair(parsed, self.data, self.device_name, clock=self.clock, on_waiting=waiting)
        )
        try:
            while not task.done():
                getter = asyncio.ensure_future(steps.get())
                await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                else:
                    getter.cancel()
            while not steps.empty():
                yield steps.get_nowait()
            result = task.result()
        except PrivasteadError as exc:
            yield PairingStep("pairing failed", 1.0, error=str(exc))
            return
        finally:
            task.cancel()  # the page went away: the pairing stops (nothing half-stored)
        yield PairingStep(f"approved: joined {', '.join(result.info.cameras())}", 0.9)
        await self._open()
        yield PairingStep("paired", 1.0, safety_code=result.safety_code)

    async def _pairing_code(self, code: str, relay: str | None) -> PairingCode | None:
        """The hub's pairing code; None when a short code lacks a relay to ask."""
        from privastead.client.short_code import fetch_pairing_code
        from privastead.protocol.relay_url import check_relay_url
        from privastead.protocol.short_code import looks_short, parse

        if not looks_short(code):
            return PairingCode.parse(code)
        url = (relay or "").strip().rstrip("/") or self.data.remembered_relay_url()
        if not url:
            return None
        short = parse(code)
        parsed = await fetch_pairing_code(check_relay_url(url), short, clock=self.clock)
        self.data.remember_relay_url(url)  # asked once
        return parsed


__all__ = ["ClientSource"]
