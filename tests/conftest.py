"""Fixtures shared by every test."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from privastead.clock import FakeClock

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
