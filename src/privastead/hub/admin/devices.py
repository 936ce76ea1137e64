"""Removing a paired device (or leaves nobody owns), and resetting the hub's encrypted side.

Removal is one commit per group the device has a leaf in (queued through the group's sender
and uploaded before returning), then its relay token goes. It then **proves** its result: the
member list of every group the hub holds must have no leaf signing with one of the device's
keys. If one does (a commit failed, a camera left ``hub.toml``, the relay refused to revoke
the token), the command raises ``RemovalIncompleteError`` naming what still holds the device,
which stays in ``devices.json`` as ``removal_incomplete``; running the removal again retries.
While a removal runs the device is ``removing``: the control reader re-adds nobody in that
state, so the device cannot slip a fresh leaf in between the commits and the proof.

Leaves that belong to no registered device ("unknown members": from a failed or
interrupted pairing, or converted from an older ``devices.json`` that named leaves by
credential) are listed by ``devices list`` and removed by ``devices remove --unknown``, which
proves its result the same way. Reset deletes the hub's mailboxes on the relay and its local
MLS state, outbox and device list (recorded clips stay).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from dataclasses import dataclass
from typing import Any

from privastead.clock import SystemClock
from privastead.errors import (
    ConfigError,
    CryptoError,
    RelayError,
    RemovalIncompleteError,
    StorageError,
)
from privastead.hub.config import HubConfig
from privastead.hub.delivery.uploader import Uploader
from privastead.hub.state.datadir import HubDataDir
from privastead.hub.state.groups import HubGroup, HubGroups, unknown_members
from privastead.hub.state.registry import Device, DeviceRegistry, DeviceStatus
from privastead.hub.state.service import OpenHub, open_hub

log = logging.getLogger(__name__)


def find_device(data: HubDataDir, wanted: str) -> Device:
    """The one paired device with id (or name) ``wanted``."""
    devices = DeviceRegistry(data).all()
    matches = [d for d in devices.values() if wanted in (d.device_id, d.name)]
    if len(matches) != 1:
        raise ConfigError(
            f"no single device {wanted!r} (see `privastead-hub devices list`)"
            if not matches
            else f"several devices are called {wanted!r}: give the id"
        )
    return matches[0]


@dataclass(frozen=True)
class Removed:
    name: str
    groups: tuple[str, ...]  # the groups it was committed out of


def _holding(groups: HubGroups, keys: set[bytes]) -> list[str]:
    """The groups whose member lists still hold a leaf signing with one of ``keys``."""
    return [g.key for g in groups if any(m.signature_key in keys for m in g.members())]


async def remove_device(hub: OpenHub, wanted: str, uploader: Uploader | None = None) -> Removed:
    """Remove the device with id (or name) ``wanted`` and prove it gone.

    ``uploader``: the running hub's, when it is the running hub that removes."""
    device = find_device(hub.groups.paths, wanted)
    registry = DeviceRegistry(hub.groups.paths)
    # Durable writes leave the loop (the hub's concurrency rule).
    await asyncio.to_thread(registry.set_status, device.device_id, DeviceStatus.REMOVING)
    problems: dict[str, str] = {}
    done: list[str] = []
    touched: list[HubGroup] = []
    for key, leaf in sorted(device.leaves.items()):
        camera, name = key.split("/", 1)
        try:
            group = hub.groups.get(camera, name)
        except StorageError:
            problems[key] = "its camera is not in hub.toml (add it back, then remove again)"
            continue
        index = leaf.find(await group.worker.call(group.members))
        if index is None:
            continue  # gone already (an earlier, interrupted removal)
        try:
            await group.worker.call(group.remove_leaves, [index])
        except CryptoError as e:
            problems[key] = f"the removal commit failed: {e}"
            continue
        done.append(key)
        touched.append(group)
    uploader = uploader or Uploader(hub.outbox, hub.relay, clock=SystemClock())
    for group in touched:
        await uploader.drain(group.mailbox)
    try:
        await hub.relay.remove_device(device.relay_device)
    except RelayError as e:
        if getattr(e, "status", None) != 404:
            problems["relay"] = f"its relay token could not be revoked: {e}"
    # The proof, on fresh reads: every key the device ever had while this ran.
    current = DeviceRegistry(hub.groups.paths).get(device.device_id)
    keys = {leaf.signature_key for leaf in device.leaves.values()}
    if current is not None:
        keys |= {leaf.signature_key for leaf in current.leaves.values()}
    for key in await asyncio.to_thread(_holding, hub.groups, keys):
        problems.setdefault(key, "its member list still holds a leaf of the device")
    if problems:
        await asyncio.to_thread(
            registry.set_status,
            device.device_id,
            DeviceStatus.REMOVAL_INCOMPLETE,
            tuple(sorted(problems)),
        )
        detail = "; ".join(f"{k}: {v}" for k, v in sorted(problems.items()))
        raise RemovalIncompleteError(
            f"device {device.name!r} ({device.device_id}) is NOT fully removed: {detail}. It "
            "stays listed as 'removal incomplete'; fix the cause and run `privastead-hub "
            f"devices remove {device.device_id}` again"
        )
    await asyncio.to_thread(registry.remove, device.device_id)
    log.info("removed device %s from %s", device.device_id, ", ".join(done) or "no group")
    return Removed(device.name, tuple(done))


async def remove_unknown(hub: OpenHub, uploader: Uploader | None = None) -> dict[str, list[int]]:
    """Remove every leaf that belongs to no registered device; per group, the leaf indexes
    removed. Raises ``RemovalIncompleteError`` if a member list still holds one after."""
    registry = DeviceRegistry(hub.groups.paths)
    strays = await asyncio.to_thread(unknown_members, hub.groups, registry)
    removed: dict[str, list[int]] = {}
    problems: dict[str, str] = {}
    uploader = uploader or Uploader(hub.outbox, hub.relay, clock=SystemClock())
    for key, members in sorted(strays.items()):
        camera, name = key.split("/", 1)
        group = hub.groups.get(camera, name)
        indexes = sorted(m.index for m in members)
        try:
            await group.worker.call(group.remove_leaves, indexes)
        except CryptoError as e:
            problems[key] = f"the removal commit failed: {e}"
            continue
        removed[key] = indexes
        await uploader.drain(group.mailbox)
    keys = {m.signature_key for members in strays.values() for m in members}
    for key in await asyncio.to_thread(_holding, hub.groups, keys):
        problems.setdefault(key, "its member list still holds the leaf")
    if problems:
        detail = "; ".join(f"{k}: {v}" for k, v in sorted(problems.items()))
        raise RemovalIncompleteError(f"unknown members are NOT all removed: {detail}")
    return removed


def devices_report(groups: HubGroups, now: float) -> dict[str, Any]:
    """What `devices list` shows: every device record, the devices waiting for the owner's
    confirmation, and per group the unknown members."""
    registry = DeviceRegistry(groups.paths)
    return {
        "devices": {d: dev.to_json() for d, dev in registry.all().items()},
        "pending": {p: dev.to_json() for p, dev in registry.pending(now).items()},
        "unknown": {
            key: [{"index": m.index, "signature_key": m.signature_key.hex()} for m in members]
            for key, members in unknown_members(groups, registry).items()
        },
    }


async def reset_hub(config: HubConfig) -> None:
    data = config.hub.paths()
    async with open_hub(config, "reset") as hub:
        for device in DeviceRegistry(data).all().values():
            # The relay knows the device by its own id (the registry's key is the hub's).
            with contextlib.suppress(RelayError):
                await hub.relay.remove_device(device.relay_device or device.device_id)
        for group in hub.groups:
            try:
                await hub.relay.delete_mailbox(group.mailbox)
            except RelayError as e:
                if getattr(e, "status", None) != 404:
                    raise
    for directory in (data.mls, data.outbox):
        shutil.rmtree(directory, ignore_errors=True)
    for path in (data.groups_manifest, data.devices):
        path.unlink(missing_ok=True)


__all__ = [
    "Removed",
    "devices_report",
    "find_device",
    "remove_device",
    "remove_unknown",
    "reset_hub",
]
