"""Opening the hub's encrypted side from its config: outbox, groups, relay client.

``run`` (through the hub's root, ``hub.app``), ``pair``, ``devices`` and ``reset`` all go
through :func:`open_hub`. The group state
files are locked by whoever opened them: while ``run`` holds them, ``pair`` and ``devices`` ask
it through its admin socket (``hub.admin``) instead of opening them here.

Whoever holds the locks says so in ``holder.json`` (its pid and command), so that a process
finding them taken knows whether to wait: a ``devices`` command lets go within a second, a
``run`` that is starting answers on its admin socket soon, a ``pair`` waiting for the owner
may hold them for minutes. Starting ``run`` while a ``devices`` command briefly holds the
state waits for it instead of failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from privastead.atomic_file import write_atomic
from privastead.clock import SystemClock
from privastead.errors import ConfigError, StateLockedError
from privastead.hub.config import HubConfig
from privastead.hub.delivery.outbox import Outbox
from privastead.hub.state.datadir import HubDataDir
from privastead.hub.state.groups import HubGroups
from privastead.hub.state.pending import PendingDevice
from privastead.hub.state.registry import DeviceRegistry
from privastead.relay.client import RelayClient

MB = 1024 * 1024
LOCK_POLL_SECONDS = 0.25
# Commands that hold the state for a moment only: worth waiting for.
SHORT_LIVED = frozenset({"devices", "reset"})
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StateHolder:
    """The process that holds the group state's locks, as it wrote in ``holder.json``."""

    pid: int
    command: str

    @property
    def short_lived(self) -> bool:
        return self.command in SHORT_LIVED

    def __str__(self) -> str:
        return f"a `privastead-hub {self.command}` (pid {self.pid})"


def state_holder(data: HubDataDir) -> StateHolder | None:
    """Who holds the locks, or None if nobody said (yet: it writes once it has them)."""
    try:
        raw = json.loads(data.holder.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict):
        return None
    pid, command = raw.get("pid"), raw.get("command")
    if not isinstance(pid, int) or not isinstance(command, str):
        return None
    return StateHolder(pid, command)


def _locked_message(data: HubDataDir, holder: StateHolder | None) -> str:
    where = f"the hub's state in {data.root} is in use by"
    if holder is None:
        return f"{where} another privastead-hub process: let it finish, then try again"
    if holder.command == "run":
        return (
            f"{where} {holder}, which is starting or stopping (its admin socket did not "
            "answer): wait for it, or stop it first"
        )
    return f"{where} {holder}: let it finish (or stop it), then try again"


async def _open_groups(
    data: HubDataDir,
    outbox: Outbox,
    cameras: list[str],
    wait: float,
    on_wait: Callable[[StateHolder | None], None] | None,
) -> HubGroups:
    """The groups, locked; waits up to ``wait`` seconds for a short-lived holder to let go."""
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            return HubGroups(data, outbox, cameras)
        except StateLockedError:
            holder = state_holder(data)
            worth_waiting = holder is None or holder.short_lived
            if not worth_waiting or time.monotonic() >= deadline:
                raise StateLockedError(_locked_message(data, holder)) from None
            if on_wait is not None and not told:
                on_wait(holder)
                told = True
        await asyncio.sleep(LOCK_POLL_SECONDS)


@dataclass
class OpenHub:
    config: HubConfig
    outbox: Outbox
    groups: HubGroups
    relay: RelayClient


@contextlib.asynccontextmanager
async def open_hub(
    config: HubConfig,
    command: str,
    *,
    wait: float = 0.0,
    on_wait: Callable[[StateHolder | None], None] | None = None,
) -> AsyncIterator[OpenHub]:
    """Open and lock the hub's groups for ``command`` (``run``, ``pair``, ...).

    Raises ``StateLockedError`` naming the holder if another process has them; with ``wait``,
    first waits that long for a holder that lets go by itself (``on_wait`` is told once)."""
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
    cameras = [c.name for c in config.cameras]
    groups = await _open_groups(data, outbox, cameras, wait, on_wait)
    me = StateHolder(os.getpid(), command)
    relay: RelayClient | None = None
    try:
        write_atomic(data.holder, json.dumps({"pid": me.pid, "command": me.command}).encode())
        _forget_orphans(data)
        relay = RelayClient(config.relay.url, token)
        yield OpenHub(config, outbox, groups, relay)
    finally:
        if state_holder(data) == me:
            data.holder.unlink(missing_ok=True)
        groups.close()
        if relay is not None:
            await relay.close()


def _forget_orphans(data: HubDataDir) -> None:
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


__all__ = ["OpenHub", "StateHolder", "open_hub", "state_holder"]
