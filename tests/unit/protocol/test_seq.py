from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from privastead.errors import DecodeError, DuplicateMessageError
from privastead.protocol.seq import MAX_TRACKED_RANGES, SeqStatus, SeqTracker


def test_after_a_gap_the_next_new_seq_is_in_order_again() -> None:
    t = SeqTracker()
    t.observe(0)
    assert t.observe(2).status is SeqStatus.GAP
    assert t.observe(3).status is SeqStatus.IN_ORDER
    assert t.missing() == ((1, 1),)


def test_in_order_messages() -> None:
    t = SeqTracker()
    for s in range(5):
        assert t.observe(s).status is SeqStatus.IN_ORDER
    assert t.next_seq == 5 and t.missing() == () and t.high_water == 4


def test_a_gap_names_the_missing_range_and_late_arrivals_fill_it() -> None:
    t = SeqTracker(10)
    result = t.observe(14)
    assert result.status is SeqStatus.GAP and result.missing == ((10, 13),)
    assert t.missing() == ((10, 13),)
    assert t.observe(12).status is SeqStatus.LATE
    assert t.missing() == ((10, 11), (13, 13))
    assert t.observe(10).status is SeqStatus.LATE
    assert t.observe(11).status is SeqStatus.LATE  # arrived after 12 and 14
    assert t.observe(13).status is SeqStatus.LATE
    assert t.missing() == () and t.next_seq == 15


def test_first_message_after_joining_is_checked_against_the_grant() -> None:
    t = SeqTracker(100)
    assert t.observe(103).missing == ((100, 102),)


@pytest.mark.parametrize("seq", [3, 0, 6])
def test_duplicates_and_replays_raise(seq: int) -> None:
    t = SeqTracker()
    for s in (0, 1, 2, 3, 6):
        t.observe(s)
    with pytest.raises(DuplicateMessageError):
        t.observe(seq)


def test_give_up_skips_what_the_hub_no_longer_has() -> None:
    t = SeqTracker()
    t.observe(0)
    t.observe(5)
    t.observe(9)
    assert t.give_up(6) == ((1, 4), (6, 6))
    assert t.missing() == ((7, 8),) and t.next_seq == 7
    with pytest.raises(DuplicateMessageError):
        t.observe(3)  # given up: a late copy is dropped like a duplicate
    assert t.give_up(100) == ((7, 8),)
    assert t.next_seq == 101


def test_state_round_trips_through_a_dict() -> None:
    t = SeqTracker(3)
    for s in (3, 7, 8, 12):
        t.observe(s)
    restored = SeqTracker.from_dict(t.to_dict())
    assert restored.to_dict() == t.to_dict() == {"next": 4, "received": [[7, 8], [12, 12]]}
    assert restored.missing() == ((4, 6), (9, 11))


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"next": -1, "received": []},
        {"next": 0, "received": [[3, 2]]},
        {"next": 0, "received": [[0, 2]]},  # touches next: could not have been stored
        {"next": 0, "received": [[5, 6], [7, 8]]},  # adjacent ranges would have merged
        {"next": 0, "received": [[5, 6], [2, 3]]},
        {"next": 0, "received": "x"},
        {"next": 0, "received": [], "more": 1},
    ],
)
def test_corrupt_state_raises_decode_error(data: dict[str, object]) -> None:
    with pytest.raises(DecodeError):
        SeqTracker.from_dict(data)


def test_state_stays_bounded_under_a_hostile_relay() -> None:
    t = SeqTracker()
    for s in range(0, 4 * MAX_TRACKED_RANGES, 2):
        t.observe(s)  # every other message dropped
    assert len(t.to_dict()["received"]) <= MAX_TRACKED_RANGES
    assert t.high_water == 4 * MAX_TRACKED_RANGES - 2


@given(st.lists(st.integers(0, 60), max_size=80), st.integers(0, 1000))
def test_tracker_agrees_with_a_set_model(seqs: list[int], seed: int) -> None:
    random.Random(seed).shuffle(seqs)
    t, seen = SeqTracker(), set()
    for s in seqs:
        if s in seen:
            with pytest.raises(DuplicateMessageError):
                t.observe(s)
            continue
        seen.add(s)
        t.observe(s)
        high = max(seen)
        missing = {m for a, b in t.missing() for m in range(a, b + 1)}
        assert missing == set(range(high + 1)) - seen
        assert SeqTracker.from_dict(t.to_dict()).missing() == t.missing()
