"""``CameraHealth.check`` and ``watch``: a camera going away or coming back is news once."""

from __future__ import annotations

from dataclasses import dataclass, field

from privastead.clock import FakeClock
from privastead.hub.capture.health import CameraHealth
from privastead.media.ingest import Health


@dataclass
class _Stats:
    errors: int = 0
    events: int = 0
    clips: int = 0
    dropped: int = 0


@dataclass
class FakeCamera:
    """A running camera's reader as the board sees it: packet age measured on ``clock``."""

    clock: FakeClock
    last_packet: float | None = None
    state: str = "connecting"
    reconnects: int = 0
    stats: _Stats = field(default_factory=_Stats)

    def frame(self) -> None:
        self.last_packet = self.clock.monotonic()
        self.state = "connected"

    def health(self) -> Health:
        age = None if self.last_packet is None else self.clock.monotonic() - self.last_packet
        return Health(self.state, 10.0, 1e6, age, self.reconnects, "")  # type: ignore[arg-type]


def test_a_camera_that_stops_sending_frames_is_offline_since_its_last_frame(
    clock: FakeClock,
) -> None:
    cam = FakeCamera(clock)
    board = CameraHealth(["door"], {"door": cam}, clock=clock, offline_after=10)
    cam.frame()
    last = clock.time()
    assert board.facts("door")["connected"] is True
    assert board.check() == []
    clock.advance(9)  # a frozen camera: the connection stays "connected", no frame comes
    assert board.check() == []
    clock.advance(2)
    facts = board.facts("door")
    assert facts["connected"] is False and facts["offline_since"] == round(last, 3)
    assert facts["last_frame"] == round(last, 3) and facts["state"] == "connected"
    assert board.check() == ["door"]
    assert board.check() == []  # once per outage
    cam.frame()
    assert board.check() == ["door"]  # and once when it is back
    assert board.facts("door")["offline_since"] == 0.0


def test_a_short_reconnect_is_not_an_outage(clock: FakeClock) -> None:
    cam = FakeCamera(clock)
    board = CameraHealth(["door"], {"door": cam}, clock=clock, offline_after=10)
    cam.frame()
    for _ in range(5):
        clock.advance(4)
        cam.state, cam.reconnects = "reconnecting", cam.reconnects + 1
        assert board.check() == []
        cam.frame()
    assert board.facts("door")["reconnects"] == 5


def test_a_camera_that_never_connects_is_reported_after_its_grace(clock: FakeClock) -> None:
    started = clock.time()
    board = CameraHealth(["door", "yard"], {}, clock=clock, offline_after=10)
    assert board.facts("door")["connected"] is True  # still within its first chance
    assert board.check() == []
    clock.advance(11)
    assert board.check() == ["door", "yard"]
    facts = board.facts("yard")
    assert facts["connected"] is False and facts["offline_since"] == round(started, 3)
    assert facts["last_frame"] == 0.0 and facts["state"] == "not running"


def test_the_last_frame_survives_a_restarted_camera_object(clock: FakeClock) -> None:
    cameras: dict[str, FakeCamera] = {"door": FakeCamera(clock)}
    board = CameraHealth(["door"], cameras, clock=clock, offline_after=10)
    cameras["door"].frame()
    last = clock.time()
    board.facts("door")
    cameras["door"] = FakeCamera(clock)  # the runner restarted the camera: no frame yet
    clock.advance(12)
    facts = board.facts("door")
    assert facts["connected"] is False and facts["offline_since"] == round(last, 3)


def test_decode_errors_and_fps_are_reported(clock: FakeClock) -> None:
    cam = FakeCamera(clock)
    cam.stats.errors = 3
    board = CameraHealth(["door"], {"door": cam}, clock=clock)
    cam.frame()
    facts = board.facts("door")
    assert facts["decode_errors"] == 3 and facts["fps"] == 10.0
