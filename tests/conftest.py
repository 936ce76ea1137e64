"""Fixtures shared by every test."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from privastead import ports
from privastead.clock import FakeClock
from support.garage import BUILD_WAIT, garage_cluster
from support.loop_guard import LIMIT, LoopGuard
from support.postgres import pg_settings, postgres_factory, postgres_server

# Session servers of the cluster tests and of the relay's tests on the PostgreSQL backend:
# registered here, once, so that both directories share one PostgreSQL and one Garage.
__all__ = ["garage_cluster", "pg_settings", "postgres_factory", "postgres_server"]

# Hypothesis' default per-example deadline (200 ms) is a timing threshold: on a shared, loaded
# machine one GC pause or descheduled moment fails a correct example ("unreliable timings").
# Tests check behaviour; bench/ measures time. Tests that set their own settings still may.
settings.register_profile("privastead", deadline=None)
settings.load_profile("privastead")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move ``garage`` tests to the end (stable order otherwise), and give the first one the
    time to wait for the Garage build on top of its own: ``make test`` builds Garage in the
    background while the rest of the suite runs."""
    del config
    later = [item for item in items if item.get_closest_marker("garage")]
    if not later:
        return
    items[:] = [item for item in items if not item.get_closest_marker("garage")] + later
    later[0].add_marker(pytest.mark.timeout(BUILD_WAIT + 300))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, below the ephemeral range
    (``privastead.ports.free_port``)."""
    return ports.free_port()


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
