"""Fixtures of the relay tests (the harness itself is in relay_harness.py)."""

from relay_harness import any_relay, inproc, relay, shared_relay

__all__ = ["any_relay", "inproc", "relay", "shared_relay"]
