"""Removing a paired device, and resetting the hub's encrypted side.

Removal is one commit per group the device is in (queued through the group's sender and
uploaded before returning), then its relay token goes: it can neither decrypt nor fetch
anything new. Reset deletes the hub's mailboxes on the relay and its local MLS state, outbox
and device list (recorded clips stay).
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

from privastead.clock import SystemClock
from privastead.errors import ConfigError, RelayError
from privastead.hub.config import HubConfig
from privastead.hub.groups import DeviceRegistry
from privastead.hub.service import OpenHub, open_hub
from privastead.hub.uploader import Uploader


def find_device(data_dir: Path, wanted: str) -> tuple[str, dict[str, Any]]:
    """The one paired device with id (or name) ``wanted``: its id and record."""
    devices = DeviceRegistry(data_dir).all()
    matches = [d for d, v in devices.items() if wanted in (d, v.get("name"))]
    if len(matches) != 1:
        raise ConfigError(
            f"no single device {wanted!r} (see `privastead-hub devices list`)"
            if not matches
            else f"several devices are called {wanted!r}: give the id"
        )
    return matches[0], devices[matches[0]]


async def remove_device(hub: OpenHub, wanted: str, uploader: Uploader | None = None) -> str:
    """Remove the device with id (or name) ``wanted``; returns its name.

    ``uploader``: the running hub's, when it is the running hub that removes."""
    device_id, record = find_device(hub.groups.data_dir, wanted)
    mailboxes = []
    for key, member in record.get("members", {}).items():
        camera, name = key.split("/")
        group = hub.groups.get(camera, name)
        identity = bytes.fromhex(member)
        if any(m.identity == identity for m in group.identity.members(group.group_id)):
            group.remove(identity)
        mailboxes.append(group.mailbox)
    uploader = uploader or Uploader(hub.outbox, hub.relay, clock=SystemClock())
    for mailbox in mailboxes:
        await uploader.drain(mailbox)
    try:
        await hub.relay.remove_device(str(record.get("relay_device", "")))
    except RelayError as e:
        if getattr(e, "status", None) != 404:
            raise
    # A fresh read: others (pairing, the control reader) may have written it during the awaits.
    DeviceRegistry(hub.groups.data_dir).remove(device_id)
    return str(record.get("name", device_id))


async def reset_hub(config: HubConfig) -> None:
    data = config.hub.data_dir
    async with open_hub(config) as hub:
        for device_id, record in DeviceRegistry(data).all().items():
            # The relay knows the device by its own id (the registry's key is the hub's).
            with contextlib.suppress(RelayError):
                await hub.relay.remove_device(str(record.get("relay_device") or device_id))
        for group in hub.groups:
            try:
                await hub.relay.delete_mailbox(group.mailbox)
            except RelayError as e:
                if getattr(e, "status", None) != 404:
                    raise
    for name in ("mls", "outbox"):
        shutil.rmtree(data / name, ignore_errors=True)
    for name in ("groups.json", "devices.json"):
        (data / name).unlink(missing_ok=True)


__all__ = ["find_device", "remove_device", "reset_hub"]
