"""`privastead-app pair CODE` or `--qr FILE`: join a hub's cameras.

Prints the safety code, which must equal the one `privastead-hub pair` shows.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from privastead.cli.app.common import add_data_dir, data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("code", nargs="*", help="the pairing code (spaces and dashes optional)")
    parser.add_argument("--qr", type=Path, help="a PNG (screenshot/photo) of the pairing QR")
    parser.add_argument("--name", default=socket.gethostname()[:64], help="this device's name")
    add_data_dir(parser)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from privastead.client.device import DataDir
    from privastead.client.pairing import pair
    from privastead.clock import SystemClock
    from privastead.protocol.pairing_code import PairingCode
    from privastead.protocol.pairing_qr import decode_qr_png

    if args.qr is not None:
        code = decode_qr_png(args.qr)
    elif args.code:
        code = PairingCode.parse(" ".join(args.code))
    else:
        print("privastead-app: give the pairing code or --qr FILE", file=sys.stderr)
        return 2
    result = asyncio.run(pair(code, DataDir(data_dir(args)), args.name, clock=SystemClock()))
    cams = ", ".join(result.info.cameras())
    print(f"paired with {cams} as {args.name!r} (device {result.info.device_id})")
    print(f"safety code: {result.safety_code}")
    print("Check that the hub shows the same safety code.")
    return 0
