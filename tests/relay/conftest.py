"""Fixtures of the relay tests (the harness itself is in relay_harness.py)."""

from relay_harness import inproc, relay

__all__ = ["inproc", "relay"]
