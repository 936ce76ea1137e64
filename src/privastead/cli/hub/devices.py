"""`privastead-hub devices list | remove DEVICE | remove --unknown`.

`list` shows every paired device (a device whose removal could not be proven is marked
"REMOVAL INCOMPLETE") and, per group, every leaf that belongs to no registered device
("unknown member"). `remove DEVICE` commits the device out of every group it is in (it decrypts
nothing sent afterwards), revokes its relay token, then checks the groups' member lists: if a
leaf of the device is still there, it exits with status 1 naming the group and keeps the device
listed as "removal incomplete". `remove --unknown` removes the unknown members the same way.
If `privastead-hub run` is running, it does all this itself (through its admin socket: it holds
the groups' state); otherwise this command opens the state directly.
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
    parser.add_argument(
        "--unknown",
        action="store_true",
        help="with remove: remove every group member that belongs to no paired device",
    )
    parser.epilog = (
        "Exit status: 0 done; 1 a removal could not be proven (the message names the group; "
        "the device stays listed as 'removal incomplete': fix the cause, run it again); 2 a "
        "usage or config error. A device that lost its state or sync (even of its control "
        "group) is re-added with `privastead-hub pair --replace DEVICE`."
    )


def run(args: argparse.Namespace) -> int:
    import asyncio

    from privastead.hub import config as hubconfig

    config = hubconfig.load(args.config)
    if args.action == "list":
        if args.device or args.unknown:
            print("privastead-hub: `devices list` takes no device and no --unknown")
            return 2
        _print(asyncio.run(_call(config, "devices", {})))
        return 0
    if args.unknown == bool(args.device):
        print("privastead-hub: remove which device? give its id or name, or --unknown")
        return 2
    if args.unknown:
        removed = asyncio.run(_call(config, "remove_unknown", {})).get("removed", {})
        if not removed:
            print("no unknown members: every group member is a paired device")
        for key, indexes in sorted(removed.items()):
            print(f"removed {len(indexes)} unknown member(s) from {key} (leaves {indexes})")
        return 0
    result = asyncio.run(_call(config, "remove", {"device": args.device}))
    groups = ", ".join(result.get("groups", [])) or "no group (it was in none)"
    print(
        f"removed device {result.get('name', args.device)!r} from {groups}; its relay token "
        "is revoked: it can no longer decrypt anything new"
    )
    return 0


async def _call(config: Any, op: str, call_args: dict[str, Any]) -> dict[str, Any]:
    """Ask the running hub; without one, open the groups here and do the same."""
    from privastead.hub.admin.client import call_running_hub
    from privastead.hub.admin.ops import HubAdmin
    from privastead.hub.state.service import open_hub

    result = await call_running_hub(config.hub.data_dir, op, call_args)
    if result is not None:
        return result
    async with open_hub(config) as hub:
        admin = HubAdmin.from_open_hub(hub)
        if op == "devices":
            return admin.devices()
        if op == "remove_unknown":
            return {"removed": await admin.remove_unknown()}
        removed = await admin.remove(str(call_args["device"]))
        return {"name": removed.name, "groups": list(removed.groups)}


def _print(report: dict[str, Any]) -> None:
    devices: dict[str, dict[str, Any]] = report.get("devices", {})
    unknown: dict[str, list[dict[str, Any]]] = report.get("unknown", {})
    if not devices:
        print("no paired devices (pair one with `privastead-hub pair`)")
    for device_id, d in sorted(devices.items(), key=lambda kv: kv[1].get("paired_at", 0)):
        cameras = sorted({k.split("/")[0] for k in d.get("leaves", {})})
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(d.get("paired_at", 0)))
        line = f"{device_id}  {d.get('name', '')!r}  paired {when}  cameras: {', '.join(cameras)}"
        status = d.get("status", "paired")
        if status == "removal_incomplete":
            line += f"  REMOVAL INCOMPLETE ({', '.join(d.get('incomplete', []))})"
        elif status == "removing":
            line += "  REMOVING (interrupted? run `devices remove` again)"
        print(line)
    for key, members in sorted(unknown.items()):
        for m in members:
            print(
                f"unknown member in {key}: leaf {m['index']}, key {m['signature_key'][:16]}... "
                "(belongs to no paired device; `privastead-hub devices remove --unknown`)"
            )
