"""`privastead-app devices`: this device's pairing (the hub lists and removes devices)."""

from __future__ import annotations

import argparse

from privastead.cli.app.common import RUNNING_NOTE, add_data_dir, ask_running, data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = RUNNING_NOTE
    add_data_dir(parser)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from privastead.client import queries
    from privastead.client.device import DataDir

    answer = asyncio.run(ask_running(args, "devices"))
    if answer is None:
        answer = queries.devices_closed(DataDir(data_dir(args)))
    print(
        f"this device: {answer['device_name']!r} (id {answer['device_id']}), "
        f"safety code {answer['safety_code']}"
    )
    for group in answer["groups"]:
        if "error" in group:
            print(f"  {group['key']}: {group['error']}")
        else:
            print(f"  {group['key']}: {group['members']} device(s), epoch {group['epoch']}")
    print("To remove a device, run `privastead-hub devices remove ID` on the hub.")
    return 0
