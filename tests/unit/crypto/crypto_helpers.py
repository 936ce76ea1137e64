"""Shared helpers for the crypto tests (imported by conftest and tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from privastead.crypto import Identity

PSK = bytes(range(32))


@dataclass
class Group:
    hub: Identity
    clients: list[Identity]
    gid: bytes
    paths: dict[bytes, Path]
