"""Fixtures of the relay-cluster tests: HAProxy with relay processes. PostgreSQL and Garage
(shared with the relay's process tests, which run on both storage backends) and the order of
tests marked ``garage`` are in the root ``conftest.py``."""

from __future__ import annotations

from support.haproxy import relay_cluster

__all__ = ["relay_cluster"]
