"""The client's own judgement of the hub's health, from what it decrypts and its own clock.

The relay is not trusted to say whether the hub is alive: only heartbeats that decrypt count. The
monitor tells apart, in this order of precedence:

- ``RELAY_UNREACHABLE``: we cannot talk to the relay, so we know nothing about the hub;
- ``DESYNC``: messages arrive but keep failing to decrypt (lost state, missed commit): re-add;
- ``STALE_EPOCH``: a heartbeat says the hub is at a later epoch of some group than we are,
  although we have read everything the relay holds: we missed a commit; re-add that group;
- ``HUB_OFFLINE``: the relay answers, but no heartbeat has decrypted for ``offline_after``;
- ``OK``.

``check`` returns a report only when the state changes, so a caller alerts once per episode.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from privastead.clock import Clock
from privastead.errors import DecodeError
from privastead.protocol.messages import Heartbeat


class HubHealth(enum.Enum):
    OK = "ok"
    HUB_OFFLINE = "hub_offline"
    RELAY_UNREACHABLE = "relay_unreachable"
    DESYNC = "desync"
    STALE_EPOCH = "stale_epoch"


@dataclass(frozen=True)
class HealthReport:
    state: HubHealth
    detail: str
    groups: tuple[str, ...] = ()  # the groups concerned (desync, stale epoch)


class HealthMonitor:
    def __init__(
        self,
        clock: Clock,
        *,
        offline_after: float = 900.0,
        relay_grace: float = 120.0,
        desync_after_failures: int = 3,
    ) -> None:
        self._clock = clock
        self.offline_after = offline_after
        self.relay_grace = relay_grace
        self.desync_after_failures = desync_after_failures
        now = clock.time()
        self._last_heartbeat = now  # grace period from start (or from the last saved state)
        self._last_hub_time = 0.0
        self._last_relay_ok = now
        self._relay_failing = False
        self._failures: dict[str, int] = {}
        self._stale: tuple[str, ...] = ()
        self._hub_version = ""
        self._reported: HubHealth | None = None

    # -- inputs ------------------------------------------------------------------------------

    def heartbeat(
        self, beat: Heartbeat, local_epochs: Mapping[str, int], *, caught_up: bool
    ) -> None:
        """A heartbeat decrypted. ``local_epochs`` uses its keys ("camera/group"); ``caught_up``
        says we have processed everything the relay held, so a later hub epoch means a miss."""
        if beat.hub_time < self._last_hub_time:
            return  # older than one we saw: a replay or reordering, it proves nothing new
        self._last_hub_time = beat.hub_time
        self._last_heartbeat = self._clock.time()
        self._hub_version = beat.hub_version
        self.relay_ok()
        if caught_up:
            self._stale = tuple(
                sorted(
                    g for g, e in beat.epochs.items() if g in local_epochs and e > local_epochs[g]
                )
            )

    def decrypted(self, group: str) -> None:
        self._failures.pop(group, None)
        self.relay_ok()

    def decrypt_failed(self, group: str) -> None:
        self._failures[group] = self._failures.get(group, 0) + 1
        self.relay_ok()

    def relay_ok(self) -> None:
        self._last_relay_ok = self._clock.time()
        self._relay_failing = False

    def relay_failed(self) -> None:
        self._relay_failing = True

    # -- outputs -----------------------------------------------------------------------------

    def report(self) -> HealthReport:
        now = self._clock.time()
        if self._relay_failing and now - self._last_relay_ok >= self.relay_grace:
            return HealthReport(
                HubHealth.RELAY_UNREACHABLE,
                f"the relay has not answered for {now - self._last_relay_ok:.0f} s",
            )
        desynced = tuple(
            sorted(g for g, n in self._failures.items() if n >= self.desync_after_failures)
        )
        if desynced:
            return HealthReport(
                HubHealth.DESYNC,
                "messages arrive but do not decrypt; this device needs to be re-added",
                desynced,
            )
        if self._stale:
            return HealthReport(
                HubHealth.STALE_EPOCH,
                "the hub is at a later epoch than this device; it missed a commit",
                self._stale,
            )
        silent = now - self._last_heartbeat
        if silent >= self.offline_after:
            return HealthReport(
                HubHealth.HUB_OFFLINE, f"no heartbeat from the hub for {silent:.0f} s"
            )
        version = f" (hub {self._hub_version})" if self._hub_version else ""
        return HealthReport(HubHealth.OK, f"last heartbeat {silent:.0f} s ago{version}")

    def check(self) -> HealthReport | None:
        """The report if the state changed since the last call (alert once per episode)."""
        report = self.report()
        if report.state is self._reported:
            return None
        self._reported = report.state
        return report

    # -- persistence -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"last_heartbeat": self._last_heartbeat, "last_hub_time": self._last_hub_time}

    def restore(self, data: Mapping[str, Any]) -> None:
        """Resume after a restart: an hour-old last heartbeat is still an hour old."""
        try:
            last, hub_time = float(data["last_heartbeat"]), float(data["last_hub_time"])
        except (KeyError, TypeError, ValueError):
            raise DecodeError("health state must hold last_heartbeat and last_hub_time") from None
        self._last_heartbeat = min(last, self._clock.time())
        self._last_hub_time = hub_time


__all__ = ["HealthMonitor", "HealthReport", "HubHealth"]
