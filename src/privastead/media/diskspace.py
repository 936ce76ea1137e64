"""The hub's disk, watched: ok, low (make room) or full (recording paused), with hysteresis.

``DiskWatcher.check`` reads free and total bytes (``statvfs``, injectable) and classifies:
``low`` below the retention rules' ``min_free``, ``full`` below ``floor`` bytes (what a
segment, an event clip and the MLS state's next write need at least), ``ok`` again only once
free space is 10 % above ``min_free``, so a disk near the line does not flap. ``run`` checks
every ``interval`` seconds of an injected clock and calls back on every change and, while not
ok, after every check (the caller makes room then). The state is what the hub reports to its
owner as a health state.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from privastead.clock import SYSTEM_CLOCK, Clock
from privastead.media.retention import RetentionRules

DiskState = Literal["ok", "low", "full"]
MB = 1 << 20


class _StatVfs(Protocol):
    @property
    def f_frsize(self) -> int: ...
    @property
    def f_blocks(self) -> int: ...
    @property
    def f_bavail(self) -> int: ...


@dataclass(frozen=True)
class DiskStatus:
    state: DiskState
    free: int  # bytes an unprivileged writer may still use
    total: int
    detail: str


class DiskWatcher:
    def __init__(
        self,
        path: Path,
        rules: RetentionRules,
        *,
        floor: int = 64 * MB,
        statvfs: Callable[[Path], _StatVfs] | None = None,
    ) -> None:
        self.path, self.rules, self.floor = path, rules, floor
        self._statvfs: Callable[[Path], _StatVfs] = statvfs or os.statvfs
        self.status: DiskStatus | None = None

    def check(self) -> DiskStatus:
        st = self._statvfs(self.path)
        free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
        low = self.rules.min_free(total)
        previous = self.status.state if self.status is not None else "ok"
        if free < self.floor:
            state: DiskState = "full"
        elif free < low or (previous != "ok" and free < low * 1.1):
            state = "low"
        else:
            state = "ok"
        detail = f"{free / 1e9:.2f} GB free of {total / 1e9:.2f} GB on {self.path}"
        if state == "full":
            detail += ": recording paused until room is made"
        elif state == "low":
            detail += f": below the {low / 1e9:.2f} GB to keep free, deleting old recordings"
        self.status = DiskStatus(state, free, total, detail)
        return self.status

    async def run(
        self,
        on_status: Callable[[DiskStatus, bool], Awaitable[None]],
        *,
        interval: float = 10.0,
        clock: Clock = SYSTEM_CLOCK,
        stop: asyncio.Event | None = None,
    ) -> None:
        """Check every ``interval`` s until ``stop``; ``on_status(status, changed)`` after each
        check that changed the state or found the disk not ok."""
        while stop is None or not stop.is_set():
            before = self.status.state if self.status is not None else None
            status = await asyncio.to_thread(self.check)
            changed = status.state != before
            if changed or status.state != "ok":
                await on_status(status, changed)
            await clock.sleep(interval)


__all__ = ["MB", "DiskState", "DiskStatus", "DiskWatcher"]
