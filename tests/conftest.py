"""Fixtures shared by every test."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from privastead.clock import FakeClock
from support.loop_guard import LIMIT, LoopGuard

# Hypothesis' default per-example deadline (200 ms) is a timing threshold: on a shared, loaded
# machine one GC pause or descheduled moment fails a correct example ("unreliable timings").
# Tests check behaviour; bench/ measures time. Tests that set their own settings still may.
settings.register_profile("privastead", deadline=None)
settings.load_profile("privastead")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def free_port() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield port


@pytest.fixture
def artifacts_dir() -> Path:
    """Where tests leave files worth looking at (screenshots, clips): ./artifacts/."""
    path = Path(__file__).resolve().parent.parent / "artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(autouse=True)
def hub_loop_guard() -> Iterator[LoopGuard]:
    """Fails a test in which any event-loop callback of the hub's own code ran over 100 ms
    (preemption by other processes not counted): the hub's concurrency rule,
    ``docs/design/hub-concurrency.md``. Test code and other parts are not held to it
    (``tests/support/loop_guard.py`` says how it measures and why)."""
    with contextlib.contextmanager(LoopGuard.installed)() as guard:
        yield guard
    if guard.slow:
        pytest.fail(
            f"event-loop callbacks of the hub over {LIMIT * 1000:.0f} ms (the loop must not "
            f"wait on disk or MLS):\n{guard.report()}",
            pytrace=False,
        )
