"""How late the hub's event loop runs a timer: the lag every camera's packets feel.

A task sleeps ``interval`` (10 ms) again and again and notes how much later than asked it woke
up. That lateness is what any callback waiting on the loop suffers: a callback that blocks
(the concurrency rule forbids it, ``docs/design/hub-concurrency.md``), many callbacks at
once, or the OS not giving the process a core. The last ``window`` seconds of samples give the
quantiles the metrics endpoint exports (``privastead_hub_event_loop_lag_seconds``) and the
benchmark reads (``bench/bench_hub_loop.py``).
"""

from __future__ import annotations

import asyncio
import collections
import math
import time

INTERVAL = 0.010
WINDOW = 60.0


class LoopLag:
    def __init__(self, interval: float = INTERVAL, window: float = WINDOW) -> None:
        self.interval = interval
        self._samples: collections.deque[float] = collections.deque(
            maxlen=max(1, int(window / interval))
        )
        self.count = 0

    async def run(self) -> None:
        while True:
            # perf_counter, not loop.time(): uvloop's clock has millisecond steps.
            asked = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.add(max(0.0, time.perf_counter() - asked - self.interval))

    def add(self, lag: float) -> None:
        self._samples.append(lag)
        self.count += 1

    def quantiles(self, *qs: float) -> list[float]:
        """The ``qs`` quantiles (nearest rank) of the window's samples; NaN when empty."""
        ordered = sorted(self._samples)
        if not ordered:
            return [math.nan for _ in qs]
        return [ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] for q in qs]


__all__ = ["LoopLag"]
