"""Each camera's health, read from the running cameras: the one source for every report.

The heartbeat (``delivery.heartbeats``: encrypted, to clients), the metrics endpoint
(``admin.metrics``: Prometheus, local) and the status lines all read ``CameraHealth``, so they
can never disagree about a camera. A camera that is configured but not running (never started,
or between a crash and its restart) reports ``connected = False``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from privastead.clock import Clock
from privastead.hub.capture.camera import Camera


@dataclass(frozen=True)
class CameraReport:
    camera: str
    connected: bool
    state: str  # "connecting", "connected", "reconnecting", ... (media.ingest)
    last_frame_at: float | None  # Unix time of the newest packet from the camera
    reconnects: int
    decode_errors: int  # analysis and recording errors since the camera started
    fps: float
    bitrate: float  # bits per second
    events: int
    clips: int
    dropped: int  # detection packets dropped because the analysis fell behind

    def facts(self) -> dict[str, Any]:
        """The flat facts a heartbeat carries for this camera."""
        return asdict(self) | {"fps": round(self.fps, 2), "bitrate": round(self.bitrate)}


class CameraHealth:
    def __init__(self, names: list[str], cameras: Mapping[str, Camera], clock: Clock) -> None:
        """``names``: every configured camera; ``cameras``: the running ones (the runner's)."""
        self.names = names
        self.cameras = cameras
        self.clock = clock

    def report(self, name: str) -> CameraReport:
        camera = self.cameras.get(name)
        if camera is None:
            return CameraReport(name, False, "not running", None, 0, 0, 0.0, 0.0, 0, 0, 0)
        h = camera.health()
        s = camera.stats
        age = h.last_packet_age
        return CameraReport(
            camera=name,
            connected=h.state == "connected",
            state=h.state,
            last_frame_at=None if age is None else self.clock.time() - age,
            reconnects=h.reconnects,
            decode_errors=s.errors,
            fps=h.fps,
            bitrate=h.bitrate,
            events=s.events,
            clips=s.clips,
            dropped=s.dropped,
        )

    def reports(self) -> list[CameraReport]:
        return [self.report(name) for name in self.names]

    def facts(self, name: str) -> dict[str, Any]:
        """For ``Heartbeats(health=...)``."""
        return self.report(name).facts()


__all__ = ["CameraHealth", "CameraReport"]
