"""Fixtures of the relay tests (the harness itself is in relay_harness.py)."""

from relay_harness import inproc, relay, shared_relay

__all__ = ["inproc", "relay", "shared_relay"]
