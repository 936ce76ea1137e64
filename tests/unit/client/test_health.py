from __future__ import annotations

import pytest

from privastead.client.health import HealthMonitor, HubHealth
from privastead.clock import FakeClock
from privastead.errors import DecodeError
from privastead.protocol.messages import Heartbeat


def beat(clock: FakeClock, epochs: dict[str, int] | None = None, seq: int = 0) -> Heartbeat:
    return Heartbeat(clock.time(), seq, "0.1.0", {"front": {"fps": 25.0}}, epochs or {}, {})


def test_silence_on_a_working_relay_means_hub_offline(clock: FakeClock) -> None:
    monitor = HealthMonitor(clock, offline_after=600)
    assert monitor.check() is not None  # first report: OK
    assert monitor.report().state is HubHealth.OK
    clock.advance(599)
    monitor.relay_ok()
    assert monitor.check() is None
    clock.advance(1)
    report = monitor.check()
    assert report is not None and report.state is HubHealth.HUB_OFFLINE
    assert monitor.check() is None  # alert once per episode
    monitor.heartbeat(beat(clock), {}, caught_up=True)
    back = monitor.check()
    assert back is not None and back.state is HubHealth.OK and "0.1.0" in back.detail


def test_an_unreachable_relay_is_not_blamed_on_the_hub(clock: FakeClock) -> None:
    monitor = HealthMonitor(clock, offline_after=600, relay_grace=120)
    clock.advance(100)
    monitor.relay_ok()
    monitor.relay_failed()
    clock.advance(50)
    assert monitor.report().state is HubHealth.OK  # within grace since the last contact
    clock.advance(1000)
    assert monitor.report().state is HubHealth.RELAY_UNREACHABLE
    monitor.relay_ok()
    assert monitor.report().state is HubHealth.HUB_OFFLINE


def test_repeated_decrypt_failures_are_a_desync_not_an_outage(clock: FakeClock) -> None:
    monitor = HealthMonitor(clock, desync_after_failures=3)
    for _ in range(2):
        monitor.decrypt_failed("front/events")
    assert monitor.report().state is HubHealth.OK
    monitor.decrypt_failed("front/events")
    report = monitor.report()
    assert report.state is HubHealth.DESYNC and report.groups == ("front/events",)
    monitor.decrypted("front/events")
    assert monitor.report().state is HubHealth.OK


def test_a_later_hub_epoch_after_catching_up_is_a_stale_epoch(clock: FakeClock) -> None:
    monitor = HealthMonitor(clock)
    hub = {"front/events": 7, "front/control": 3}
    monitor.heartbeat(beat(clock, hub), {"front/events": 6, "front/control": 3}, caught_up=False)
    assert monitor.report().state is HubHealth.OK  # the commit may still be in the mailbox
    clock.advance(1)
    monitor.heartbeat(beat(clock, hub, 1), {"front/events": 6, "front/control": 3}, caught_up=True)
    report = monitor.report()
    assert report.state is HubHealth.STALE_EPOCH and report.groups == ("front/events",)
    clock.advance(1)
    monitor.heartbeat(beat(clock, hub, 2), {"front/events": 7, "front/control": 3}, caught_up=True)
    assert monitor.report().state is HubHealth.OK


def test_an_old_heartbeat_replayed_proves_nothing(clock: FakeClock) -> None:
    monitor = HealthMonitor(clock, offline_after=600)
    old = beat(clock)
    clock.advance(10)
    monitor.heartbeat(beat(clock), {}, caught_up=True)
    clock.advance(600)
    monitor.heartbeat(old, {}, caught_up=True)
    assert monitor.report().state is HubHealth.HUB_OFFLINE


def test_state_survives_a_restart(clock: FakeClock) -> None:
    monitor = HealthMonitor(clock, offline_after=600)
    monitor.heartbeat(beat(clock), {}, caught_up=True)
    saved = monitor.to_dict()
    clock.advance(3600)
    restarted = HealthMonitor(clock, offline_after=600)
    assert restarted.report().state is HubHealth.OK  # would be wrong without restore
    restarted.restore(saved)
    assert restarted.report().state is HubHealth.HUB_OFFLINE
    with pytest.raises(DecodeError):
        restarted.restore({"last_heartbeat": "x"})
