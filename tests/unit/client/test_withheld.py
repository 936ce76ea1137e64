"""Heartbeat claims against what arrived (client/withheld.py): a relay that drops only the
application messages of one group, or only the newest message, leaves no gap in the sequence
numbers; the hub's claim of what it sent reveals it, and a resend that never comes turns into
"withheld" after the grace period. Time comes from a fake clock."""

from __future__ import annotations

import pytest

from privastead.client.withheld import Announcements, missing_through
from privastead.clock import FakeClock
from privastead.errors import DecodeError
from privastead.protocol.seq import SeqTracker


def _tracker(*seqs: int, start: int = 0) -> SeqTracker:
    t = SeqTracker(start)
    for s in seqs:
        t.observe(s)
    return t


def test_missing_through_covers_gaps_and_the_silent_tail() -> None:
    t = _tracker(0, 1, 4)
    assert missing_through(t, 6) == ((2, 3), (5, 6))
    assert missing_through(t, 3) == ((2, 3),)
    assert missing_through(t, 1) == ()
    assert missing_through(_tracker(start=10), 9) == ()  # before this device joined


def test_a_silent_drop_is_asked_for_then_called_withheld_after_the_grace(
    clock: FakeClock,
) -> None:
    ann = Announcements(clock, grace=60, resend_every=15)
    events = _tracker(0, 1, 2)  # the relay never delivered 3 and 4, and nothing later
    ann.announce("front/events", 4, round_no=1)
    assert ann.check("front/events", events, round_no=1) == ()  # same round: maybe in flight
    assert ann.check("front/events", events, round_no=2) == ((3, 4),)
    clock.advance(5)
    assert ann.check("front/events", events, round_no=3) == ()  # asked 5 s ago
    assert ann.withheld({"front/events": events}) == {}
    clock.advance(56)
    assert ann.check("front/events", events, round_no=4) == ((3, 4),)
    withheld = ann.withheld({"front/events": events})
    assert withheld["front"].count == 2 and withheld["front"].since == clock.time() - 61
    # The resend finally gets through: nothing is withheld any more.
    events.observe(3)
    events.observe(4)
    assert ann.check("front/events", events, round_no=5) == ()
    assert ann.withheld({"front/events": events}) == {}


def test_an_older_replayed_heartbeat_cannot_lower_the_claim(clock: FakeClock) -> None:
    ann = Announcements(clock, grace=0)
    t = _tracker(0)
    ann.announce("front/control", 5, round_no=1)
    ann.announce("front/control", 0, round_no=2)
    assert ann.check("front/control", t, round_no=3) == ((1, 5),)


def test_what_the_hub_says_is_gone_is_lost_not_withheld(clock: FakeClock) -> None:
    ann = Announcements(clock, grace=0)
    t = _tracker(0, 3)
    ann.announce("front/events", 5, round_no=0)
    assert ann.check("front/events", t, round_no=1) == ((1, 2), (4, 5))
    assert ann.gone("front/events", ((1, 2), (5, 5)), t) == 3
    assert ann.lost == {"front/events": 3}
    assert missing_through(t, 5) == ((4, 4),)
    clock.advance(1)
    assert ann.withheld({"front/events": t})["front"].count == 1


def test_claims_survive_a_restart_and_are_checked_at_once(clock: FakeClock) -> None:
    ann = Announcements(clock, grace=60)
    t = _tracker(0)
    ann.announce("front/events", 2, round_no=4)
    ann.check("front/events", t, round_no=5)
    saved = ann.to_dict()
    clock.advance(100)
    again = Announcements(clock, grace=60)
    again.restore(saved)
    assert again.withheld({"front/events": t})["front"].count == 2
    with pytest.raises(DecodeError):
        again.restore({"claims": {"x": {"high": "y"}}, "lost": {}})


def test_a_replaced_leaf_forgets_the_old_claims(clock: FakeClock) -> None:
    ann = Announcements(clock, grace=0)
    ann.announce("front/events", 9, round_no=0)
    ann.forget_group("front/events")
    assert ann.check("front/events", _tracker(start=10), round_no=1) == ()
