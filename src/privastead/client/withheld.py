"""Messages the hub says it sent that never arrived: resend, then call it withheld.

A relay can drop exactly the application messages of one group (it sees the content type of
every MLS message) and deliver everything else: no later seq arrives, so no gap ever opens in
the ``SeqTracker``. Heartbeats close that hole: each names, per group, the highest app seq the
relay has accepted from the hub (``Heartbeat.sent``). ``Announcements`` holds the newest such
claim per group and compares it with what the group's tracker holds:

- claims are only compared once the group's mailbox has been read *after* the heartbeat was
  (a message uploaded just before its heartbeat may still be on its way through our own
  round): ``check`` takes the number of the sync round and ignores claims from the same one;
- whatever is missing is asked for again (``ResendRequest``, at most one per group per
  ``resend_every``);
- a missing seq that is still missing ``grace`` seconds after it was first found makes the
  camera **withheld**: "the relay is withholding N messages of CAMERA since TIME";
- the hub may answer that some seqs will never come (``ResendGone``: dropped by its quota or
  no longer kept): the tracker gives them up and they count as lost, not withheld.

State is persisted with the sync state, so a fresh ``status`` process knows since when.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from privastead.client.defaults import DEFAULT_RESEND_EVERY, DEFAULT_WITHHELD_AFTER
from privastead.client.health import Withheld
from privastead.clock import Clock
from privastead.errors import DecodeError
from privastead.protocol.seq import Range, SeqTracker

MAX_ASKED_RANGES = 64  # per request: the oldest gaps first, the rest next time


@dataclass
class _Claim:
    high: int  # the hub's highest app seq sent, per its newest heartbeat
    round: int  # the sync round it was read in
    since: float | None = None  # when something at or below it was first found missing
    asked: float = float("-inf")  # when we last asked for a resend


def missing_through(tracker: SeqTracker, high: int) -> tuple[Range, ...]:
    """Seqs up to ``high`` the tracker has neither received nor given up, oldest first."""
    gaps = [(a, min(b, high)) for a, b in tracker.missing() if a <= high]
    if high > tracker.high_water:
        gaps.append((tracker.high_water + 1, high))
    return tuple((a, b) for a, b in gaps if a <= b)


class Announcements:
    def __init__(
        self,
        clock: Clock,
        *,
        grace: float = DEFAULT_WITHHELD_AFTER,
        resend_every: float = DEFAULT_RESEND_EVERY,
    ) -> None:
        if grace < 0 or resend_every <= 0:
            raise ValueError("withheld: grace >= 0 and resend_every > 0")
        self._clock = clock
        self.grace = grace
        self.resend_every = resend_every
        self._claims: dict[str, _Claim] = {}
        self.lost: dict[str, int] = {}  # per group: seqs the hub said will never come

    def announce(self, key: str, high: int, round_no: int) -> None:
        """A heartbeat (read in sync round ``round_no``) says group ``key`` was sent up to
        ``high``. Claims only grow: a replayed older heartbeat changes nothing."""
        claim = self._claims.get(key)
        if claim is None:
            self._claims[key] = _Claim(high, round_no)
        elif high > claim.high:
            claim.high, claim.round = high, round_no

    def gone(self, key: str, ranges: tuple[Range, ...], tracker: SeqTracker) -> int:
        """The hub says ``ranges`` of ``key`` will never come; how many we were missing."""
        count = 0
        for first, last in ranges:
            count += tracker.forget(first, last)
        if count:
            self.lost[key] = self.lost.get(key, 0) + count
        return count

    def check(self, key: str, tracker: SeqTracker, round_no: int) -> tuple[Range, ...]:
        """After sync round ``round_no`` read group ``key``: the ranges to ask the hub for now
        (empty when nothing is missing or we asked recently)."""
        claim = self._claims.get(key)
        if claim is None or claim.round >= round_no:
            return ()
        missing = missing_through(tracker, claim.high)
        now = self._clock.time()
        if not missing:
            claim.since = None
            return ()
        if claim.since is None or claim.since > now:
            claim.since = now
        if now - claim.asked < self.resend_every:
            return ()
        claim.asked = now
        return missing[:MAX_ASKED_RANGES]

    def forget_group(self, key: str) -> None:
        """The group's leaf was replaced (re-add): its old claims say nothing of the new one."""
        self._claims.pop(key, None)

    def withheld(self, trackers: Mapping[str, SeqTracker]) -> dict[str, Withheld]:
        """Per camera, the messages missing for longer than the grace period."""
        now = self._clock.time()
        out: dict[str, Withheld] = {}
        for key, claim in self._claims.items():
            tracker = trackers.get(key)
            if tracker is None or claim.since is None or now - claim.since < self.grace:
                continue
            count = sum(b - a + 1 for a, b in missing_through(tracker, claim.high))
            if count == 0:
                continue
            camera = key.split("/", 1)[0]
            old = out.get(camera)
            out[camera] = Withheld(
                count + (old.count if old else 0), min(claim.since, old.since if old else now)
            )
        return out

    # -- persistence -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "claims": {k: {"high": c.high, "since": c.since} for k, c in self._claims.items()},
            "lost": dict(self.lost),
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Claims come back as read in an earlier round (round -1): compared at once."""
        try:
            self._claims = {
                str(k): _Claim(
                    int(v["high"]), -1, None if v["since"] is None else float(v["since"])
                )
                for k, v in dict(data["claims"]).items()
            }
            self.lost = {str(k): int(v) for k, v in dict(data["lost"]).items()}
        except (KeyError, TypeError, ValueError):
            raise DecodeError("withheld state must hold claims and lost") from None


__all__ = ["Announcements", "missing_through"]
