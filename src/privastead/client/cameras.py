"""Each camera's presence as the hub reports it in its heartbeats (inside the ciphertext).

The hub puts per camera ``connected``, ``offline_since`` (its clock), ``last_frame``,
``reconnects``, ``decode_errors``, ``fps``, its reader's ``state``, its continuous ``recording``
(``off``, ``recording``, ``paused``) and the hub's ``disk`` (``ok``, ``low``, ``full``, with
``disk_free`` bytes and ``disk_detail``) into each heartbeat, and
sends one at once when a camera goes away or comes back. ``CameraBoard`` keeps the newest facts
per camera (by the hub's clock: a replayed older heartbeat changes nothing), says which cameras
are offline and since when, and which changed since the caller last asked (``changes``: one
alert per outage, as ``listen`` prints and runs ``--exec`` for). A hub too old to send the facts
leaves the board empty: nothing is claimed about its cameras.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from privastead.errors import DecodeError
from privastead.protocol.messages import Heartbeat


@dataclass(frozen=True)
class CameraState:
    name: str
    connected: bool
    offline_since: float | None  # hub clock; None while connected
    hub_time: float  # of the heartbeat that said so
    facts: Mapping[str, Any] = field(default_factory=dict)  # everything the hub reported


class CameraBoard:
    def __init__(self) -> None:
        self._latest: dict[str, CameraState] = {}
        self._told: dict[str, bool] = {}  # camera -> connected, as last returned by changes()

    def heartbeat(self, beat: Heartbeat) -> None:
        for name, facts in beat.cameras.items():
            connected = facts.get("connected")
            if not isinstance(connected, bool):
                continue  # a hub that does not report camera presence
            old = self._latest.get(name)
            if old is not None and beat.hub_time < old.hub_time:
                continue  # older than what we know: a replay or reordering
            since = facts.get("offline_since")
            offline_since = (
                float(since) if not connected and isinstance(since, int | float) and since else None
            )
            if not connected and offline_since is None:
                offline_since = beat.hub_time
            self._latest[name] = CameraState(
                name, connected, offline_since, beat.hub_time, dict(facts)
            )

    def get(self, name: str) -> CameraState | None:
        return self._latest.get(name)

    def disk(self) -> tuple[str, str] | None:
        """The hub's disk as its newest heartbeat said: (state ``ok``/``low``/``full``, detail);
        None if no heartbeat said (an older hub)."""
        newest = max(self._latest.values(), key=lambda s: s.hub_time, default=None)
        if newest is None or not isinstance(newest.facts.get("disk"), str):
            return None
        return str(newest.facts["disk"]), str(newest.facts.get("disk_detail", ""))

    def offline(self) -> list[CameraState]:
        """The cameras the hub last reported as gone, by name."""
        return [s for _, s in sorted(self._latest.items()) if not s.connected]

    def changes(self) -> list[CameraState]:
        """The cameras whose presence changed since the last call; a camera's first report
        counts only if it is offline (a camera that is there is no news)."""
        changed = []
        for name, state in sorted(self._latest.items()):
            before = self._told.get(name, True)
            if state.connected != before:
                changed.append(state)
            self._told[name] = state.connected
        return changed

    # -- persistence (with the hub health state) ---------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            name: {"facts": dict(s.facts), "hub_time": s.hub_time, "told": self._told.get(name)}
            for name, s in self._latest.items()
        }

    def restore(self, data: object) -> None:
        if not isinstance(data, Mapping):
            raise DecodeError("camera health state must be an object")
        try:
            for name, saved in data.items():
                beat = Heartbeat(float(saved["hub_time"]), 0, "", {name: saved["facts"]}, {}, {})
                self.heartbeat(beat)
                if isinstance(saved.get("told"), bool):
                    self._told[str(name)] = saved["told"]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise DecodeError("camera health state must hold facts and hub_time") from None


__all__ = ["CameraBoard", "CameraState"]
