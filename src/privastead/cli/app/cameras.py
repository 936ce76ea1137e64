"""`privastead-app cameras`: the cameras this device receives, and from which hub."""

from __future__ import annotations

import argparse

from privastead.cli.app.common import add_data_dir, data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_dir(parser)


def run(args: argparse.Namespace) -> int:
    from privastead.client.device import DataDir

    info = DataDir(data_dir(args)).load()
    for camera in info.cameras():
        groups = ", ".join(g.group for g in info.groups if g.camera == camera)
        print(f"{camera}  (groups: {groups}; relay {info.relay_url})")
    return 0
