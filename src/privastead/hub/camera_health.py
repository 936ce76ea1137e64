"""Per-camera health for the heartbeats: is the camera there, since when not, how well.

``CameraHealthBoard.facts(name)`` is what a heartbeat carries (inside the ciphertext) for one
camera, flat so the protocol's scalar map holds it:

- ``connected`` (bool): a frame arrived within ``offline_after`` seconds (or the hub started
  less than that ago: a camera gets that long to send its first frame);
- ``offline_since`` (hub clock, Unix seconds; 0 while connected): the last frame's time, or
  when the hub started if the camera never sent one;
- ``last_frame`` (hub clock; 0 before the first), ``state`` (the reader's: connecting,
  connected, stalled, reconnecting, unauthorized), ``reconnects``, ``decode_errors`` (packets
  the analysis could not decode or process, and clip write failures), ``fps`` (of the last
  few seconds).

"Connected" is judged by frames, not by the connection: a camera that freezes and keeps its
RTSP session open counts as gone exactly like one that was unplugged. A short reconnect
(under ``offline_after``) is not an outage, so clients are not alerted for every hiccup.

``watch`` checks every ``check_interval`` and calls ``on_change(name)`` when a camera goes
away or comes back; the hub then sends that camera's heartbeat at once instead of at the next
interval, so clients learn it within seconds. The board reads the running cameras through the
mapping it is given (the runner replaces a camera object when it restarts one), and keeps the
last frame time per name across such restarts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from privastead.clock import Clock
from privastead.media.ingest import Health

CAMERA_OFFLINE_AFTER = 10.0  # seconds without a frame before a camera counts as gone
CHECK_INTERVAL = 1.0


class _Stats(Protocol):
    errors: int


class RunningCamera(Protocol):
    """What the board reads of a running camera (``hub.camera.Camera``)."""

    @property
    def stats(self) -> _Stats: ...

    def health(self) -> Health: ...


class CameraHealthBoard:
    def __init__(
        self,
        names: Sequence[str],
        cameras: Mapping[str, RunningCamera],
        *,
        clock: Clock,
        offline_after: float = CAMERA_OFFLINE_AFTER,
        check_interval: float = CHECK_INTERVAL,
    ) -> None:
        self.names = list(names)
        self.cameras = cameras
        self.clock = clock
        self.offline_after = offline_after
        self.check_interval = check_interval
        self._started = clock.time()
        self._last_frame: dict[str, float] = {}  # name -> hub time of its newest frame
        self._connected: dict[str, bool] = {}  # as of the last ``check``

    def facts(self, name: str) -> dict[str, Any]:
        """The heartbeat's health facts for camera ``name``."""
        now = self.clock.time()
        camera = self.cameras.get(name)
        health = camera.health() if camera is not None else None
        if health is not None and health.last_packet_age is not None:
            self._last_frame[name] = now - health.last_packet_age
        last = self._last_frame.get(name)
        # Before its first frame a camera gets ``offline_after`` from the hub's start to connect.
        connected = now - (last if last is not None else self._started) <= self.offline_after
        since = 0.0 if connected else (last if last is not None else self._started)
        return {
            "connected": connected,
            "offline_since": round(since, 3),
            "last_frame": round(last, 3) if last is not None else 0.0,
            "state": health.state if health is not None else "connecting",
            "reconnects": health.reconnects if health is not None else 0,
            "decode_errors": camera.stats.errors if camera is not None else 0,
            "fps": round(health.fps, 2) if health is not None else 0.0,
        }

    def check(self) -> list[str]:
        """The cameras that went away or came back since the last call (a camera is expected
        to be there: only an outage, and the end of one, is news)."""
        changed = []
        for name in self.names:
            connected = bool(self.facts(name)["connected"])
            before = self._connected.get(name, True)  # a camera is expected to be there
            self._connected[name] = connected
            if connected != before:
                changed.append(name)
        return changed

    async def watch(self, on_change: Callable[[str], None]) -> None:
        """Call ``on_change(name)`` for each change of a camera's presence, until cancelled."""
        while True:
            await self.clock.sleep(self.check_interval)
            for name in self.check():
                on_change(name)


__all__ = ["CAMERA_OFFLINE_AFTER", "CameraHealthBoard", "RunningCamera"]
