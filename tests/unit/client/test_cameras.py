"""Camera presence from the hub's heartbeats: ``CameraBoard`` and the ``camera_offline``
health state, on an injected clock."""

from __future__ import annotations

from privastead.client.cameras import CameraBoard
from privastead.client.health import HealthMonitor, HubHealth
from privastead.clock import FakeClock
from privastead.protocol.messages import Heartbeat


def _beat(hub_time: float, camera: str, connected: bool, since: float = 0.0) -> Heartbeat:
    facts = {"connected": connected, "offline_since": since, "fps": 10.0, "reconnects": 2}
    return Heartbeat(hub_time, 0, "0.1.0", {camera: facts}, {}, {})


def test_an_offline_camera_is_reported_once_and_again_when_back(clock: FakeClock) -> None:
    board = CameraBoard()
    now = clock.time()
    board.heartbeat(_beat(now, "door", True))
    assert board.changes() == [] and board.offline() == []
    board.heartbeat(_beat(now + 5, "door", False, since=now + 1))
    (change,) = board.changes()
    assert change.name == "door" and not change.connected and change.offline_since == now + 1
    assert board.changes() == []
    board.heartbeat(_beat(now + 9, "door", False, since=now + 1))  # the next beat, same news
    assert board.changes() == []
    board.heartbeat(_beat(now + 20, "door", True))
    assert [c.connected for c in board.changes()] == [True]


def test_a_replayed_older_heartbeat_cannot_bring_a_camera_back(clock: FakeClock) -> None:
    board = CameraBoard()
    now = clock.time()
    old = _beat(now, "door", True)
    board.heartbeat(_beat(now + 5, "door", False, since=now + 1))
    board.heartbeat(old)  # a relay replays what it kept
    assert [c.name for c in board.offline()] == ["door"]


def test_a_hub_without_camera_facts_claims_nothing() -> None:
    board = CameraBoard()
    board.heartbeat(Heartbeat(1.0, 0, "0.0.9", {"door": {"fps": 25.0}}, {}, {}))
    assert board.offline() == [] and board.get("door") is None


def test_camera_offline_is_a_health_state_below_the_hub_itself(clock: FakeClock) -> None:
    monitor = HealthMonitor(clock, offline_after=600, hub_name="home")
    now = clock.time()
    monitor.heartbeat(_beat(now, "door", True), {}, caught_up=True)
    assert monitor.check() is not None and monitor.report().state is HubHealth.OK
    monitor.heartbeat(_beat(now + 1, "door", False, since=now - 30), {}, caught_up=True)
    report = monitor.check()
    assert report is not None and report.state is HubHealth.CAMERA_OFFLINE
    assert report.groups == ("door",) and "camera door offline since" in report.detail
    assert monitor.camera_offline_since("door") == now - 30
    monitor.heartbeat(_beat(now + 2, "yard", False, since=now - 5), {}, caught_up=True)
    again = monitor.check()  # another camera: the same state, told again
    assert again is not None and again.groups == ("door", "yard")
    clock.advance(700)  # then the hub falls silent: that is the news, not its cameras
    assert monitor.report().state is HubHealth.HUB_OFFLINE


def test_camera_presence_survives_a_restart(clock: FakeClock) -> None:
    monitor = HealthMonitor(clock, offline_after=600)
    now = clock.time()
    monitor.heartbeat(_beat(now, "door", False, since=now - 30), {}, caught_up=True)
    assert [c.name for c in monitor.cameras.changes()] == ["door"]
    again = HealthMonitor(clock, offline_after=600)
    again.restore(monitor.to_dict())
    assert again.report().state is HubHealth.CAMERA_OFFLINE
    assert again.cameras.changes() == []  # already told before the restart


def _disk_beat(hub_time: float, camera: str, disk: str) -> Heartbeat:
    facts = {"connected": True, "offline_since": 0.0, "recording": "paused", "disk": disk}
    facts["disk_detail"] = f"0.00 GB free of 8.00 GB on /hub ({disk})"
    return Heartbeat(hub_time, 0, "0.1.0", {camera: facts}, {}, {})


def test_a_full_hub_disk_is_a_health_state_and_low_is_not(clock: FakeClock) -> None:
    monitor = HealthMonitor(clock, offline_after=600, hub_name="home")
    now = clock.time()
    monitor.heartbeat(_disk_beat(now, "door", "low"), {}, caught_up=True)
    assert monitor.cameras.disk() == ("low", "0.00 GB free of 8.00 GB on /hub (low)")
    assert monitor.report().state is HubHealth.OK  # retention is at work: no alarm
    monitor.heartbeat(_disk_beat(now + 1, "door", "full"), {}, caught_up=True)
    report = monitor.report()
    assert report.state is HubHealth.HUB_DISK and "(full)" in report.detail
    assert "keeps event clips and its keys" in report.detail
    monitor.heartbeat(_beat(now + 2, "yard", False, since=now - 5), {}, caught_up=True)
    # yard's newer heartbeat says nothing of the disk (an older hub): the newest saying counts
    assert monitor.cameras.disk() is None and monitor.report().state is HubHealth.CAMERA_OFFLINE
    monitor.heartbeat(_disk_beat(now + 3, "door", "ok"), {}, caught_up=True)
    assert monitor.cameras.disk() == ("ok", "0.00 GB free of 8.00 GB on /hub (ok)")
    clock.advance(700)  # a silent hub is the news, whatever its disk said
    assert monitor.report().state is HubHealth.HUB_OFFLINE
