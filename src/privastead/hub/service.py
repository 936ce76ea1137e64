"""Opening the hub's encrypted side from its config: outbox, groups, relay client.

``run``, ``pair``, ``devices`` and ``reset`` all go through :func:`open_hub`. The group state
files are locked by whoever opened them: while ``run`` holds them, ``pair`` and ``devices`` ask
it through its admin socket (``hub.admin``) instead of opening them here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from privastead.clock import SystemClock
from privastead.errors import ConfigError, StateLockedError
from privastead.hub.clip_journal import ClipJournal
from privastead.hub.config import HubConfig
from privastead.hub.delivery import Delivery
from privastead.hub.groups import HubGroups
from privastead.hub.outbox import Outbox
from privastead.relay.client import RelayClient

MB = 1024 * 1024


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
    data = config.hub.data_dir
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    outbox = Outbox(
        data / "outbox",
        quota_bytes=int(config.relay.outbox_quota_mb * MB),
        sent_retention_bytes=int(config.relay.resend_retention_mb * MB),
    )
    try:
        groups = HubGroups(data, outbox, [c.name for c in config.cameras])
    except StateLockedError:
        raise StateLockedError(
            f"the hub's state in {data} is in use by a `privastead-hub run` whose admin "
            "socket did not answer: stop it first"
        ) from None
    relay = RelayClient(config.relay.url, token)
    try:
        yield OpenHub(config, outbox, groups, relay)
    finally:
        groups.close()
        await relay.close()


@contextlib.asynccontextmanager
async def delivery_for(config: HubConfig) -> AsyncIterator[Delivery | None]:
    """The hub's delivery when ``[relay]`` is configured, else None (local recording only)."""
    if not config.relay.url:
        yield None
        return
    async with open_hub(config) as hub:
        delivery = Delivery(
            hub.groups,
            hub.outbox,
            hub.relay,
            clock=SystemClock(),
            heartbeat_interval=config.relay.heartbeat_interval,
            rotation_interval=config.relay.key_rotation_interval,
            keep_plaintext_clips=config.relay.keep_plaintext_clips,
            journal=ClipJournal(
                config.hub.data_dir / "open-clips",
                config.hub.clips,
                keep_plaintext=config.relay.keep_plaintext_clips,
            ),
        )
        await delivery.prepare()
        yield delivery


__all__ = ["OpenHub", "delivery_for", "open_hub"]
