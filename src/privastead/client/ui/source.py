"""What the web UI reads: a narrow, read-mostly interface over the client's data.

The server never touches MLS, SQLite or the clip store itself; it asks a ``UiSource``.
``LocalSource`` implements it over the event log, the clip store's files and the health
monitors; the parts that need a running client (livestream, devices, pairing) are hooks the
caller passes in, so the UI runs (and says what is missing) without them. ``FakeSource`` in
``fake.py`` is the in-memory version for tests and ``privastead-app ui --demo``.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from privastead import compat
from privastead.client.eventlog import EventLog, EventRecord
from privastead.client.health import HealthMonitor, HubHealth
from privastead.errors import MediaError, PrivasteadError
from privastead.media.fmp4 import mime_codec
from privastead.media.transcode import FragmentTranscoder, TranscodeSettings
from privastead.protocol.messages import Box


class Health(compat.StrEnum):
    """A camera's state as the UI shows it (its hub's health, as the client judges it)."""

    ONLINE = "online"
    OFFLINE = "offline"
    WITHHELD = "withheld"
    REMOVED = "removed"
    DESYNC = "desync"
    RELAY_UNREACHABLE = "relay_unreachable"
    HUB_CLOCK = "hub_clock"
    CAMERA_OFFLINE = "camera_offline"  # the hub is fine but gets no picture from this camera
    HUB_DISK = "hub_disk"  # the hub's disk is full: continuous recording paused


_FROM_HUB = {
    HubHealth.OK: Health.ONLINE,
    HubHealth.HUB_OFFLINE: Health.OFFLINE,
    HubHealth.WITHHELD: Health.WITHHELD,
    HubHealth.REMOVED: Health.REMOVED,
    HubHealth.RELAY_UNREACHABLE: Health.RELAY_UNREACHABLE,
    HubHealth.DESYNC: Health.DESYNC,
    HubHealth.STALE_EPOCH: Health.DESYNC,  # both mean: re-add this device
    HubHealth.HUB_CLOCK: Health.HUB_CLOCK,
    # Per camera below: only the cameras the hub reports gone get the badge.
    HubHealth.CAMERA_OFFLINE: Health.ONLINE,
    HubHealth.HUB_DISK: Health.HUB_DISK,
}


@dataclass(frozen=True)
class Event:
    event_id: str
    camera: str
    at: float | None
    score: float | None
    boxes: tuple[Box, ...]  # normalised [x, y, w, h]
    has_thumbnail: bool
    clip_state: str  # eventlog.ClipState values: none, partial, complete, incomplete


@dataclass(frozen=True)
class Camera:
    name: str
    hub: str
    health: Health
    detail: str
    last_heartbeat: float | None
    last_event: Event | None
    offline_since: float | None = None  # this device's clock; set while the camera is gone


@dataclass(frozen=True)
class Clip:
    path: Path
    mime: str  # e.g. 'video/mp4; codecs="avc1.64001F"' ('video/mp4' when unknown)
    complete: bool


@dataclass(frozen=True)
class Device:
    name: str
    role: str  # "hub", "this device", "other device"
    hub: str
    safety_code: str


@dataclass(frozen=True)
class PairingStep:
    message: str
    progress: float  # 0..1
    safety_code: str | None = None  # set on the last step of a successful pairing
    error: str | None = None  # set on the last step of a failed one
    # While the hub's owner confirms this device: what to compare with the hub's screen.
    waiting_safety_code: str | None = None
    fingerprint: str | None = None


WAITING = "waiting for the hub's owner to confirm this device: compare these with the hub"
NEEDS_RELAY = (
    "a short code is typed for a relay: enter the relay URL `privastead-hub pair` shows "
    "beside the code"
)


class UnavailableError(PrivasteadError):
    """The UI asked for something this client cannot provide now (no livestream hook...)."""


LiveStream = AsyncGenerator[bytes, None]  # init segment first, then media fragments; aclose() stops


class UiSource(Protocol):
    async def cameras(self) -> list[Camera]: ...

    async def events(self, camera: str, limit: int = 100) -> list[Event]: ...

    async def event(self, event_id: str) -> Event | None: ...

    async def thumbnail(self, event_id: str) -> bytes | None: ...

    async def clip(self, event_id: str, *, h264: bool = False) -> Clip | None:
        """The clip file; with ``h264`` an H.264 version (transcoded if need be)."""
        ...

    def live(self, camera: str, *, h264: bool = False) -> LiveStream:
        """Start a livestream; iterate for fMP4 pieces (init first); ``aclose()`` stops it."""
        ...

    async def devices(self) -> list[Device]: ...

    def pair(self, code: str, relay: str | None = None) -> AsyncIterator[PairingStep]:
        """Pair with the long code, or a short code typed for ``relay`` (the relay URL)."""
        ...

    async def timeline(self, camera: str, start: float, end: float) -> dict[str, Any]:
        """``client.timeline.timeline``'s answer: recorded spans and events in [start, end)."""
        ...

    async def recording(self, camera: str, start: float, end: float, *, h264: bool = False) -> Path:
        """The recording of ``camera`` from ``start`` to ``end`` as a complete MP4 file
        (fetched from the hub through the relay: ``client.playback_request``); with ``h264``
        an H.264 version (transcoded if need be)."""
        ...


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def clip_mime(path: Path) -> str:
    """The MSE/``<video>`` type of an fMP4 clip from its init segment (moov at the start)."""
    try:
        with path.open("rb") as f:
            head = f.read(1 << 20)
        return f'video/mp4; codecs="{mime_codec(head)}"'
    except (OSError, MediaError):
        return "video/mp4"


def event_of(record: EventRecord) -> Event:
    path = record.thumbnail_path
    return Event(
        event_id=record.event_id,
        camera=record.camera,
        at=record.at if record.at is not None else record.received_at,
        score=record.score,
        boxes=record.boxes,
        has_thumbnail=path is not None and path.is_file(),
        clip_state=record.clip_state.value,
    )


ClipTranscoder = Callable[[Path, Path], object]  # (src, dst); media.transcode.transcode_clip
TimelineHook = Callable[[str, float, float], Awaitable[dict[str, Any]]]  # client.timeline
PlaybackHook = Callable[[str, float, float, Path], Awaitable[object]]  # fetch_playback to a file
KEEP_RECORDINGS = 8  # fetched playback files kept in the cache (newest)
LiveOpener = Callable[[str], LiveStream]  # the camera's own stream, decrypted
PairHook = Callable[[str], AsyncIterator[PairingStep]]


async def h264_live(stream: LiveStream, settings: TranscodeSettings | None = None) -> LiveStream:
    """``stream`` as H.264 for a browser without H.265: H.264 passes through untouched, H.265 is
    decoded and re-encoded piece by piece in a worker thread. Each piece is awaited before the
    next is read, so a slow transcoder slows the source (which skips to keyframes) instead of
    queueing here."""
    coder = FragmentTranscoder(settings or TranscodeSettings(max_height=720))
    try:
        async for piece in stream:
            for out in await asyncio.to_thread(coder.push, piece):
                yield out
    finally:
        await stream.aclose()


async def _no_pairing(code: str) -> AsyncIterator[PairingStep]:
    yield PairingStep("pairing needs the client's keys", 1.0, error="run `privastead-app pair`")


def _newer(path: Path, than: Path) -> bool:
    return path.is_file() and path.stat().st_mtime >= than.stat().st_mtime


class LocalSource:
    """The UI over this client's event log and clip files, and its hubs' health monitors."""

    def __init__(
        self,
        events: EventLog,
        *,
        cache_dir: Path,
        hubs: Mapping[str, HealthMonitor] | None = None,
        camera_hubs: Mapping[str, str] | None = None,
        devices: Callable[[], list[Device]] | None = None,
        live: LiveOpener | None = None,
        pair: PairHook | None = None,
        transcode_clip: ClipTranscoder | None = None,
        timeline: TimelineHook | None = None,
        playback: PlaybackHook | None = None,
    ) -> None:
        self._log = events
        self._cache = cache_dir
        self._hubs = dict(hubs or {})
        self._camera_hubs = dict(camera_hubs or {})
        self._devices = devices
        self._live = live
        self._pair = pair or _no_pairing
        self._transcode = transcode_clip
        self._transcoding: dict[str, asyncio.Task[Path]] = {}
        self._timeline = timeline
        self._playback = playback
        self._fetching: dict[str, asyncio.Task[Path]] = {}

    async def cameras(self) -> list[Camera]:
        names = sorted(set(self._camera_hubs) | set(self._log.cameras()))
        result = []
        for name in names:
            hub = self._camera_hubs.get(name, "")
            monitor = self._hubs.get(hub)
            latest = self._log.events(camera=name, limit=1)
            since: float | None = None
            if monitor is None:
                health, detail, beat = Health.OFFLINE, "no health data from this hub yet", None
            else:
                report = monitor.report()
                health, detail = _FROM_HUB[report.state], report.detail
                beat = monitor.last_heartbeat()
                if report.state is HubHealth.CAMERA_OFFLINE:
                    since = monitor.camera_offline_since(name)
                    if since is not None:
                        health = Health.CAMERA_OFFLINE
                        detail = f"camera {name} offline since {_when(since)}"
                    else:
                        detail = f"camera {name} connected"
            last = event_of(latest[0]) if latest else None
            result.append(Camera(name, hub, health, detail, beat, last, since))
        return result

    async def events(self, camera: str, limit: int = 100) -> list[Event]:
        return [event_of(r) for r in self._log.events(camera=camera, limit=limit)]

    async def event(self, event_id: str) -> Event | None:
        record = self._log.get(event_id)
        return None if record is None else event_of(record)

    async def thumbnail(self, event_id: str) -> bytes | None:
        record = self._log.get(event_id)
        if record is None or record.thumbnail_path is None:
            return None
        try:
            return record.thumbnail_path.read_bytes()
        except OSError:
            return None

    async def clip(self, event_id: str, *, h264: bool = False) -> Clip | None:
        record = self._log.get(event_id)
        if record is None or record.clip_path is None or not record.clip_path.is_file():
            return None
        path = record.clip_path
        complete = record.clip_state.value == "complete"
        mime = clip_mime(path)
        if not h264 or "avc1" in mime or "avc3" in mime:
            return Clip(path, mime, complete)
        if self._transcode is None:
            raise UnavailableError("this client has no H.265 to H.264 transcoder")
        out = await self._transcoded(record.event_id, path)
        return Clip(out, clip_mime(out), complete)

    async def _transcoded(self, event_id: str, src: Path) -> Path:
        dst = self._cache / f"{event_id}.h264.mp4"
        if _newer(dst, src):
            return dst
        task = self._transcoding.get(event_id)
        if task is None:  # one transcode per clip however many requests wait for it
            task = asyncio.ensure_future(self._transcode_to(src, dst))
            self._transcoding[event_id] = task
            task.add_done_callback(lambda _t: self._transcoding.pop(event_id, None))
        return await asyncio.shield(task)

    async def _transcode_to(self, src: Path, dst: Path) -> Path:
        assert self._transcode is not None
        self._cache.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = dst.with_suffix(".tmp")
        await asyncio.to_thread(self._transcode, src, tmp)
        tmp.replace(dst)
        return dst

    def live(self, camera: str, *, h264: bool = False) -> LiveStream:
        if self._live is None:
            raise UnavailableError(
                "livestream needs the client's receive loop (`privastead-app listen`)"
            )
        stream = self._live(camera)
        return h264_live(stream) if h264 else stream

    async def devices(self) -> list[Device]:
        return [] if self._devices is None else self._devices()

    def pair(self, code: str, relay: str | None = None) -> AsyncIterator[PairingStep]:
        return self._pair(code)

    async def timeline(self, camera: str, start: float, end: float) -> dict[str, Any]:
        if self._timeline is not None:
            return await self._timeline(camera, start, end)
        records = self._log.events(camera=camera, since=start, until=end, limit=2000)
        return {
            "camera": camera,
            "start": start,
            "end": end,
            "spans": [],
            "truncated": False,
            "events": [
                {
                    "event_id": r.event_id,
                    "at": r.at if r.at is not None else r.received_at,
                    "score": r.score,
                    "clip_state": r.clip_state.value,
                }
                for r in records
            ],
            "error": "recordings are asked from the hub by the client's receive loop",
        }

    async def recording(self, camera: str, start: float, end: float, *, h264: bool = False) -> Path:
        path = await self._recording(camera, start, end)
        mime = clip_mime(path)
        if not h264 or "avc1" in mime or "avc3" in mime:
            return path
        if self._transcode is None:
            raise UnavailableError("this client has no H.265 to H.264 transcoder")
        return await self._transcoded(path.stem, path)

    async def _recording(self, camera: str, start: float, end: float) -> Path:
        if self._playback is None:
            raise UnavailableError("playback needs the client's receive loop (`privastead-app ui`)")
        name = hashlib.sha256(f"{camera}\0{start!r}\0{end!r}".encode()).hexdigest()[:32]
        dst = self._cache / "playback" / f"{name}.mp4"
        if dst.is_file():
            return dst
        task = self._fetching.get(name)
        if task is None:  # one fetch per range however many requests wait for it
            task = asyncio.ensure_future(self._fetch(camera, start, end, dst))
            self._fetching[name] = task
            task.add_done_callback(lambda _t: self._fetching.pop(name, None))
        return await asyncio.shield(task)

    async def _fetch(self, camera: str, start: float, end: float, dst: Path) -> Path:
        assert self._playback is not None
        dst.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        await self._playback(camera, start, end, dst)
        # Decrypted video of someone's home: keep only the newest few.
        files = sorted(dst.parent.glob("*.mp4"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in files[KEEP_RECORDINGS:]:
            if old != dst:
                old.unlink(missing_ok=True)
        return dst


__all__ = [
    "Camera",
    "Clip",
    "Device",
    "Event",
    "Health",
    "LiveStream",
    "LocalSource",
    "PairingStep",
    "UiSource",
    "UnavailableError",
    "clip_mime",
    "h264_live",
]
