from __future__ import annotations

import pytest

from privastead.client.health import HealthMonitor, HubHealth, Withheld
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


# -- freshness by the hub's clock, clock probes, removal, withheld --------------------------


def beat_at(hub_time: float, seq: int = 0, answers: tuple[str, ...] = ()) -> Heartbeat:
    return Heartbeat(hub_time, seq, "0.1.0", {}, {}, {}, answers=answers)


NONCE = "ab" * 16


def test_a_backlog_of_old_heartbeats_delivered_now_does_not_make_the_hub_alive(
    clock: FakeClock,
) -> None:
    """Freshness is the newest heartbeat's hub time, not its arrival: a relay that releases
    an hour-old backlog, one heartbeat at a time, shows a hub that is down."""
    monitor = HealthMonitor(clock, offline_after=150)
    start = clock.time()
    clock.advance(3600)
    for i in range(10):
        monitor.heartbeat(beat_at(start + 60 * i, i), {}, caught_up=True)
        clock.advance(30)
        report = monitor.report()
        assert report.state is HubHealth.HUB_OFFLINE, report
    assert "by the hub's clock" in monitor.report().detail


def test_a_lagging_hub_clock_is_told_apart_from_silence_by_a_quick_probe(
    clock: FakeClock,
) -> None:
    monitor = HealthMonitor(clock, offline_after=150, skew_allowance=30)
    lag = 3600.0
    monitor.heartbeat(beat_at(clock.time() - lag), {}, caught_up=True)
    assert monitor.report().state is HubHealth.HUB_OFFLINE
    assert monitor.wants_probe()
    monitor.probe_sent(NONCE)
    assert not monitor.wants_probe()  # one at a time
    clock.advance(2)  # a quick round trip
    monitor.heartbeat(beat_at(clock.time() - 1 - lag, 1, (NONCE,)), {}, caught_up=True)
    report = monitor.report()
    assert report.state is HubHealth.HUB_CLOCK, report
    assert "60 min behind" in report.detail
    # Heartbeats on the lagging clock keep arriving: still only a clock problem...
    for i in range(2, 6):
        clock.advance(60)
        monitor.heartbeat(beat_at(clock.time() - lag, i), {}, caught_up=True)
        assert monitor.report().state is HubHealth.HUB_CLOCK
    # ...until the hub goes dark: then silence shows on the corrected clock.
    clock.advance(151)
    assert monitor.report().state is HubHealth.HUB_OFFLINE


def test_a_probe_answer_that_comes_late_or_for_another_nonce_measures_nothing(
    clock: FakeClock,
) -> None:
    """A relay that delays everything by an hour also delays the probe: its answer (or none)
    cannot vouch for the heartbeats, so the hub stays offline."""
    monitor = HealthMonitor(clock, offline_after=150)
    monitor.heartbeat(beat_at(clock.time() - 3600), {}, caught_up=True)
    monitor.probe_sent(NONCE)
    clock.advance(3600 * 2)  # answered two hours later
    monitor.heartbeat(beat_at(clock.time() - 3600, 1, (NONCE,)), {}, caught_up=True)
    assert monitor.report().state is HubHealth.HUB_OFFLINE
    monitor.probe_sent("cd" * 16)
    clock.advance(1)
    monitor.heartbeat(beat_at(clock.time() - 3600, 2, (NONCE,)), {}, caught_up=True)  # stale
    assert monitor.report().state is HubHealth.HUB_OFFLINE


def test_a_hub_clock_ahead_is_visible_at_once(clock: FakeClock) -> None:
    monitor = HealthMonitor(clock, skew_allowance=30)
    monitor.heartbeat(beat_at(clock.time() + 20), {}, caught_up=True)
    assert monitor.report().state is HubHealth.OK
    monitor.heartbeat(beat_at(clock.time() + 300, 1), {}, caught_up=True)
    report = monitor.report()
    assert report.state is HubHealth.HUB_CLOCK and "ahead of" in report.detail


def test_removal_comes_first_and_a_partly_removed_device_needs_a_readd(clock: FakeClock) -> None:
    monitor = HealthMonitor(clock, hub_name="door")
    monitor.know_groups({"door/events", "door/control"})
    monitor.removed_from("door/events")
    report = monitor.report()
    assert report.state is HubHealth.DESYNC and report.groups == ("door/events",)
    monitor.removed_from("door/control")
    report = monitor.report()
    assert report.state is HubHealth.REMOVED and "removed from door" in report.detail
    other = HealthMonitor(clock, hub_name="door")
    other.relay_failed()
    clock.advance(10_000)
    other.device_removed("the relay says this device was removed")
    assert other.report().state is HubHealth.REMOVED
    restored = HealthMonitor(clock, hub_name="door")
    restored.restore(other.to_dict())
    assert restored.removed


def test_withheld_messages_outrank_silence_and_name_camera_count_and_time(
    clock: FakeClock,
) -> None:
    monitor = HealthMonitor(clock, offline_after=150)
    monitor.heartbeat(beat_at(clock.time()), {}, caught_up=True)
    since = clock.time() - 61
    monitor.set_withheld({"front": Withheld(3, since)})
    report = monitor.report()
    assert report.state is HubHealth.WITHHELD and report.groups == ("front",)
    assert report.detail.startswith("the relay is withholding 3 message(s) of front since ")
    monitor.set_withheld({})
    assert monitor.report().state is HubHealth.OK


def test_clock_offset_and_start_survive_a_restart(clock: FakeClock) -> None:
    monitor = HealthMonitor(clock)
    monitor.heartbeat(beat_at(clock.time() - 500), {}, caught_up=True)
    monitor.probe_sent(NONCE)
    monitor.heartbeat(beat_at(clock.time() - 500, 1, (NONCE,)), {}, caught_up=True)
    assert monitor.report().state is HubHealth.HUB_CLOCK
    again = HealthMonitor(clock)
    again.restore(monitor.to_dict())
    assert again.report().state is HubHealth.HUB_CLOCK
