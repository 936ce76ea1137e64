"""Each camera's health, read from the running cameras: the one source for every report.

The heartbeat (``delivery.heartbeats``: encrypted, to clients), the metrics and health endpoint
(``admin.metrics``: local) and anything else that reports a camera read ``CameraHealth``, so
they can never disagree about it.

"Connected" is judged by frames, not by the connection: a frame arrived within
``offline_after`` seconds (or the hub started less than that ago: a camera gets that long to
send its first one). A camera that freezes but keeps its RTSP session open counts as gone
exactly like one that was unplugged; a short reconnect is not an outage. The newest frame time
is kept per camera name across restarts of the camera object (the runner replaces a camera
whose pipeline failed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from privastead.clock import Clock
from privastead.media.ingest import Health

CAMERA_OFFLINE_AFTER = 10.0  # seconds without a frame before a camera counts as gone
CHECK_INTERVAL = 1.0  # how often ``watch`` looks for a camera going away or coming back


class _Stats(Protocol):
    errors: int
    events: int
    clips: int
    dropped: int


class RunningCamera(Protocol):
    """What the health reads of a running camera (``capture.camera.Camera``)."""

    @property
    def stats(self) -> _Stats: ...

    def health(self) -> Health: ...


@dataclass(frozen=True)
class CameraReport:
    camera: str
    connected: bool
    offline_since: float  # hub clock, Unix seconds; 0 while connected
    last_frame: float  # hub clock, Unix seconds; 0 before the first frame
    state: str  # the reader's: connecting, connected, stalled, reconnecting, unauthorized
    reconnects: int
    decode_errors: int  # packets the analysis could not process, and clip write failures
    fps: float  # of the last few seconds
    bitrate: float  # bits per second, the last few seconds
    events: int
    clips: int
    dropped: int  # detection packets dropped because the analysis fell behind

    def facts(self) -> dict[str, Any]:
        """What a heartbeat carries for this camera (flat: the protocol's scalar map)."""
        return {
            "connected": self.connected,
            "offline_since": round(self.offline_since, 3),
            "last_frame": round(self.last_frame, 3),
            "state": self.state,
            "reconnects": self.reconnects,
            "decode_errors": self.decode_errors,
            "fps": round(self.fps, 2),
        }


class CameraHealth:
    def __init__(
        self,
        names: Sequence[str],
        cameras: Mapping[str, RunningCamera],
        clock: Clock,
        *,
        offline_after: float = CAMERA_OFFLINE_AFTER,
        check_interval: float = CHECK_INTERVAL,
        storage: Callable[[str], dict[str, Any]] | None = None,
    ) -> None:
        """``names``: every configured camera; ``cameras``: the running ones (the runner's);
        ``storage``: the hub's disk and the camera's continuous recording, per camera
        (``recording.recordings.Recordings.facts``), added to what a heartbeat carries."""
        self.storage = storage
        self.names = list(names)
        self.cameras = cameras
        self.clock = clock
        self.offline_after = offline_after
        self.check_interval = check_interval
        self._started = clock.time()
        self._last_frame: dict[str, float] = {}
        self._connected: dict[str, bool] = {}  # as of the last ``check``

    def report(self, name: str) -> CameraReport:
        now = self.clock.time()
        camera = self.cameras.get(name)
        health = camera.health() if camera is not None else None
        if health is not None and health.last_packet_age is not None:
            self._last_frame[name] = now - health.last_packet_age
        last = self._last_frame.get(name)
        connected = now - (last if last is not None else self._started) <= self.offline_after
        since = 0.0 if connected else (last if last is not None else self._started)
        stats = camera.stats if camera is not None else None
        return CameraReport(
            camera=name,
            connected=connected,
            offline_since=since,
            last_frame=last if last is not None else 0.0,
            state=health.state if health is not None else "not running",
            reconnects=health.reconnects if health is not None else 0,
            decode_errors=stats.errors if stats is not None else 0,
            fps=health.fps if health is not None else 0.0,
            bitrate=health.bitrate if health is not None else 0.0,
            events=stats.events if stats is not None else 0,
            clips=stats.clips if stats is not None else 0,
            dropped=stats.dropped if stats is not None else 0,
        )

    def reports(self) -> list[CameraReport]:
        return [self.report(name) for name in self.names]

    def facts(self, name: str) -> dict[str, Any]:
        """For ``Heartbeats(health=...)``."""
        facts = self.report(name).facts()
        if self.storage is not None:
            facts |= self.storage(name)
        return facts

    def check(self) -> list[str]:
        """The cameras that went away or came back since the last call (a camera is expected
        to be there: only an outage, and the end of one, is news)."""
        changed = []
        for name in self.names:
            connected = self.report(name).connected
            before = self._connected.get(name, True)
            self._connected[name] = connected
            if connected != before:
                changed.append(name)
        return changed

    async def watch(self, on_change: Callable[[str], None]) -> None:
        """Call ``on_change(name)`` for each change of a camera's presence, until cancelled:
        the hub sends that camera's heartbeat at once, so clients hear within seconds."""
        while True:
            await self.clock.sleep(self.check_interval)
            for name in self.check():
                on_change(name)


__all__ = [
    "CAMERA_OFFLINE_AFTER",
    "CHECK_INTERVAL",
    "CameraHealth",
    "CameraReport",
    "RunningCamera",
]
