"""The event state machine, driven by made-up timestamps (no clock, no sleeping)."""

from __future__ import annotations

import itertools

from privastead.media.detector import Box, MotionResult
from privastead.media.events import BACKDATE, EventEnded, EventStarted, EventTracker
from privastead.media.settings import EventSettings

BOX = (Box(0.1, 0.2, 0.3, 0.4),)


def motion(score: float = 0.1) -> MotionResult:
    return MotionResult(score, BOX, True, False)


QUIET = MotionResult(0.0, (), False, False)
GLOBAL = MotionResult(0.0, (), False, True)


def run(settings: EventSettings, timeline: list[tuple[float, MotionResult]]) -> list[object]:
    ids = (f"e{i}" for i in itertools.count())
    tracker = EventTracker(settings, new_id=lambda: next(ids))
    out: list[object] = []
    for at, result in timeline:
        out += tracker.update(result, at)
    return out


def frames(start: float, end: float, result: MotionResult, fps: float = 10.0):
    n = round((end - start) * fps)
    return [(start + i / fps, result) for i in range(n)]


def test_start_needs_persistence_and_is_backdated_to_onset() -> None:
    s = EventSettings(persistence=0.5, post_roll=2.0)
    assert run(s, frames(0, 0.4, motion()) + frames(0.4, 5, QUIET)) == []
    events = run(s, frames(0, 1, motion()))
    assert len(events) == 1
    started = events[0]
    assert isinstance(started, EventStarted) and started.at == 0.0 and started.event_id == "e0"


def test_start_goes_back_to_when_the_object_was_first_seen_as_far_as_allowed() -> None:
    # The detector confirms an object some frames after it first saw it (``since``); the event
    # starts then. An object first seen longer ago than BACKDATE (a tall person walking
    # slowly needs a while to travel half their height) starts BACKDATE before its motion,
    # not at it.
    s = EventSettings(persistence=0.3, post_roll=2.0)
    for seen, start in ((9.0, 9.0), (6.0, 10.0 - BACKDATE)):
        seen_at = MotionResult(0.1, BOX, True, False, since=seen)
        started = run(s, frames(10, 11, seen_at))[0]
        assert isinstance(started, EventStarted) and started.at == start, (seen, started)


def test_extends_while_motion_continues_and_ends_after_post_roll() -> None:
    s = EventSettings(persistence=0.2, post_roll=2.0)
    timeline = frames(0, 3, motion()) + frames(3, 4.5, QUIET) + frames(4.5, 6, motion(0.5))
    timeline += frames(6, 10, QUIET)
    events = run(s, timeline)
    assert [type(e) for e in events] == [EventStarted, EventEnded]
    ended = events[1]
    assert isinstance(ended, EventEnded)
    assert abs(ended.last_motion - 5.9) < 1e-9 and abs(ended.at - 7.9) < 1e-9
    assert ended.peak_score == 0.5 and ended.started_at == 0.0


def test_max_length_splits_into_back_to_back_events() -> None:
    s = EventSettings(persistence=0.0, post_roll=1.0, max_length=10.0)
    events = run(s, frames(0, 25, motion()) + frames(25, 30, QUIET))
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "EventStarted",
        "EventEnded",
        "EventStarted",
        "EventEnded",
        "EventStarted",
        "EventEnded",
    ]
    first_end, second_start = events[1], events[2]
    assert isinstance(first_end, EventEnded) and isinstance(second_start, EventStarted)
    assert first_end.at == second_start.at == 10.0
    assert first_end.event_id != second_start.event_id


def test_cooldown_delays_the_next_event() -> None:
    s = EventSettings(persistence=0.0, post_roll=1.0, cooldown=5.0)
    timeline = frames(0, 1, motion()) + frames(1, 2.5, QUIET) + frames(2.5, 12, motion())
    events = run(s, timeline)
    starts = [e.at for e in events if isinstance(e, EventStarted)]
    ends = [e.at for e in events if isinstance(e, EventEnded)]
    assert ends[0] == 1.9  # last motion 0.9 + post-roll 1.0
    assert starts == [0.0, 6.9]  # not before the end + cooldown


def test_global_changes_never_start_and_do_not_end_events() -> None:
    s = EventSettings(persistence=0.0, post_roll=1.0)
    assert run(s, frames(0, 5, GLOBAL)) == []
    events = run(s, frames(0, 1, motion()) + frames(1, 5, GLOBAL))
    assert [type(e) for e in events] == [EventStarted]


def test_short_gaps_do_not_reset_persistence() -> None:
    s = EventSettings(persistence=1.0, post_roll=2.0)
    flicker = [(i / 10, motion() if i % 3 else QUIET) for i in range(15)]
    events = run(s, flicker)
    assert len(events) == 1 and isinstance(events[0], EventStarted)


def test_close_ends_the_running_event() -> None:
    tracker = EventTracker(EventSettings(persistence=0.0, post_roll=3.0))
    tracker.update(motion(), 1.0)
    assert tracker.active
    (ended,) = tracker.close(2.0)
    assert isinstance(ended, EventEnded) and ended.at == 2.0 and not tracker.active
    assert tracker.close(3.0) == []
