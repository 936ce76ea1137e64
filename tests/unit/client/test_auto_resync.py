"""``Syncer.auto_resync``: how the receive loop turns what it saw into re-add requests.

The syncer is built around a ``FakeClock`` with fake group identities (only ``epoch`` is
used here) and a recording ``ReAdder.request``; the relay and MLS paths are covered by
``tests/e2e/test_e2e_autoresync.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from privastead.client.device import DataDir, GroupEntry
from privastead.client.readd import ReAdder
from privastead.client.resync import ResyncPolicy
from privastead.client.sync import Syncer, _Group
from privastead.client.watch import HubWatch
from privastead.clock import FakeClock
from privastead.errors import RelayUnavailableError
from privastead.protocol.messages import Heartbeat


class FakeIdentity:
    def __init__(self, epoch: int) -> None:
        self.current = epoch

    def epoch(self, group_id: bytes) -> int:
        return self.current


def _syncer(tmp_path: Path, clock: FakeClock) -> tuple[Syncer, list[tuple[str, list[str]]]]:
    syncer: Any = Syncer.__new__(Syncer)
    syncer.data = DataDir(tmp_path)
    syncer.data.prepare()
    syncer.clock = clock
    syncer.on_status = None
    keys = [f"door/{name}" for name in ("events", "live", "control")]
    syncer.watch = HubWatch(syncer.data, clock, hub_name="door", groups=keys)
    syncer.health = syncer.watch.health
    syncer.readd = ReAdder(syncer, ResyncPolicy(clock, after=60, interval=600))
    syncer.relay_error = ""
    syncer.blocked = set()
    syncer._round = 0
    syncer.groups = [
        _Group(
            GroupEntry("door", name, "m" * 32, b"g", f"door-{name}.mls", 1),
            FakeIdentity(5),
            None,
            0,
        )  # type: ignore[arg-type]
        for name in ("events", "live", "control")
    ]
    sent: list[tuple[str, list[str]]] = []

    async def request_readd(camera: str, groups: list[str], reason: str = "") -> None:
        sent.append((camera, list(groups)))

    syncer.readd.request = request_readd
    return syncer, sent


def _beat(clock: FakeClock, epochs: dict[str, int]) -> Heartbeat:
    return Heartbeat(clock.time(), 0, "0.1.0", {}, epochs, {})


async def test_a_blocked_mailbox_leads_to_one_request(tmp_path: Path, clock: FakeClock) -> None:
    syncer, sent = _syncer(tmp_path, clock)
    for _ in range(20):  # a round every 10 s for 200 s, the events mailbox stuck each time
        syncer.blocked = {"door/events"}
        await syncer.auto_resync()
        clock.advance(10)
    assert sent == [("door", ["events"])]
    saved = syncer.data.sync_state_raw("resync")
    assert saved["door/events"]["attempts"] == 1


async def test_nothing_is_gathered_while_the_relay_fails(tmp_path: Path, clock: FakeClock) -> None:
    syncer, sent = _syncer(tmp_path, clock)
    syncer.relay_error = "cannot reach the relay"
    for _ in range(20):
        syncer.blocked = {"door/events"}  # what a half-finished round left behind
        assert await syncer.auto_resync() == []
        clock.advance(10)
    assert sent == [] and syncer.resync is not None
    assert syncer.resync.evidence("door/events") == ()


async def test_a_failed_request_is_retried_next_round(tmp_path: Path, clock: FakeClock) -> None:
    syncer, sent = _syncer(tmp_path, clock)
    syncer.blocked = {"door/events"}
    await syncer.auto_resync()
    clock.advance(60)
    original = syncer.readd.request

    async def failing(camera: str, groups: list[str], reason: str = "") -> None:
        # The round worked; the upload of the request did not.
        raise RelayUnavailableError("cannot reach the relay")

    syncer.readd.request = failing  # type: ignore[method-assign]
    assert await syncer.auto_resync() == []
    syncer.readd.request = original  # type: ignore[method-assign]
    clock.advance(5)
    assert await syncer.auto_resync() == ["door/events"]
    assert sent == [("door", ["events"])]


async def test_lag_counts_once_per_heartbeat_and_control_is_never_asked(
    tmp_path: Path, clock: FakeClock
) -> None:
    syncer, sent = _syncer(tmp_path, clock)
    syncer._on_heartbeat("door", _beat(clock, {"door/live": 7, "door/control": 9}))
    for _ in range(30):  # many rounds, one heartbeat: not confirmed
        await syncer.auto_resync()
        clock.advance(10)
    assert sent == []
    syncer._on_heartbeat("door", _beat(clock, {"door/live": 7, "door/control": 9}))
    await syncer.auto_resync()
    assert sent == [("door", ["live"])]  # control lags too, but a re-add cannot fix it


async def test_evidence_that_clears_in_time_sends_nothing(tmp_path: Path, clock: FakeClock) -> None:
    syncer, sent = _syncer(tmp_path, clock)
    syncer._on_heartbeat("door", _beat(clock, {"door/events": 6}))  # commit still uploading
    await syncer.auto_resync()
    clock.advance(30)
    syncer.groups[0].identity.current = 6  # type: ignore[attr-defined]  # its commit arrived
    await syncer.auto_resync()
    clock.advance(100)
    syncer._on_heartbeat("door", _beat(clock, {"door/events": 6}))
    await syncer.auto_resync()
    assert sent == []


@pytest.mark.parametrize("failures", [2, 3])
async def test_undecryptable_messages_need_the_health_monitors_desync(
    tmp_path: Path, clock: FakeClock, failures: int
) -> None:
    syncer, sent = _syncer(tmp_path, clock)
    for _ in range(failures):
        syncer.health.decrypt_failed("door/events")
    for _ in range(10):
        await syncer.auto_resync()
        clock.advance(10)
    assert sent == ([("door", ["events"])] if failures >= 3 else [])
