"""`privastead-app sync`: fetch, decrypt and store everything waiting, then exit.

Like every command that reaches the relay, it also proposes fresh keys for this device's
groups once the last proposal is `--update-interval` old (post-compromise security), and
stops with a clear message (exit status 3) when the hub removed this device.
"""

from __future__ import annotations

import argparse
from typing import Any

from privastead.cli.app.common import RUNNING_NOTE, add_data_dir, ask_running, data_dir
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
        "3 this device was removed from the hub, 1 an error. " + RUNNING_NOTE
    )
    add_data_dir(parser)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import sys

    from privastead.client import queries
    from privastead.client.app import Client, ClientOptions
    from privastead.client.device import DataDir
    from privastead.clock import SystemClock

    async def once() -> dict[str, Any]:
        answer = await ask_running(args, "sync")
        if answer is not None:
            return answer
        options = ClientOptions(update_interval=args.update_interval)
        client = Client(DataDir(data_dir(args)), clock=SystemClock(), options=options)
        try:
            return await queries.sync(client)
        finally:
            await client.close()

    answer = asyncio.run(once())
    if answer["removed"]:
        print(
            f"this device was removed from {answer['hub_name']!r}: pair it again with "
            "`privastead-app pair` to use it",
            file=sys.stderr,
        )
        return EXIT_REMOVED
    print(f"{answer['handled']} message(s) handled, {answer['received']} new")
    if answer["relay_error"]:
        print(f"the relay could not be reached: {answer['relay_error']}", file=sys.stderr)
    return 0
