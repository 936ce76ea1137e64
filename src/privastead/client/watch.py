"""What a device concludes about its hub and the relay from what it reads: one place for the
health monitor (``client.health``), the hub's claims of what it sent (``client.withheld``) and
the clock probe, persisted with the sync state so every process (``listen``, ``status``,
``sync``, the UI) reaches the same verdict.

The receive loop calls ``heartbeat`` and ``gone`` for the messages it stores and
``after_round`` after each round; ``after_round`` returns what to send (resend requests, a
clock probe) and updates the health monitor.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from privastead.client.defaults import (
    DEFAULT_OFFLINE_AFTER,
    DEFAULT_SKEW_ALLOWANCE,
    DEFAULT_WITHHELD_AFTER,
)
from privastead.client.device import DataDir
from privastead.client.health import HealthMonitor
from privastead.client.withheld import Announcements
from privastead.clock import Clock
from privastead.errors import DecodeError
from privastead.protocol.health_messages import ClockProbe, ResendGone
from privastead.protocol.messages import Heartbeat
from privastead.protocol.seq import Range, SeqTracker


@dataclass(frozen=True)
class WatchSettings:
    """How quickly the device concludes (defaults: the owner knows within 3 minutes)."""

    offline_after: float = DEFAULT_OFFLINE_AFTER
    withheld_after: float = DEFAULT_WITHHELD_AFTER
    skew_allowance: float = DEFAULT_SKEW_ALLOWANCE


@dataclass(frozen=True)
class GroupView:
    """One group as the watch sees it after a round."""

    key: str  # "camera/group"
    tracker: SeqTracker
    read_round: int  # the last round that read its mailbox to the end (-1: never)


class HubWatch:
    def __init__(
        self,
        data: DataDir,
        clock: Clock,
        *,
        hub_name: str,
        groups: Iterable[str],
        settings: WatchSettings | None = None,
    ) -> None:
        settings = settings or WatchSettings()
        self._data = data
        self.health = HealthMonitor(
            clock,
            offline_after=settings.offline_after,
            skew_allowance=settings.skew_allowance,
            hub_name=hub_name,
        )
        self.announced = Announcements(clock, grace=settings.withheld_after)
        for name, target in (("health", self.health), ("withheld", self.announced)):
            saved = data.sync_state_raw(name)
            if saved:  # an unreadable verdict is re-learnt from the next heartbeats
                with contextlib.suppress(DecodeError):
                    target.restore(saved)
        self.health.know_groups(set(groups))
        self._cameras = sorted({g.split("/", 1)[0] for g in groups})

    def heartbeat(
        self,
        beat: Heartbeat,
        local_epochs: Mapping[str, int],
        round_no: int,
    ) -> None:
        """A heartbeat of one camera decrypted; ``local_epochs``: this device's groups of that
        camera and their epochs."""
        self.health.heartbeat(beat, local_epochs, caught_up=True)
        for key, high in beat.sent.items():
            if key in local_epochs:
                self.announced.announce(key, high, round_no)

    def gone(self, message: ResendGone, tracker: SeqTracker) -> int:
        return self.announced.gone(f"{message.camera}/{message.group}", message.ranges, tracker)

    def after_round(self, groups: Iterable[GroupView]) -> list[tuple[str, tuple[Range, ...]]]:
        """Resend requests due now, per group; refreshes the withheld verdict."""
        views = list(groups)
        due = []
        for view in views:
            ranges = self.announced.check(view.key, view.tracker, view.read_round)
            if ranges:
                due.append((view.key, ranges))
        self.health.set_withheld(self.announced.withheld({v.key: v.tracker for v in views}))
        return due

    def probe(self) -> ClockProbe | None:
        """A clock probe to send now, if the hub looks silent (at most one per interval)."""
        if not self._cameras or not self.health.wants_probe():
            return None
        nonce = secrets.token_hex(16)
        self.health.probe_sent(nonce)
        return ClockProbe(camera=self._cameras[0], nonce=nonce)

    def readded(self, key: str) -> None:
        self.health.readded(key)
        self.announced.forget_group(key)

    def save(self) -> None:
        self._data.save_sync_state_raw("health", self.health.to_dict())
        self._data.save_sync_state_raw("withheld", self.announced.to_dict())


__all__ = ["GroupView", "HubWatch", "WatchSettings"]
