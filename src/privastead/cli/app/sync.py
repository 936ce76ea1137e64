"""`privastead-app sync`: fetch, decrypt and store everything waiting, then exit.

Like every command that reaches the relay, it also proposes fresh keys for this device's
groups once the last proposal is `--update-interval` old (post-compromise security), and
stops with a clear message (exit status 3) when the hub removed this device.
"""

from __future__ import annotations

import argparse

from privastead.cli.app.common import add_data_dir, data_dir
from privastead.client.defaults import DEFAULT_UPDATE_INTERVAL

EXIT_REMOVED = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--update-interval",
        type=float,
        default=DEFAULT_UPDATE_INTERVAL,
        help="least seconds between this device's key update proposals "
        f"(default {DEFAULT_UPDATE_INTERVAL:.0f})",
    )
    parser.epilog = (
        "Exit status: 0 done (also when the relay could not be reached: it says so), "
        "3 this device was removed from the hub, 1 an error."
    )
    add_data_dir(parser)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import sys

    from privastead.client.device import DataDir
    from privastead.client.sync import Syncer
    from privastead.clock import SystemClock

    async def main() -> int:
        syncer = Syncer(
            DataDir(data_dir(args)), clock=SystemClock(), update_interval=args.update_interval
        )
        try:
            handled = await syncer.sync_once()
        finally:
            await syncer.close()
        if syncer.removed:
            print(
                f"this device was removed from {syncer.info.hub_name!r}: pair it again with "
                "`privastead-app pair` to use it",
                file=sys.stderr,
            )
            return EXIT_REMOVED
        print(f"{handled} message(s) handled, {syncer.received} new")
        if syncer.relay_error:
            print(f"the relay could not be reached: {syncer.relay_error}", file=sys.stderr)
        return 0

    return asyncio.run(main())
