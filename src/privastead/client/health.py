"""The client's own judgement of the hub's health, from what it decrypts and its own clock.

The relay is not trusted to say whether the hub is alive, nor when something happened: only
what decrypts counts, and time comes from the hub's clock inside its heartbeats. States, in
order of precedence:

- ``REMOVED``: the relay refused this device's token as removed, or the hub committed this
  device out of every group: nothing will work again until it is paired anew; stop retrying;
- ``RELAY_UNREACHABLE``: we cannot talk to the relay (for ``relay_grace``), so we know nothing
  about the hub;
- ``DESYNC``: messages arrive but keep failing to decrypt (lost state, missed commit): re-add;
- ``WITHHELD``: heartbeats say the hub sent messages that never arrived, and resend requests
  did not bring them within ``withheld_after`` (``client.withheld``): the relay is holding them
  back;
- ``STALE_EPOCH``: a heartbeat says the hub is at a later epoch of some group than we are,
  although we have read everything the relay holds: we missed a commit; re-add that group;
- ``HUB_OFFLINE``: the newest heartbeat's *hub* time is more than ``offline_after`` behind our
  clock. A relay that delivers a backlog of old heartbeats, or delays everything, therefore
  cannot make a dead hub look alive;
- ``HUB_CLOCK``: heartbeats arrive on time, but the hub's clock is more than ``skew_allowance``
  off ours: a clock probe (``ClockProbe``) answered within ``probe_rtt`` measured it (so a
  relay that delays messages is not mistaken for it: its probes come back late or never);
- ``HUB_DISK``: the hub's newest heartbeat says its disk is full: continuous recording is
  paused until room is made (event clips and its keys are kept; it deletes old recordings);
- ``CAMERA_OFFLINE``: the hub is fine, but its newest heartbeat for a camera says the camera
  is gone (no frame for a while: unplugged, or hung with its connection open); ``groups``
  names those cameras (``client.cameras``);
- ``OK``.

A hub clock ahead of ours by more than the allowance is visible directly (a heartbeat from the
future). One behind ours first looks like silence (``HUB_OFFLINE``); the monitor then asks for
a probe (``wants_probe``) and, once measured, judges freshness on the hub's corrected clock.

``check`` returns a report only when the state changes (or, for ``CAMERA_OFFLINE``, the set of
cameras), so a caller alerts once per episode.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from privastead.client.cameras import CameraBoard
from privastead.client.defaults import (
    DEFAULT_OFFLINE_AFTER,
    DEFAULT_RELAY_GRACE,
    DEFAULT_SKEW_ALLOWANCE,
)
from privastead.clock import Clock
from privastead.errors import DecodeError
from privastead.protocol.messages import Heartbeat


class HubHealth(enum.Enum):
    OK = "ok"
    HUB_OFFLINE = "hub_offline"
    WITHHELD = "withheld"
    RELAY_UNREACHABLE = "relay_unreachable"
    REMOVED = "removed"
    DESYNC = "desync"
    STALE_EPOCH = "stale_epoch"
    HUB_CLOCK = "hub_clock"
    CAMERA_OFFLINE = "camera_offline"
    HUB_DISK = "hub_disk"


@dataclass(frozen=True)
class HealthReport:
    state: HubHealth
    detail: str
    groups: tuple[str, ...] = ()  # the groups concerned (desync, stale epoch, withheld)


@dataclass(frozen=True)
class Withheld:
    """Messages of one camera the hub sent and we still lack after the grace period."""

    count: int
    since: float  # our clock: when the first of them was found missing


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class HealthMonitor:
    def __init__(
        self,
        clock: Clock,
        *,
        offline_after: float = DEFAULT_OFFLINE_AFTER,
        relay_grace: float = DEFAULT_RELAY_GRACE,
        desync_after_failures: int = 3,
        skew_allowance: float = DEFAULT_SKEW_ALLOWANCE,
        hub_name: str = "the hub",
    ) -> None:
        if offline_after <= 0 or skew_allowance < 0 or relay_grace < 0:
            raise ValueError("health: offline_after > 0, skew_allowance >= 0, relay_grace >= 0")
        self._clock = clock
        self.offline_after = offline_after
        self.relay_grace = relay_grace
        self.desync_after_failures = desync_after_failures
        self.skew_allowance = skew_allowance
        # A probe answer older than this round trip proves nothing about the hub's clock.
        self.probe_rtt = min(offline_after / 2, 60.0)
        self.hub_name = hub_name
        now = clock.time()
        self._started = now  # grace period from start, for a device that never heard the hub
        self._hub_time: float | None = None  # the newest heartbeat's hub time
        self._offset = 0.0  # hub clock minus ours, as last measured by a probe
        self._offset_known = False
        self._probe: tuple[str, float] | None = None  # (nonce, sent at) of the pending probe
        self._last_probe = float("-inf")
        self._last_relay_ok = now
        self._relay_failing = False
        self._failures: dict[str, int] = {}
        self._stale: tuple[str, ...] = ()
        self._hub_version = ""
        self._removed = ""  # why this device counts as removed ("" = it does not)
        self._removed_groups: set[str] = set()
        self._groups: set[str] = set()  # every group of this device (for "removed from all")
        self._withheld: dict[str, Withheld] = {}
        self._reported: tuple[HubHealth, tuple[str, ...]] | None = None
        self.cameras = CameraBoard()  # each camera's presence, from the heartbeats

    # -- inputs ------------------------------------------------------------------------------

    def know_groups(self, groups: set[str]) -> None:
        self._groups = set(groups)

    def heartbeat(
        self, beat: Heartbeat, local_epochs: Mapping[str, int], *, caught_up: bool
    ) -> None:
        """A heartbeat decrypted. ``local_epochs`` uses its keys ("camera/group"); ``caught_up``
        says we have processed everything the relay held, so a later hub epoch means a miss."""
        self.relay_ok()
        if self._probe is not None and self._probe[0] in beat.answers:
            sent_at = self._probe[1]
            now = self._clock.time()
            if 0 <= now - sent_at <= self.probe_rtt:
                # NTP's estimate: the hub read its clock half-way through the round trip.
                self._offset = beat.hub_time - (sent_at + now) / 2
                self._offset_known = True
            self._probe = None
        self.cameras.heartbeat(beat)  # per camera: each camera's control group beats alone
        if self._hub_time is not None and beat.hub_time < self._hub_time:
            return  # older than one we saw: a replay or reordering, it proves nothing new
        self._hub_time = beat.hub_time
        self._hub_version = beat.hub_version
        if caught_up:
            self._stale = tuple(
                sorted(
                    g for g, e in beat.epochs.items() if g in local_epochs and e > local_epochs[g]
                )
            )

    def decrypted(self, group: str) -> None:
        self._failures.pop(group, None)
        self._removed_groups.discard(group)
        self.relay_ok()

    def decrypt_failed(self, group: str) -> None:
        self._failures[group] = self._failures.get(group, 0) + 1
        self.relay_ok()

    def relay_ok(self) -> None:
        self._last_relay_ok = self._clock.time()
        self._relay_failing = False

    def relay_failed(self) -> None:
        self._relay_failing = True

    def device_removed(self, why: str) -> None:
        """The relay refused our token as removed: final."""
        self._removed = why

    def removed_from(self, group: str) -> None:
        """The hub committed this device out of ``group``."""
        self._removed_groups.add(group)

    def readded(self, group: str) -> None:
        self._removed_groups.discard(group)
        self._failures.pop(group, None)

    def set_withheld(self, withheld: Mapping[str, Withheld]) -> None:
        """Per camera, what is withheld now (``client.withheld`` computes it)."""
        self._withheld = dict(withheld)

    def probe_sent(self, nonce: str) -> None:
        now = self._clock.time()
        self._probe = (nonce, now)
        self._last_probe = now

    # -- outputs -----------------------------------------------------------------------------

    @property
    def removed(self) -> bool:
        return bool(self._removed) or (bool(self._groups) and self._groups <= self._removed_groups)

    def desynced(self) -> tuple[str, ...]:
        """Groups whose messages keep failing to decrypt (evidence for a re-add)."""
        return tuple(
            sorted(g for g, n in self._failures.items() if n >= self.desync_after_failures)
        )

    def heartbeat_age(self) -> float:
        """Seconds since the newest heartbeat was sent, on the hub's clock as corrected by the
        last probe; since start when none came yet."""
        now = self._clock.time()
        if self._hub_time is None:
            return now - self._started
        return now - (self._hub_time - (self._offset if self._offset_known else 0.0))

    def last_heartbeat(self) -> float | None:
        """When the newest heartbeat was sent, on our clock (the hub's, corrected by the last
        probe); None before the first."""
        if self._hub_time is None:
            return None
        return self._hub_time - (self._offset if self._offset_known else 0.0)

    def wants_probe(self) -> bool:
        """True when a clock probe would tell a lagging hub clock from silence: the hub looks
        offline, and no probe went out within the last ``offline_after``."""
        if self._hub_time is None:
            return False
        now = self._clock.time()
        return (
            self.heartbeat_age() >= self.offline_after
            and now - self._last_probe >= self.offline_after
        )

    def report(self) -> HealthReport:
        now = self._clock.time()
        if self.removed:
            why = self._removed or "the hub removed it from every group"
            return HealthReport(
                HubHealth.REMOVED, f"this device was removed from {self.hub_name} ({why})"
            )
        if self._relay_failing and now - self._last_relay_ok >= self.relay_grace:
            return HealthReport(
                HubHealth.RELAY_UNREACHABLE,
                f"the relay has not answered for {_span(now - self._last_relay_ok)}",
            )
        desynced = self.desynced() or tuple(sorted(self._removed_groups))
        if desynced:
            return HealthReport(
                HubHealth.DESYNC,
                "messages arrive but do not decrypt; this device needs to be re-added",
                desynced,
            )
        if self._withheld:
            camera, worst = min(self._withheld.items(), key=lambda kv: kv[1].since)
            total = sum(w.count for w in self._withheld.values())
            return HealthReport(
                HubHealth.WITHHELD,
                f"the relay is withholding {total} message(s) of {camera} since "
                f"{_when(worst.since)}",
                tuple(sorted(self._withheld)),
            )
        if self._stale:
            return HealthReport(
                HubHealth.STALE_EPOCH,
                "the hub is at a later epoch than this device; it missed a commit",
                self._stale,
            )
        return self._freshness(now)

    def _freshness(self, now: float) -> HealthReport:
        age = self.heartbeat_age()
        if age >= self.offline_after:
            if self._hub_time is None:
                return HealthReport(
                    HubHealth.HUB_OFFLINE, f"no heartbeat from the hub in {_span(age)}"
                )
            return HealthReport(
                HubHealth.HUB_OFFLINE,
                f"the newest heartbeat is from {_span(age)} ago, by the hub's clock (the hub "
                "is down, or the relay holds its messages back)",
            )
        if self._hub_time is None:
            left = self.offline_after - age
            return HealthReport(
                HubHealth.OK, f"waiting for the first heartbeat (offline in {_span(left)})"
            )
        version = f" (hub {self._hub_version})" if self._hub_version else ""
        skew = self._offset if self._offset_known else 0.0
        if self._hub_time - now > self.skew_allowance + skew:
            skew = self._hub_time - now
        if abs(skew) > self.skew_allowance:
            side = "ahead of" if skew > 0 else "behind"
            return HealthReport(
                HubHealth.HUB_CLOCK,
                f"the hub's clock is {_span(skew)} {side} this device's; heartbeats arrive on "
                f"time{version}",
            )
        disk = self.cameras.disk()
        if disk is not None and disk[0] == "full":
            return HealthReport(
                HubHealth.HUB_DISK,
                f"the hub's disk is full ({disk[1]}); it keeps event clips and its keys and "
                "deletes its oldest continuous recording to make room",
            )
        offline = self.cameras.offline()
        if offline:
            shift = self._offset if self._offset_known else 0.0
            said = "; ".join(
                f"camera {c.name} offline since {_when((c.offline_since or c.hub_time) - shift)}"
                for c in offline
            )
            return HealthReport(
                HubHealth.CAMERA_OFFLINE,
                f"{said} (the hub gets no picture from it; last heartbeat "
                f"{_span(max(age, 0.0))} ago{version})",
                tuple(c.name for c in offline),
            )
        return HealthReport(HubHealth.OK, f"last heartbeat {_span(max(age, 0.0))} ago{version}")

    def camera_offline_since(self, name: str) -> float | None:
        """When camera ``name`` went away, on our clock; None if the hub has it (or never
        said)."""
        state = self.cameras.get(name)
        if state is None or state.connected:
            return None
        shift = self._offset if self._offset_known else 0.0
        return (state.offline_since or state.hub_time) - shift

    def check(self) -> HealthReport | None:
        """The report if the state changed since the last call (alert once per episode)."""
        report = self.report()
        key = (report.state, report.groups if report.state is HubHealth.CAMERA_OFFLINE else ())
        if key == self._reported:
            return None
        self._reported = key
        return report

    # -- persistence -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": 2,
            "hub_time": self._hub_time,
            "started": self._started,
            "offset": self._offset if self._offset_known else None,
            "removed": self._removed,
            "removed_groups": sorted(self._removed_groups),
            "cameras": self.cameras.to_dict(),
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Resume after a restart: an hour-old last heartbeat is still an hour old."""
        try:
            if data.get("v") != 2:  # an older client's state: what it knew is still true
                hub_time = float(data["last_hub_time"]) or None
                self._hub_time = hub_time
                return
            hub_time, offset = data["hub_time"], data["offset"]
            self._hub_time = None if hub_time is None else float(hub_time)
            self._started = min(float(data["started"]), self._clock.time())
            self._offset_known = offset is not None
            self._offset = float(offset) if offset is not None else 0.0
            self._removed = str(data["removed"])
            self._removed_groups = {str(g) for g in data["removed_groups"]}
            if "cameras" in data:  # saved by a client that knew camera presence
                self.cameras.restore(data["cameras"])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise DecodeError(
                "health state must hold hub_time, started, offset, removed and removed_groups"
            ) from None


__all__ = [
    "HealthMonitor",
    "HealthReport",
    "HubHealth",
    "Withheld",
]
