"""The event state machine: per-frame motion results in, event start/end out.

Driven only by frame timestamps (no clock, no sleeping), so a file, a live camera and a test
with made-up times behave the same:

- **start** once motion has lasted ``persistence`` seconds (gaps shorter than half the
  post-roll do not break the run); the event's start time is the onset of that run, or when
  the detector first saw the object (``MotionResult.since``, at most ``BACKDATE`` earlier:
  an object is confirmed some frames after it appears, and the recording's ring must still
  hold the start);
- **extend** while motion continues;
- **end** after ``post_roll`` seconds without motion (``at`` = last motion + post-roll, the
  clip's end; ``last_motion`` says when the scene went quiet);
- **split** at ``max_length``: an ``EventEnded`` immediately followed by an ``EventStarted``
  at the same time, so a long event becomes several clips without a gap;
- **cooldown**: no new event within ``cooldown`` seconds of the previous one's end.

Global changes (light switch, IR) never start an event; during an event they count as
neither motion nor quiet.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from privastead.media.detector import Box, MotionResult
from privastead.media.settings import EventSettings


@dataclass(frozen=True)
class EventStarted:
    event_id: str
    at: float  # onset of the motion that started the event (seconds, stream time)
    boxes: tuple[Box, ...]
    score: float


@dataclass(frozen=True)
class EventEnded:
    event_id: str
    at: float  # end of the clip: last motion + post-roll (or the split time)
    started_at: float
    peak_score: float
    boxes: tuple[Box, ...]  # boxes of the frame with the peak score
    last_motion: float = 0.0  # when motion was last seen


Event = EventStarted | EventEnded


#: Longest the detector's first sighting may move an event's start before its motion run.
BACKDATE = 2.0


def _new_id() -> str:
    # 128 bits, the protocol's event id form: the hub's logs, sidecars and clients all name an
    # event by the same 32 hex digits.
    return secrets.token_hex(16)


@dataclass
class _Active:
    event_id: str
    started_at: float
    last_motion: float
    peak_score: float = 0.0
    peak_boxes: tuple[Box, ...] = field(default_factory=tuple)


class EventTracker:
    """Turns a stream of ``MotionResult`` into ``EventStarted``/``EventEnded``."""

    def __init__(self, settings: EventSettings, new_id: Callable[[], str] = _new_id) -> None:
        self.settings = settings
        self._new_id = new_id
        self._event: _Active | None = None
        self._run_start: float | None = None  # onset of the current motion run
        self._run_last: float | None = None
        self._cooldown_until = -float("inf")

    @property
    def active(self) -> bool:
        return self._event is not None

    def update(self, result: MotionResult, at: float) -> list[EventStarted | EventEnded]:
        s = self.settings
        out: list[EventStarted | EventEnded] = []
        event = self._event
        if event is not None:
            if result.motion:
                event.last_motion = at
                if result.score >= event.peak_score:
                    event.peak_score, event.peak_boxes = result.score, result.boxes
            elif at - event.last_motion >= s.post_roll and not result.global_change:
                out.append(self._end(event, event.last_motion + s.post_roll))
                return out
            if at - event.started_at >= s.max_length:
                out.append(self._end(event, at, cooldown=False))
                new = _Active(self._new_id(), at, event.last_motion if result.motion else at)
                new.peak_score, new.peak_boxes = result.score, result.boxes
                self._event = new
                out.append(EventStarted(new.event_id, at, result.boxes, result.score))
            return out
        # idle: look for a motion run long enough to start an event
        if not result.motion:
            gap = s.post_roll / 2
            if self._run_last is not None and at - self._run_last > gap:
                self._run_start = self._run_last = None
            return out
        if self._run_start is None:
            self._run_start = at
            if result.since is not None and result.since < at:
                # An object first seen longer ago than BACKDATE (a tall person walking slowly
                # takes a while to travel half their height) still started then: the event
                # starts as early as allowed, rather than when it was confirmed.
                self._run_start = max(result.since, at - BACKDATE)
        self._run_last = at
        if at - self._run_start >= s.persistence - 1e-9 and at >= self._cooldown_until:
            onset = max(self._run_start, self._cooldown_until)
            event = _Active(self._new_id(), onset, at, result.score, result.boxes)
            self._event = event
            self._run_start = self._run_last = None
            out.append(EventStarted(event.event_id, onset, result.boxes, result.score))
        return out

    def _end(self, event: _Active, at: float, *, cooldown: bool = True) -> EventEnded:
        self._event = None
        if cooldown:
            self._cooldown_until = at + self.settings.cooldown
        return EventEnded(
            event.event_id,
            at,
            event.started_at,
            event.peak_score,
            event.peak_boxes,
            event.last_motion,
        )

    def close(self, at: float) -> list[EventStarted | EventEnded]:
        """End of stream: end the running event (at most at ``at``)."""
        event = self._event
        if event is None:
            return []
        end = min(at, event.last_motion + self.settings.post_roll)
        return [self._end(event, end)]


__all__ = ["Event", "EventEnded", "EventStarted", "EventTracker"]
