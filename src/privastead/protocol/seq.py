"""Per-group sequence tracking on the receiver: gaps, replays and reordering.

The hub numbers every message it sends to a group (``seq``, no holes). A client feeds each seq
it decrypts to its group's ``SeqTracker``, which says whether it came in order, opened a gap
(and which ranges are now missing, to put in a ``ResendRequest``), or filled an earlier gap
(reordering); a seq seen before raises ``DuplicateMessageError`` (a replay or a relay duplicate:
drop it). The state is a small dict for the client's state file.

State: every seq below ``next_seq`` is received or given up; ``received`` holds the disjoint,
sorted ranges received above it. Ranges keep the state small however long a gap lasts.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from privastead.errors import DecodeError, DuplicateMessageError
from privastead.protocol.fields import MAX_SEQ, check_int

MAX_TRACKED_RANGES = 1024

Range = tuple[int, int]


class SeqStatus(enum.Enum):
    IN_ORDER = "in_order"  # right after the highest seq seen so far
    GAP = "gap"  # further ahead: ``missing`` names what was skipped
    LATE = "late"  # fills (part of) an earlier gap: the relay reordered or a resend arrived


@dataclass(frozen=True)
class SeqResult:
    status: SeqStatus
    missing: tuple[Range, ...] = ()  # for GAP: the ranges this seq newly revealed as missing


class SeqTracker:
    """What one receiver has seen of one group's sequence numbers."""

    def __init__(self, next_seq: int = 0) -> None:
        self._next = check_int(next_seq, "next_seq")
        self._received: list[Range] = []

    @property
    def next_seq(self) -> int:
        """Every seq below this was received or given up."""
        return self._next

    @property
    def high_water(self) -> int:
        """The highest seq received (``next_seq - 1`` when nothing is outstanding)."""
        return self._received[-1][1] if self._received else self._next - 1

    def seen(self, seq: int) -> bool:
        """Whether ``seq`` was received (or given up) already; changes nothing."""
        return seq < self._next or any(a <= seq <= b for a, b in self._received)

    def observe(self, seq: int) -> SeqResult:
        """Record ``seq``. Raises ``DuplicateMessageError`` if it was seen (or given up) before."""
        check_int(seq, "seq")
        if self.seen(seq):
            raise DuplicateMessageError(f"seq {seq} was already received or given up")
        before_high = self.high_water
        newly: tuple[Range, ...] = ()
        if seq == before_high + 1:
            status = SeqStatus.IN_ORDER
        elif seq > before_high:
            status, newly = SeqStatus.GAP, ((before_high + 1, seq - 1),)
        else:
            status = SeqStatus.LATE
        self._insert(seq)
        self._bound()
        return SeqResult(status, newly)

    def missing(self) -> tuple[Range, ...]:
        """Inclusive ranges not yet received below the high water mark, oldest first."""
        gaps: list[Range] = []
        cursor = self._next
        for a, b in self._received:
            if a > cursor:
                gaps.append((cursor, a - 1))
            cursor = b + 1
        return tuple(gaps)

    def give_up(self, up_to: int) -> tuple[Range, ...]:
        """Stop waiting for missing seqs ``<= up_to`` (the hub no longer has them).

        Returns the ranges given up, so the caller can report what was lost.
        """
        check_int(up_to, "up_to")
        lost = tuple((a, min(b, up_to)) for a, b in self.missing() if a <= up_to)
        if up_to >= self._next:
            self._next = up_to + 1
            self._received = [(max(a, self._next), b) for a, b in self._received if b >= self._next]
            self._advance()
        return lost

    def forget(self, first: int, last: int) -> int:
        """Stop waiting for ``first..last`` (the sender says they will never come), also above
        the high water mark. Returns how many of them had not been received."""
        check_int(first, "first")
        check_int(last, "last", first)
        if last < self._next:
            return 0
        first = max(first, self._next)
        held = sum(
            min(b, last) - max(a, first) + 1 for a, b in self._received if a <= last and b >= first
        )
        merged: list[Range] = []
        for a, b in sorted([*self._received, (first, last)]):
            if merged and a <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        self._received = merged
        self._advance()
        self._bound()
        return (last - first + 1) - held

    def _insert(self, seq: int) -> None:
        # Ranges are disjoint and not adjacent; merge ``seq`` with its neighbours if it touches
        # them (O(log n) search, one list edit).
        ranges = self._received
        i = bisect.bisect_left(ranges, (seq, seq))
        joins_left = i > 0 and ranges[i - 1][1] == seq - 1
        joins_right = i < len(ranges) and ranges[i][0] == seq + 1
        if joins_left and joins_right:
            ranges[i - 1 : i + 1] = [(ranges[i - 1][0], ranges[i][1])]
        elif joins_left:
            ranges[i - 1] = (ranges[i - 1][0], seq)
        elif joins_right:
            ranges[i] = (seq, ranges[i][1])
        else:
            ranges.insert(i, (seq, seq))
        self._advance()

    def _advance(self) -> None:
        while self._received and self._received[0][0] <= self._next:
            self._next = max(self._next, self._received.pop(0)[1] + 1)

    def _bound(self) -> None:
        # A relay that drops every other message must not grow our state without limit: past the
        # bound, the oldest gaps are given up (and show up as lost in the caller's reports).
        while len(self._received) > MAX_TRACKED_RANGES:
            self.give_up(self._received[0][0] - 1)

    def to_dict(self) -> dict[str, Any]:
        return {"next": self._next, "received": [list(r) for r in self._received]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SeqTracker:
        """Restore a tracker; a corrupt dict raises ``DecodeError``."""
        if not isinstance(data, Mapping) or set(data) != {"next", "received"}:
            raise DecodeError("sequence state must have exactly 'next' and 'received'")
        tracker = cls(check_int(data["next"], "sequence state next"))
        received = data["received"]
        if not isinstance(received, list) or len(received) > MAX_TRACKED_RANGES:
            raise DecodeError("sequence state 'received' must be a short list")
        cursor = tracker._next + 1  # a stored range never touches next (it would have merged)
        for item in received:
            if not isinstance(item, list) or len(item) != 2:
                raise DecodeError("sequence state ranges must be [first, last]")
            a = check_int(item[0], "sequence state range", cursor, MAX_SEQ)
            b = check_int(item[1], "sequence state range", a, MAX_SEQ)
            tracker._received.append((a, b))
            cursor = b + 2
        return tracker


__all__ = ["MAX_TRACKED_RANGES", "SeqResult", "SeqStatus", "SeqTracker"]
