"""`privastead-app resync`: ask the hub to re-add this device to groups it lost sync with.

The request travels in the camera's ``control`` group (the MLS sender proves it is this
device); the hub replaces this device's leaf in the named groups with fresh keys, and no other
device needs to pair again. Run it when `privastead-app status` reports a desync.

If the ``control`` group itself is lost or desynced (the request cannot be authenticated), the
owner runs `privastead-hub pair --replace DEVICE` on the hub and this device joins again with
`privastead-app resync --code` (it asks for the code without echo; or `--code-file FILE`, or
`--qr FILE`): fresh keys in every group of every camera it had, the same device id, and nobody
else re-pairs. The owner confirms the device on the hub first, as for a new pairing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from privastead.cli.app.code_input import add_code_source, apply_insecure_http
from privastead.cli.app.common import RUNNING_NOTE, add_data_dir, ask_running, data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = RUNNING_NOTE + " (With --code or --qr it needs that process stopped.)"
    add_data_dir(parser)
    parser.add_argument("--camera", help="the camera (default: every paired camera)")
    parser.add_argument(
        "--group",
        action="append",
        choices=("events", "live"),
        help="group to re-join (repeatable; default: events and live)",
    )
    parser.add_argument(
        "--wait", type=float, default=60.0, help="seconds to wait for the hub (default 60)"
    )
    parser.add_argument(
        "--code",
        nargs="?",
        const="",
        default=None,
        metavar="CODE",
        help="re-join every group with fresh keys, with a code from `privastead-hub pair "
        "--replace DEVICE` (needed when the control group itself is out of sync); give no "
        "value to be asked for it without echo (a value is visible to other local users)",
    )
    parser.add_argument("--qr", type=Path, help="the same code as a QR picture (PNG)")
    add_code_source(parser)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from privastead.client import queries
    from privastead.client.app import Client
    from privastead.client.device import DataDir
    from privastead.clock import SystemClock

    if args.code is not None or args.qr or args.code_file is not None:
        return _rejoin(args)
    groups = args.group or ["events", "live"]

    async def main() -> int:
        request = {"camera": args.camera, "groups": groups, "wait": args.wait}
        answer = await ask_running(args, "resync", request)
        if answer is None:
            client = Client(DataDir(data_dir(args)), clock=SystemClock())
            try:
                answer = await queries.resync(client, args.camera, groups, args.wait)
            finally:
                await client.close()
        if answer["missing"]:
            print(
                f"the hub did not re-add {', '.join(answer['missing'])} in time: is "
                "`privastead-hub run` running? Try again, or pair this device again"
            )
            return 1
        print(f"re-added to {', '.join(answer['wanted'])}")
        return 0

    return asyncio.run(main())


def _rejoin(args: argparse.Namespace) -> int:
    import asyncio

    from privastead.cli.app.pair import obtain_code, show_waiting
    from privastead.client.device import DataDir
    from privastead.client.pairing import ClientPaired, rejoin
    from privastead.clock import SystemClock

    apply_insecure_http(args)
    data = DataDir(data_dir(args))

    async def main() -> ClientPaired:
        clock = SystemClock()
        known = data.load().relay_url if data.paired() else None
        code = await obtain_code(args, data, clock, args.code or None, known)
        waiting = show_waiting(code.expires)
        return await rejoin(code, data, clock=clock, wait=args.wait, on_waiting=waiting)

    result = asyncio.run(main())
    groups = ", ".join(g.key for g in result.info.groups)
    print(f"re-joined {groups} as device {result.info.device_id} with fresh keys")
    print(f"safety code: {result.safety_code}")
    print("Check that the hub shows the same safety code.")
    return 0
