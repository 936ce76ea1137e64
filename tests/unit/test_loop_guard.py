"""The loop guard of the test suite (tests/support/loop_guard.py), on a real asyncio loop: a
callback of the guarded code that blocks for 150 ms is reported (task steps and plain
callbacks), one that blocks for 20 ms is not, and code outside the guarded tree never is."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from support.loop_guard import LoopGuard

HERE = Path(__file__).resolve().parent


def _block(seconds: float) -> None:
    time.sleep(seconds)  # blocked, not preempted: the guard must count it


async def _blocking_task(seconds: float) -> None:
    await asyncio.sleep(0)
    _block(seconds)


def _run(roots: tuple[Path, ...]) -> LoopGuard:
    with contextlib.contextmanager(LoopGuard.installed)(roots=roots) as guard:
        loop = asyncio.new_event_loop()
        try:
            loop.call_soon(_block, 0.15)
            loop.call_soon(_block, 0.02)
            loop.run_until_complete(_blocking_task(0.15))
            loop.run_until_complete(_blocking_task(0.02))
        finally:
            loop.close()
    return guard


def test_slow_callbacks_of_the_guarded_code_are_reported() -> None:
    guard = _run((HERE,))
    assert len(guard.slow) == 2, guard.report()
    assert all(s.own > 0.1 for s in guard.slow)
    assert any("_block" in s.what for s in guard.slow)
    assert any("_blocking_task" in s.what for s in guard.slow)


def test_code_outside_the_guarded_tree_is_not_held_to_the_rule() -> None:
    assert _run((HERE / "nowhere",)).slow == []
