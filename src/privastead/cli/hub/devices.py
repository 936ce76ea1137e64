"""`privastead-hub devices list|remove ID`: who is paired, and removing a device.

Removal commits the device out of every group it is in (it decrypts nothing sent afterwards)
and revokes its relay token. Stop `privastead-hub run` first (it holds the groups' state).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("hub.toml"), help="hub.toml")
    parser.add_argument("action", choices=["list", "remove"], help="list, or remove a device")
    parser.add_argument("device", nargs="?", help="the device id (or name) to remove")


def run(args: argparse.Namespace) -> int:
    from privastead.hub import config as hubconfig
    from privastead.hub.groups import DeviceRegistry

    config = hubconfig.load(args.config)
    registry = DeviceRegistry(config.hub.data_dir)
    if args.action == "list":
        devices = registry.all()
        if not devices:
            print("no paired devices (pair one with `privastead-hub pair`)")
        for device_id, d in sorted(devices.items(), key=lambda kv: kv[1].get("paired_at", 0)):
            cameras = sorted({k.split("/")[0] for k in d.get("members", {})})
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(d.get("paired_at", 0)))
            print(
                f"{device_id}  {d.get('name', '')!r}  paired {when}  cameras: {', '.join(cameras)}"
            )
        return 0
    if not args.device:
        print("privastead-hub: which device? (see `privastead-hub devices list`)")
        return 2
    import asyncio

    return asyncio.run(_remove(config, args.device))


async def _remove(config: object, wanted: str) -> int:
    from privastead.hub.config import HubConfig
    from privastead.hub.devices import remove_device
    from privastead.hub.service import open_hub

    assert isinstance(config, HubConfig)
    async with open_hub(config) as hub:
        name = await remove_device(hub, wanted)
    print(f"removed device {name!r}: it can no longer decrypt anything new")
    return 0
