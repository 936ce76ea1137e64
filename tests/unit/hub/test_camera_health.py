"""Camera health as clients and the metrics endpoint see it (hub/capture/health.py), with a
fake clock: judged by frames, not by the connection; a grace period for the first frame; the
newest frame time kept across a camera object's restart. (The endpoint and a real camsim that
is killed: tests/integration/test_hub_metrics.py.)"""

from __future__ import annotations

from dataclasses import dataclass, field

from privastead.clock import FakeClock
from privastead.hub.capture.health import CAMERA_OFFLINE_AFTER, CameraHealth
from privastead.media.ingest import Health


@dataclass
class Stats:
    errors: int = 0
    events: int = 0
    clips: int = 0
    dropped: int = 0


@dataclass
class Reader:
    """The two things health reads of a camera: its reader's health and its counters."""

    state: str = "connected"
    age: float | None = 0.1
    stats: Stats = field(default_factory=Stats)

    def health(self) -> Health:
        return Health(self.state, 30.0, 4e6, self.age, 2, "")  # type: ignore[arg-type]


def test_a_frozen_camera_is_offline_though_its_connection_stays() -> None:
    clock = FakeClock()
    cam = Reader()
    health = CameraHealth(["door"], {"door": cam}, clock)
    seen = health.report("door")
    assert seen.connected and seen.offline_since == 0 and seen.fps == 30.0
    assert seen.last_frame == clock.time() - 0.1
    frozen_at = clock.time() - 0.1
    clock.advance(CAMERA_OFFLINE_AFTER + 1)
    cam.age = CAMERA_OFFLINE_AFTER + 1.1  # RTSP still "connected", no frame since
    seen = health.report("door")
    assert not seen.connected and seen.state == "connected"
    assert seen.offline_since == frozen_at
    assert health.facts("door")["connected"] is False


def test_a_camera_that_never_ran_gets_a_grace_period_then_is_offline_since_the_start() -> None:
    clock = FakeClock()
    started = clock.time()
    health = CameraHealth(["yard"], {}, clock)
    assert health.report("yard").connected  # just started: no alarm yet
    clock.advance(CAMERA_OFFLINE_AFTER + 0.5)
    seen = health.report("yard")
    assert not seen.connected and seen.offline_since == started and seen.last_frame == 0
    assert seen.state == "not running"


def test_the_newest_frame_survives_a_restart_of_the_camera_object() -> None:
    clock = FakeClock()
    cameras: dict[str, Reader] = {"door": Reader(age=0.0)}
    health = CameraHealth(["door"], cameras, clock)
    first = health.report("door").last_frame
    cameras["door"] = Reader(state="connecting", age=None)  # the runner restarted it
    clock.advance(3)
    seen = health.report("door")
    assert seen.connected and seen.last_frame == first
    clock.advance(CAMERA_OFFLINE_AFTER)
    assert health.report("door").offline_since == first
