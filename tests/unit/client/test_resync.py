"""When the receive loop asks for a re-add by itself: evidence, confirmation, rate limit,
back-off and its persistence (``client/resync.py``), on a ``FakeClock``."""

from __future__ import annotations

import json

import pytest

from privastead.client.resync import ResyncPolicy
from privastead.clock import FakeClock
from privastead.errors import DecodeError

KEY = "door/events"


def lost(policy: ResyncPolicy, clock: FakeClock, key: str = KEY, kind: str = "blocked") -> None:
    """Evidence that holds: observed now and again ``after`` seconds later."""
    policy.observe(key, kind, "its mailbox waits on a later epoch")
    clock.advance(policy.after)
    policy.observe(key, kind, "its mailbox waits on a later epoch")


def test_one_observation_or_a_short_episode_is_not_enough(clock: FakeClock) -> None:
    policy = ResyncPolicy(clock, after=60, interval=600)
    policy.observe(KEY, "lagging", "the hub is at epoch 9, this device at 7")
    assert policy.due([KEY]) == []
    clock.advance(120)
    assert policy.due([KEY]) == []  # long ago, but seen once: one heartbeat proves nothing
    policy.clear(KEY)
    policy.observe(KEY, "blocked", "x")
    clock.advance(30)
    policy.observe(KEY, "blocked", "x")
    assert policy.due([KEY]) == []  # twice, but within 30 s: a commit may still be on its way
    clock.advance(30)
    (due,) = policy.due([KEY])
    assert due.key == KEY and due.attempt == 1 and due.reason == "x"
    assert due.next_allowed == clock.time() + 600


def test_evidence_that_goes_away_resets_the_episode(clock: FakeClock) -> None:
    policy = ResyncPolicy(clock, after=60)
    policy.observe(KEY, "blocked", "x")
    clock.advance(50)
    policy.clear(KEY, "blocked")  # the commit arrived: the mailbox moved on
    policy.observe(KEY, "blocked", "x")
    clock.advance(50)
    policy.observe(KEY, "blocked", "x")
    assert policy.due([KEY]) == []  # 50 s since the new episode began
    policy.clear(KEY, "lagging")  # another kind going away leaves this one
    clock.advance(10)
    assert [d.key for d in policy.due([KEY])] == [KEY]


def test_at_most_one_request_per_interval_with_back_off(clock: FakeClock) -> None:
    policy = ResyncPolicy(clock, after=60, interval=600, max_interval=2000)
    lost(policy, clock)
    assert len(policy.due([KEY])) == 1
    for _ in range(59):  # every round for the next ten minutes finds the group still lost
        clock.advance(10)
        policy.observe(KEY, "blocked", "x")
        assert policy.due([KEY]) == []
    clock.advance(10)  # 600 s after the first request
    (second,) = policy.due([KEY])
    assert second.attempt == 2 and second.next_allowed == clock.time() + 1200
    clock.advance(1199)
    assert policy.due([KEY]) == []
    clock.advance(1)
    (third,) = policy.due([KEY])
    assert third.next_allowed == clock.time() + 2000  # capped at max_interval
    clock.advance(2000)
    assert policy.due([KEY])[0].attempt == 4


def test_groups_are_limited_separately(clock: FakeClock) -> None:
    policy = ResyncPolicy(clock, after=0, confirmations=1)
    policy.observe("door/events", "undecryptable", "x")
    assert [d.key for d in policy.due(["door/events", "door/live"])] == ["door/events"]
    policy.observe("door/live", "lagging", "y")
    assert [d.key for d in policy.due(["door/events", "door/live"])] == ["door/live"]
    policy.observe("garden/events", "blocked", "z")
    assert policy.due(["door/events"]) == []  # only the groups asked about


def test_the_rate_limit_survives_a_restart(clock: FakeClock) -> None:
    policy = ResyncPolicy(clock, after=60, interval=600)
    lost(policy, clock)
    assert len(policy.due([KEY])) == 1
    saved = json.loads(json.dumps(policy.to_dict()))  # as sync/resync.json holds it

    clock.advance(5)  # listen restarts: its evidence is gathered again from scratch
    again = ResyncPolicy(clock, after=60, interval=600)
    again.restore(saved)
    lost(again, clock)
    assert again.due([KEY]) == []
    clock.advance(600 - 65)
    assert again.due([KEY])[0].attempt == 2  # the back-off went on where it was

    with pytest.raises(DecodeError):
        again.restore({KEY: {"last_sent": "soon"}})


def test_a_request_that_could_not_be_sent_does_not_count(clock: FakeClock) -> None:
    policy = ResyncPolicy(clock, after=0, confirmations=1)
    policy.observe(KEY, "blocked", "x")
    before = policy.record(KEY)
    assert before is None and len(policy.due([KEY])) == 1
    policy.failed(KEY, before)  # relay down: try again next round
    assert policy.record(KEY) is None
    (due,) = policy.due([KEY])
    assert due.attempt == 1
    sent = policy.record(KEY)
    clock.advance(600)
    assert policy.due([KEY])[0].attempt == 2
    policy.failed(KEY, sent)
    assert policy.record(KEY) == sent


def test_a_readd_restarts_the_back_off_but_not_the_interval(clock: FakeClock) -> None:
    policy = ResyncPolicy(clock, after=0, interval=600, confirmations=1)
    for _ in range(3):
        policy.observe(KEY, "blocked", "x")
        assert len(policy.due([KEY])) == 1
        clock.advance(3000)
    policy.observe(KEY, "blocked", "x")
    policy.readded(KEY)
    assert policy.evidence(KEY) == ()  # the old leaf's evidence is gone with it
    policy.observe(KEY, "blocked", "x")
    assert policy.due([KEY])[0].attempt == 2  # 3000 s after the last request: 600 suffice
    clock.advance(599)
    policy.observe(KEY, "blocked", "x")
    assert policy.due([KEY]) == []


def test_a_clock_set_back_does_not_unlock_requests(clock: FakeClock) -> None:
    policy = ResyncPolicy(clock, after=0, interval=600, confirmations=1)
    policy.observe(KEY, "blocked", "x")
    assert len(policy.due([KEY])) == 1
    # Restarted on a machine whose wall clock is now an hour behind the saved request.
    earlier = FakeClock(start=clock.time() - 3600)
    again = ResyncPolicy(earlier, after=0, interval=600, confirmations=1)
    again.restore(policy.to_dict())
    again.observe(KEY, "blocked", "x")
    assert again.due([KEY]) == []
    earlier.advance(599)
    assert again.due([KEY]) == []
    earlier.advance(1)
    assert len(again.due([KEY])) == 1


def test_bad_settings_and_kinds_are_refused(clock: FakeClock) -> None:
    with pytest.raises(ValueError):
        ResyncPolicy(clock, interval=0)
    with pytest.raises(ValueError):
        ResyncPolicy(clock, interval=600, max_interval=60)
    with pytest.raises(ValueError):
        ResyncPolicy(clock).observe(KEY, "rumour", "x")
