"""Opening the hub's encrypted side from its config: outbox, groups, relay client.

``run`` (through the hub's root, ``hub.app``), ``pair``, ``devices`` and ``reset`` all go
through :func:`open_hub`. The group state
files are locked by whoever opened them: while ``run`` holds them, ``pair`` and ``devices`` ask
it through its admin socket (``hub.admin``) instead of opening them here.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from privastead.clock import SystemClock
from privastead.errors import ConfigError, StateLockedError
from privastead.hub.config import HubConfig
from privastead.hub.delivery.outbox import Outbox
from privastead.hub.state.groups import HubGroups
from privastead.hub.state.pending import PendingDevice
from privastead.hub.state.registry import DeviceRegistry
from privastead.relay.client import RelayClient

MB = 1024 * 1024
log = logging.getLogger(__name__)


@dataclass
class OpenHub:
    config: HubConfig
    outbox: Outbox
    groups: HubGroups
    relay: RelayClient


@contextlib.asynccontextmanager
async def open_hub(config: HubConfig) -> AsyncIterator[OpenHub]:
    if not config.relay.url:
        raise ConfigError("hub.toml has no [relay] url: set it to pair clients and send events")
    token = config.relay.token()
    data = config.hub.paths()
    data.prepare()
    outbox = Outbox(
        data.outbox,
        quota_bytes=int(config.relay.outbox_quota_mb * MB),
        sent_retention_bytes=int(config.relay.resend_retention_mb * MB),
    )
    try:
        groups = HubGroups(data, outbox, [c.name for c in config.cameras])
    except StateLockedError:
        raise StateLockedError(
            f"the hub's state in {data.root} is in use by a `privastead-hub run` whose admin "
            "socket did not answer: stop it first"
        ) from None

    # Whoever opens the groups holds their locks: no other process holds a pairing now. A
    # pending device whose pairing group was saved waits for `run` to resume it; one without
    # (its state is gone) is dropped, or `devices approve` would answer for nothing.
    def resumable(pending: PendingDevice) -> bool:
        return pending.resumable and data.pairing_state(pending.pending_id).exists()

    registry = DeviceRegistry(data)
    for orphan in registry.forget_pending(SystemClock().time(), keep=resumable):
        log.warning(
            "pairing of device %r was interrupted (the process holding it ended) before the "
            "owner confirmed it: it got nothing; run `privastead-hub pair` again",
            orphan.name,
        )
    waiting = set(registry.pending(SystemClock().time()))
    for state in data.pairing.glob("*.mls*") if data.pairing.is_dir() else []:
        if state.name.split(".", 1)[0] not in waiting:
            state.unlink(missing_ok=True)  # a pairing group nobody waits on any more
    relay = RelayClient(config.relay.url, token)
    try:
        yield OpenHub(config, outbox, groups, relay)
    finally:
        groups.close()
        await relay.close()


__all__ = ["OpenHub", "open_hub"]
