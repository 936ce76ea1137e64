"""`privastead-app devices`: this device's pairing (the hub lists and removes devices)."""

from __future__ import annotations

import argparse

from privastead.cli.app.common import add_data_dir, data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_dir(parser)


def run(args: argparse.Namespace) -> int:
    from privastead.client.device import DataDir
    from privastead.crypto import Identity

    data = DataDir(data_dir(args))
    info = data.load()
    print(
        f"this device: {info.device_name!r} (id {info.device_id}), safety code {info.safety_code}"
    )
    for entry in info.groups:
        try:
            with Identity.open(data.mls / entry.state) as ident:
                members = len(ident.members(entry.group_id)) - 1  # without the hub
                epoch = ident.epoch(entry.group_id)
            print(f"  {entry.key}: {members} device(s), epoch {epoch}")
        except Exception as e:
            print(f"  {entry.key}: {type(e).__name__}")
    print("To remove a device, run `privastead-hub devices remove ID` on the hub.")
    return 0
