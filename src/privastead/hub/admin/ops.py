"""What `privastead-hub pair|devices` do to the hub's groups, wherever the groups are open.

The same :class:`HubAdmin` serves both paths: inside the running hub (``hub.admin`` calls it for
requests on the admin socket, with the running hub's uploader) and directly from the CLI when no
hub runs (over :func:`~privastead.hub.state.service.open_hub`). So a pairing, a removal or a
``--replace`` behave the same whether `privastead-hub run` is up or not.

:func:`on_hub` chooses between the two for a command. Neither may be available for a moment:
a ``run`` that is starting holds the groups before its admin socket answers, another
``devices`` command holds them for a second. It asks again until one of the two works, and
fails at once (naming the holder) only for a holder that may keep them for long (a ``pair``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from privastead.clock import Clock, SystemClock
from privastead.errors import ConfigError, StateLockedError
from privastead.hub.admin.client import Progress, call_running_hub
from privastead.hub.admin.devices import (
    Removed,
    devices_report,
    find_device,
    remove_device,
    remove_unknown,
)
from privastead.hub.admin.pairing import HubPairing, Paired, PairingEvents
from privastead.hub.config import HubConfig
from privastead.hub.delivery.outbox import Outbox
from privastead.hub.delivery.uploader import Uploader
from privastead.hub.state.groups import HubGroups
from privastead.hub.state.pending import PendingDevice
from privastead.hub.state.registry import DeviceRegistry
from privastead.hub.state.service import OpenHub, open_hub, state_holder
from privastead.relay.client import RelayClient

MIN_TTL = 30.0
MAX_TTL = 3600.0
REACH_SECONDS = 30.0  # how long a command waits for a starting hub or a short-lived holder
REACH_POLL_SECONDS = 0.25


class HubAdmin:
    def __init__(
        self,
        config: HubConfig,
        groups: HubGroups,
        outbox: Outbox,
        relay: RelayClient,
        *,
        uploader: Uploader | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.groups = groups
        self.outbox = outbox
        self.relay = relay
        self.uploader = uploader
        self.clock = clock or SystemClock()
        self.stopping = False  # set when the hub shuts down: pending pairings then stay

    def _pairing(self, ttl: float) -> HubPairing:
        return HubPairing(
            self.groups,
            self.outbox,
            self.relay,
            self.config.relay.url,
            clock=self.clock,
            ttl=ttl,
            uploader=self.uploader,
            keep_on_stop=lambda: self.stopping,
        )

    def resumable(self) -> list[PendingDevice]:
        """Devices a previous process of this hub held pending, whose pairing can go on."""
        paths = self.groups.paths
        return [
            p
            for p in DeviceRegistry(paths).pending(self.clock.time()).values()
            if p.resumable and paths.pairing_state(p.pending_id).exists()
        ]

    async def resume(self, pending: PendingDevice, events: PairingEvents) -> Paired:
        """Go on waiting for the owner's answer about ``pending``, then add it."""
        ttl = max(pending.expires_at - self.clock.time(), 1.0)
        return await self._pairing(ttl).resume(pending, events)

    @classmethod
    def from_open_hub(cls, hub: OpenHub) -> HubAdmin:
        return cls(hub.config, hub.groups, hub.outbox, hub.relay)

    def devices(self) -> dict[str, Any]:
        """Every device record, the pending ones, and per group the leaves nobody owns."""
        return devices_report(self.groups, self.clock.time())

    async def decide(self, wanted: str, approve: bool) -> PendingDevice:
        """The owner's answer for a pending device (id or name); the pairing that holds it
        (in this process or another) reads it from the registry."""
        registry = DeviceRegistry(self.groups.paths)
        return await asyncio.to_thread(registry.decide, wanted, approve, self.clock.time())

    def _hub(self) -> OpenHub:
        return OpenHub(self.config, self.outbox, self.groups, self.relay)

    async def remove(self, wanted: str) -> Removed:
        return await remove_device(self._hub(), wanted, self.uploader)

    async def remove_unknown(self) -> dict[str, list[int]]:
        return await remove_unknown(self._hub(), self.uploader)

    def pairing_cameras(
        self, cameras: Sequence[str], replace: str | None
    ) -> tuple[str | None, list[str]]:
        """The device id being replaced (if any) and the cameras the code is for."""
        known = self.groups.cameras()
        if replace is not None:
            if cameras:
                raise ConfigError("--replace re-adds the device to the cameras it had: no --camera")
            device = find_device(self.groups.paths, replace)
            device_id = device.device_id
            had = sorted(set(device.cameras()) & set(known))
            if not had:
                raise ConfigError(
                    f"device {replace!r} is in no camera group of this hub: pair it anew "
                    "(`privastead-hub devices remove` it first)"
                )
            return device_id, had
        unknown = sorted(set(cameras) - set(known))
        if unknown:
            raise ConfigError(f"no camera named {', '.join(unknown)} (cameras: {', '.join(known)})")
        return None, list(cameras) or known

    async def pair(
        self,
        cameras: Sequence[str],
        ttl: float,
        replace: str | None,
        events: PairingEvents,
        *,
        short: bool = True,
    ) -> Paired:
        """Issue a code (``events.code`` shows it, with the short code unless ``short`` is
        False), wait for the client, hold it pending until the owner approves, add it (or
        re-add the device ``replace``)."""
        if not MIN_TTL <= ttl <= MAX_TTL:
            raise ConfigError(f"--ttl must be between {MIN_TTL:.0f} and {MAX_TTL:.0f} seconds")
        device_id, chosen = self.pairing_cameras(cameras, replace)
        await self.relay.me()  # fails early, with a clear message, on a bad URL or token
        pairing = self._pairing(ttl)
        code = await pairing.start(chosen, short=short)
        try:
            await events.code(code, pairing.short, chosen)
        except BaseException:  # nobody will see the code (the CLI went away)
            await pairing.abandon(code)
            raise
        return await pairing.finish(code, chosen, events, replace=device_id)


async def on_hub(
    config: HubConfig,
    command: str,
    op: str,
    args: dict[str, Any],
    *,
    local: Callable[[HubAdmin], Awaitable[dict[str, Any]]],
    progress: Progress | None = None,
    wait: float = REACH_SECONDS,
) -> dict[str, Any]:
    """``op`` done by the running hub, or ``local`` with the groups opened in this process.

    Raises ``StateLockedError`` (naming the holder) if neither is possible within ``wait``
    seconds, or at once if the holder is not a starting hub or a short-lived command."""
    paths = config.hub.paths()
    deadline = time.monotonic() + wait
    while True:
        result = await call_running_hub(paths, op, args, progress)
        if result is not None:
            return result
        async with contextlib.AsyncExitStack() as stack:
            try:
                hub = await stack.enter_async_context(open_hub(config, command))
            except StateLockedError:  # its message names the holder
                holder = state_holder(paths)
                soon = holder is None or holder.short_lived or holder.command == "run"
                if not soon or time.monotonic() >= deadline:
                    raise
            else:
                return await local(HubAdmin.from_open_hub(hub))
        await asyncio.sleep(REACH_POLL_SECONDS)


__all__ = ["MAX_TTL", "MIN_TTL", "HubAdmin", "on_hub"]
