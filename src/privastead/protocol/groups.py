"""Names shared by hub and clients: the per-camera groups and the pairing members."""

from __future__ import annotations

GROUPS = ("events", "live", "control")
HUB_MEMBER = b"hub"
PAIRING_MEMBER = b"hub-pairing"
CLIENT_PAIRING_MEMBER = b"client-pairing"

__all__ = ["CLIENT_PAIRING_MEMBER", "GROUPS", "HUB_MEMBER", "PAIRING_MEMBER"]
