"""`privastead-hub devices list|remove ID`: who is paired, and removing a device.

Removal commits the device out of every group it is in (it decrypts nothing sent afterwards)
and revokes its relay token. If `privastead-hub run` is running, it does this itself (through
its admin socket: it holds the groups' state); otherwise this command opens the state directly.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("hub.toml"), help="hub.toml")
    parser.add_argument("action", choices=["list", "remove"], help="list, or remove a device")
    parser.add_argument("device", nargs="?", help="the device id (or name) to remove")
    parser.epilog = (
        "A device that lost its state or sync (even of its control group) is re-added with "
        "`privastead-hub pair --replace DEVICE`."
    )


def run(args: argparse.Namespace) -> int:
    import asyncio

    from privastead.hub import config as hubconfig

    config = hubconfig.load(args.config)
    if args.action == "list":
        _print(asyncio.run(_list(config)))
        return 0
    if not args.device:
        print("privastead-hub: which device? (see `privastead-hub devices list`)")
        return 2
    return asyncio.run(_remove(config, args.device))


async def _list(config: Any) -> dict[str, dict[str, Any]]:
    from privastead.hub.admin_client import call_running_hub
    from privastead.hub.groups import DeviceRegistry

    result = await call_running_hub(config.hub.data_dir, "devices")
    if result is not None:
        return dict(result.get("devices", {}))
    return DeviceRegistry(config.hub.data_dir).all()


def _print(devices: dict[str, dict[str, Any]]) -> None:
    if not devices:
        print("no paired devices (pair one with `privastead-hub pair`)")
    for device_id, d in sorted(devices.items(), key=lambda kv: kv[1].get("paired_at", 0)):
        cameras = sorted({k.split("/")[0] for k in d.get("members", {})})
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(d.get("paired_at", 0)))
        print(f"{device_id}  {d.get('name', '')!r}  paired {when}  cameras: {', '.join(cameras)}")


async def _remove(config: Any, wanted: str) -> int:
    from privastead.hub.admin_client import call_running_hub
    from privastead.hub.devices import remove_device
    from privastead.hub.service import open_hub

    result = await call_running_hub(config.hub.data_dir, "remove", {"device": wanted})
    if result is not None:
        name = str(result.get("name", wanted))
    else:
        async with open_hub(config) as hub:
            name = await remove_device(hub, wanted)
    print(f"removed device {name!r}: it can no longer decrypt anything new")
    return 0
