"""`privastead-hub devices list | approve ID | reject ID | remove DEVICE | remove --unknown`.

`approve` / `reject` answer for a device that `privastead-hub pair` holds as pending (it knows
the code but gets nothing until the owner confirms it; compare the safety code and key
fingerprint `pair` and `devices list` show with the device's screen). `list` shows the pending
devices too, with any security alert about them.

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
    parser.add_argument(
        "action",
        choices=["list", "approve", "reject", "remove"],
        help="list; approve or reject a pending device; or remove a paired device",
    )
    parser.add_argument(
        "device", nargs="?", help="the device id (or name) to approve, reject or remove"
    )
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
    if args.action in ("approve", "reject"):
        if not args.device or args.unknown:
            print(f"privastead-hub: {args.action} which pending device? give its id or name")
            return 2
        decided = asyncio.run(_decide(config, args.action, args.device))
        if args.action == "approve":
            print(f"approved {decided['name']!r}: the pairing adds it now")
        else:
            print(f"rejected {decided['name']!r}: it gets nothing")
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


async def _decide(config: Any, action: str, device: str) -> dict[str, Any]:
    """Ask the running hub; without one, write the answer into ``devices.json``, where the
    `privastead-hub pair` that holds the device (and holds the groups' locks) reads it."""
    from privastead.clock import SystemClock
    from privastead.hub.admin.client import call_running_hub
    from privastead.hub.state.registry import DeviceRegistry

    result = await call_running_hub(config.hub.data_dir, action, {"device": device})
    if result is not None:
        return result
    registry = DeviceRegistry(config.hub.paths())
    decided = registry.decide(device, action == "approve", SystemClock().time())
    return {"pending_id": decided.pending_id, "name": decided.name}


async def _call(config: Any, op: str, call_args: dict[str, Any]) -> dict[str, Any]:
    """Ask the running hub; without one, open the groups here and do the same."""
    from privastead.clock import SystemClock
    from privastead.errors import StateLockedError
    from privastead.hub.admin.ops import HubAdmin, on_hub
    from privastead.hub.state.registry import DeviceRegistry
    from privastead.hub.state.service import state_holder

    async def here(admin: HubAdmin) -> dict[str, Any]:
        if op == "devices":
            return admin.devices()
        if op == "remove_unknown":
            return {"removed": await admin.remove_unknown()}
        removed = await admin.remove(str(call_args["device"]))
        return {"name": removed.name, "groups": list(removed.groups)}

    try:
        return await on_hub(config, "devices", op, call_args, local=here)
    except StateLockedError:
        if op != "devices":
            raise
        # A `privastead-hub pair` without a running hub holds the groups: the list of
        # devices (pending ones included) still comes from devices.json.
        paths = config.hub.paths()
        registry = DeviceRegistry(paths)
        now = SystemClock().time()
        holder = state_holder(paths) or "another privastead-hub process"
        return {
            "devices": {d: dev.to_json() for d, dev in registry.all().items()},
            "pending": {p: dev.to_json() for p, dev in registry.pending(now).items()},
            "unknown": {},
            "note": f"the groups are in use by {holder}: unknown members are not listed",
        }


def _print(report: dict[str, Any]) -> None:
    devices: dict[str, dict[str, Any]] = report.get("devices", {})
    unknown: dict[str, list[dict[str, Any]]] = report.get("unknown", {})
    pending: dict[str, dict[str, Any]] = report.get("pending", {})
    for pending_id, p in sorted(pending.items(), key=lambda kv: kv[1].get("requested_at", 0)):
        until = time.strftime("%H:%M:%S", time.localtime(p.get("expires_at", 0)))
        print(
            f"{pending_id}  {p.get('name', '')!r}  PENDING ({p.get('decision', 'waiting')}, "
            f"expires {until})  cameras: {', '.join(p.get('cameras', []))}  safety code: "
            f"{p.get('safety_code', '')}  key fingerprint: {p.get('fingerprint', '')}"
        )
        for alert in p.get("alerts", []):
            print(f"  {alert}")
    if pending:
        print("approve or reject with `privastead-hub devices approve|reject ID`")
    if report.get("note"):
        print(f"({report['note']})")
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
