"""The relay's state, held by the application under one typed key (no module globals)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from privastead.clock import Clock
from privastead.errors import StorageError
from privastead.relay.auth import Authenticator
from privastead.relay.backend import Backend
from privastead.relay.budgets import Shares
from privastead.relay.config import RelayConfig
from privastead.relay.db import Database
from privastead.relay.metrics import Metrics
from privastead.relay.notify import Notifier
from privastead.relay.push import Pusher
from privastead.relay.revocations import Revocations
from privastead.relay.storage import Storage

if TYPE_CHECKING:
    from privastead.relay.backends.pg_leases import PgLeases
    from privastead.relay.backends.s3 import S3BlobStore
    from privastead.relay.blobs import BlobStore
    from privastead.relay.live import LiveHub


@dataclass
class RelayState:
    config: RelayConfig
    clock: Clock
    backend: Backend  # what ``storage`` and ``blobs`` are (opened and closed by the app)
    auth: Authenticator
    notifier: Notifier
    metrics: Metrics
    pusher: Pusher
    live: LiveHub
    revocations: Revocations
    shares: Shares
    leases: PgLeases | None = None  # PostgreSQL: the account shares counted by all processes
    websockets: set[web.WebSocketResponse] = field(default_factory=set)
    ready: bool = False
    in_flight: int = 0  # HTTP requests being handled (graceful shutdown waits for 0)
    background: set[asyncio.Task[None]] = field(default_factory=set)
    idle: asyncio.Event = field(default_factory=asyncio.Event)  # set when in_flight drops to 0

    @property
    def storage(self) -> Storage:
        return self.backend.storage

    @property
    def blobs(self) -> BlobStore | S3BlobStore:
        return self.backend.blobs

    @property
    def db(self) -> Database:
        """The SQLite database (the default backend); tests inject faults through it."""
        if self.backend.sqlite is None:
            raise StorageError("the relay runs on PostgreSQL, not SQLite")
        return self.backend.sqlite


STATE = web.AppKey("privastead_relay_state", RelayState)


def state_of(request: web.Request) -> RelayState:
    return request.app[STATE]


__all__ = ["STATE", "RelayState", "state_of"]
