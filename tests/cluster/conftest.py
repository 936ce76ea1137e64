"""Fixtures of the relay-cluster tests: PostgreSQL, Garage and HAProxy as real processes.

Tests marked ``garage`` run after every other test of the session: ``make test`` builds
Garage in the background while the rest of the suite runs, and they wait for that build.
"""

from __future__ import annotations

import pytest

from support.garage import BUILD_WAIT, garage_cluster
from support.haproxy import relay_cluster
from support.postgres import pg_settings, postgres_factory, postgres_server

__all__ = ["garage_cluster", "pg_settings", "postgres_factory", "postgres_server", "relay_cluster"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move ``garage`` tests to the end (stable order otherwise), and give the first one the
    time to wait for the Garage build on top of its own."""
    del config
    later = [item for item in items if item.get_closest_marker("garage")]
    if not later:
        return
    items[:] = [item for item in items if not item.get_closest_marker("garage")] + later
    later[0].add_marker(pytest.mark.timeout(BUILD_WAIT + 300))
