"""A guard for the hub's concurrency rule: no event-loop callback of the hub may take 100 ms.

The rule (``docs/design/hub-concurrency.md``): the event loop never waits on disk or on MLS.
The guard wraps ``asyncio.events.Handle._run`` (every callback and every task step of a pure
asyncio loop goes through it) while a test runs, and records each callback of the *hub's* code
that kept the loop longer than ``limit``.

What is measured, and why:

- **The callback's own duration, not loop lag.** A lag probe (a timer that notes how late it
  fires) also counts the time the loop sat runnable while the OS ran something else; on a
  loaded 2-core machine that alone exceeds 100 ms now and then, and the guard would fail
  tests for the machine's load. Here each callback is timed from start to end, and the time
  its thread spent *runnable but not running* meanwhile (preempted: ``run_delay`` in
  ``/proc/self/task/<tid>/schedstat``, the scheduler's own account) is subtracted. What is
  left is computing plus waiting: a blocking ``fsync``, a lock held by a worker, an MLS call.
  That is exactly what the rule forbids. Where schedstat is missing the wall time is used.
- **Only the hub's callbacks.** A task step counts for the code of the task's coroutine, a
  plain callback for the code of its function: it is the hub's when that code lives under
  ``src/privastead/hub``. Test bodies, fixtures, aiohttp and an in-process relay are not held
  to the hub's rule (a test may build MLS groups synchronously while setting up).
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import CodeType
from typing import Any

HUB_SOURCE = Path(__file__).resolve().parents[2] / "src" / "privastead" / "hub"
LIMIT = 0.100  # seconds


@dataclass(frozen=True)
class SlowCallback:
    what: str
    own: float  # seconds, preemption removed
    wall: float


class _RunDelay:
    """This thread's time spent waiting on a run queue, in seconds (0.0 where unknown)."""

    def __init__(self) -> None:
        path = f"/proc/self/task/{threading.get_native_id()}/schedstat"
        try:
            self._fd: int | None = os.open(path, os.O_RDONLY)
        except OSError:
            self._fd = None

    def __call__(self) -> float:
        if self._fd is None:
            return 0.0
        fields = os.pread(self._fd, 128, 0).split()
        return int(fields[1]) / 1e9

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _code_of(callback: Any) -> CodeType | None:
    """The code a callback runs: a task step's coroutine, or the function itself."""
    while isinstance(callback, functools.partial):
        callback = callback.func
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        return getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
    function = getattr(callback, "__func__", callback)
    return getattr(function, "__code__", None)


def _describe(handle: asyncio.Handle) -> str:
    callback = handle._callback  # type: ignore[attr-defined]
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        code = getattr(coro, "cr_code", None)
        where = f" at {code.co_filename}:{code.co_firstlineno}" if code is not None else ""
        return f"a step of task {owner.get_name()} ({getattr(coro, '__qualname__', coro)}{where})"
    return repr(handle)


class LoopGuard:
    def __init__(self, roots: tuple[Path, ...] = (HUB_SOURCE,), limit: float = LIMIT) -> None:
        self.roots = tuple(str(r) + os.sep for r in roots)
        self.limit = limit
        self.slow: list[SlowCallback] = []
        self._thread = threading.get_ident()  # the loop runs in the thread that installs
        self._ours: dict[CodeType, bool] = {}
        self._delay = _RunDelay()

    def _guarded(self, callback: Any) -> bool:
        code = _code_of(callback)
        if code is None:
            return False
        known = self._ours.get(code)
        if known is None:
            known = self._ours[code] = code.co_filename.startswith(self.roots)
        return known

    def _wrap(self, run: Callable[[asyncio.Handle], None]) -> Callable[[asyncio.Handle], None]:
        guard = self

        def timed_run(handle: asyncio.Handle) -> None:
            if threading.get_ident() != guard._thread or not guard._guarded(handle._callback):  # type: ignore[attr-defined]
                run(handle)
                return
            delay0 = guard._delay()
            t0 = time.perf_counter()
            try:
                run(handle)
            finally:
                wall = time.perf_counter() - t0
                if wall > guard.limit:
                    own = wall - (guard._delay() - delay0)
                    if own > guard.limit:
                        guard.slow.append(SlowCallback(_describe(handle)[:300], own, wall))

        return timed_run

    @classmethod
    def installed(cls, **kwargs: Any) -> Iterator[LoopGuard]:
        """Active for the duration of the ``with`` (use through ``contextlib.contextmanager``)."""
        guard = cls(**kwargs)
        original = asyncio.events.Handle._run
        asyncio.events.Handle._run = guard._wrap(original)  # type: ignore[method-assign]
        try:
            yield guard
        finally:
            asyncio.events.Handle._run = original  # type: ignore[method-assign]
            guard._delay.close()

    def report(self) -> str:
        return "\n".join(
            f"  {s.own * 1000:.0f} ms (wall {s.wall * 1000:.0f} ms): {s.what}" for s in self.slow
        )


__all__ = ["LIMIT", "LoopGuard", "SlowCallback"]
