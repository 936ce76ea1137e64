"""When the receive loop may ask the hub, by itself, to re-add this device to a group.

A device that lost sync with its ``events`` or ``live`` group (state restored from a backup,
a commit it never saw, a crash between two writes) reads nothing new there until the hub
replaces its leaf (``Client.request_readd``). ``ResyncPolicy`` decides when that is due from
evidence the receive loop gathers, and rate-limits the requests per group.

Evidence (protocol.md, "Automatic re-add"), per ``camera/group``:

- ``blocked``: the first unread message of the mailbox is for a *later* epoch than our state.
  The hub is the only committer and uploads in order into the same mailbox, so the commit to
  that epoch came before it and we have read past it: we cannot catch up on our own;
- ``lagging``: a heartbeat says the hub is at a later epoch than our state although we have
  read everything the relay holds (a heartbeat from the control group, which we can read);
- ``undecryptable``: the health monitor counts consecutive messages that do not decrypt.

None of this is acted on at once: each kind must be seen in at least ``confirmations``
separate observations (rounds or heartbeats) spanning ``after`` seconds, so that a commit still
being uploaded while its heartbeat is already read, or one bad message, never triggers it.
Rounds in which the relay failed add no evidence. Evidence clears when the group reads a
message again or the lag is gone.

Requests are at most one per ``interval`` seconds per group, doubling with every request that
did not lead to a re-add (up to ``max_interval``); the times are persisted with the sync state,
so a restarted ``listen`` does not ask again early.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from privastead.clock import Clock
from privastead.errors import DecodeError

DEFAULT_AFTER = 60.0
DEFAULT_INTERVAL = 600.0
DEFAULT_MAX_INTERVAL = 6 * 3600.0
KINDS = ("blocked", "lagging", "undecryptable")


@dataclass
class _Evidence:
    since: float
    observations: int
    detail: str


@dataclass
class _Requests:
    last_sent: float
    attempts: int  # requests since the last successful re-add


@dataclass(frozen=True)
class ResyncDue:
    key: str  # "camera/group"
    reason: str
    attempt: int
    next_allowed: float  # wall-clock time before which no further request for this group


class ResyncPolicy:
    def __init__(
        self,
        clock: Clock,
        *,
        after: float = DEFAULT_AFTER,
        interval: float = DEFAULT_INTERVAL,
        max_interval: float = DEFAULT_MAX_INTERVAL,
        confirmations: int = 2,
    ) -> None:
        if after < 0 or interval <= 0 or max_interval < interval or confirmations < 1:
            raise ValueError("resync: after >= 0, 0 < interval <= max_interval, confirmations >= 1")
        self._clock = clock
        self.after = after
        self.interval = interval
        self.max_interval = max_interval
        self.confirmations = confirmations
        self._evidence: dict[tuple[str, str], _Evidence] = {}
        self._requests: dict[str, _Requests] = {}

    # -- evidence ----------------------------------------------------------------------------

    def observe(self, key: str, kind: str, detail: str) -> None:
        """One more observation of ``kind`` for group ``key``."""
        if kind not in KINDS:
            raise ValueError(f"unknown resync evidence {kind!r}")
        seen = self._evidence.get((key, kind))
        if seen is None:
            self._evidence[(key, kind)] = _Evidence(self._clock.time(), 1, detail)
        else:
            seen.observations += 1
            seen.detail = detail

    def clear(self, key: str, kind: str | None = None) -> None:
        """The group reads again (``kind`` None), or one kind of evidence went away."""
        for k in [k for k in self._evidence if k[0] == key and kind in (None, k[1])]:
            del self._evidence[k]

    def evidence(self, key: str) -> tuple[str, ...]:
        return tuple(sorted(kind for k, kind in self._evidence if k == key))

    # -- decisions ---------------------------------------------------------------------------

    def _confirmed(self, key: str) -> _Evidence | None:
        now = self._clock.time()
        for kind in KINDS:
            seen = self._evidence.get((key, kind))
            if (
                seen is not None
                and seen.observations >= self.confirmations
                and now - seen.since >= self.after
            ):
                return seen
        return None

    def wait_for(self, attempts: int) -> float:
        """Seconds between request number ``attempts`` and the next one."""
        if attempts <= 0:
            return 0.0
        return min(self.interval * 2.0 ** (attempts - 1), self.max_interval)

    def next_allowed(self, key: str) -> float:
        sent = self._requests.get(key)
        if sent is None:
            return float("-inf")
        return sent.last_sent + self.wait_for(sent.attempts)

    def due(self, keys: list[str]) -> list[ResyncDue]:
        """The groups among ``keys`` to ask a re-add for now; each is recorded as sent
        (call ``failed`` if the request could not be sent)."""
        now = self._clock.time()
        out = []
        for key in keys:
            seen = self._confirmed(key)
            if seen is None:
                continue
            sent = self._requests.get(key)
            if sent is not None and sent.last_sent > now:
                sent.last_sent = now  # the clock went back: restart the wait, never skip it
            if now < self.next_allowed(key):
                continue
            attempts = (sent.attempts if sent is not None else 0) + 1
            self._requests[key] = _Requests(now, attempts)
            out.append(ResyncDue(key, seen.detail, attempts, now + self.wait_for(attempts)))
        return out

    def failed(self, key: str, previous: Mapping[str, Any] | None) -> None:
        """The request for ``key`` was not sent (relay down): forget that we tried."""
        if previous is None:
            self._requests.pop(key, None)
        else:
            self._requests[key] = _Requests(float(previous["last_sent"]), int(previous["attempts"]))

    def record(self, key: str) -> dict[str, Any] | None:
        sent = self._requests.get(key)
        return None if sent is None else {"last_sent": sent.last_sent, "attempts": sent.attempts}

    def readded(self, key: str) -> None:
        """The hub re-added us: the back-off starts over (the last time still counts)."""
        sent = self._requests.get(key)
        if sent is not None:
            sent.attempts = min(sent.attempts, 1)
        self.clear(key)

    # -- persistence -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            key: {"last_sent": r.last_sent, "attempts": r.attempts}
            for key, r in sorted(self._requests.items())
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        try:
            self._requests = {
                str(key): _Requests(float(v["last_sent"]), int(v["attempts"]))
                for key, v in data.items()
            }
        except (KeyError, TypeError, ValueError):
            raise DecodeError("resync state must map groups to last_sent and attempts") from None


__all__ = ["KINDS", "ResyncDue", "ResyncPolicy"]
