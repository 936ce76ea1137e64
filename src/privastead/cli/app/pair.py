"""`privastead-app pair [--qr FILE]`: join a hub's cameras.

Asks for the code `privastead-hub pair` shows (the short one, like ``417-acorn-shiny``, or
the long one), without echo and never from the command line (see ``code_input``), or reads the
QR from a picture. While the hub's owner confirms the device, this shows the safety code and
the device's key fingerprint, which the hub shows too; then it reports the outcome: paired,
rejected, or expired.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from privastead.cli.app.code_input import add_code_source, apply_insecure_http, read_code
from privastead.cli.app.common import add_data_dir, data_dir

if TYPE_CHECKING:
    from privastead.client.device import DataDir
    from privastead.clock import Clock
    from privastead.protocol.pairing_code import PairingCode


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "code",
        nargs="*",
        help="the pairing code; better left out (then it is asked for without echo): "
        "arguments are visible to other local users",
    )
    parser.add_argument("--qr", type=Path, help="a PNG (screenshot/photo) of the pairing QR")
    parser.add_argument("--name", default=socket.gethostname()[:64], help="this device's name")
    add_code_source(parser)
    add_data_dir(parser)
    parser.epilog = (
        "Exit status: 0 paired; 1 refused (rejected or not confirmed in time, wrong code, "
        "burned code); 2 a usage error."
    )


def show_waiting(expires: float) -> Callable[[str, str], None]:
    """The ``on_waiting`` callback of the CLI: what to compare while the owner decides."""

    def waiting(safety: str, fingerprint: str) -> None:
        until = time.strftime("%H:%M:%S", time.localtime(expires))
        print(f"safety code: {safety}")
        print(f"device key fingerprint: {fingerprint}")
        print(
            "Waiting for the hub's owner to confirm this device (compare both on the hub; "
            f"until {until})...",
            flush=True,
        )

    return waiting


def run(args: argparse.Namespace) -> int:
    import asyncio

    from privastead.client.device import DataDir
    from privastead.client.pairing import pair
    from privastead.clock import SystemClock

    apply_insecure_http(args)
    data = DataDir(data_dir(args))
    if data.paired():
        print(f"privastead-app: {data.root} is already paired; use another --data-dir")
        return 2

    async def main() -> int:
        clock = SystemClock()
        code = await obtain_code(args, data, clock, " ".join(args.code) or None)
        waiting = show_waiting(code.expires)
        result = await pair(code, data, args.name, clock=clock, on_waiting=waiting)
        cams = ", ".join(result.info.cameras())
        print(f"approved: paired with {cams} as {args.name!r} (device {result.info.device_id})")
        print(f"safety code: {result.safety_code}")
        return 0

    return asyncio.run(main())


async def obtain_code(
    args: argparse.Namespace,
    data: DataDir,
    clock: Clock,
    given: str | None,
    known_relay: str | None = None,
) -> PairingCode:
    """The hub's pairing code: from the QR, the long code, or the short code's exchange
    (on ``known_relay``, a paired device's relay, unless ``--relay`` says otherwise)."""
    from privastead.cli.app.code_input import relay_url
    from privastead.client.short_code import fetch_pairing_code
    from privastead.protocol.pairing_code import PairingCode
    from privastead.protocol.pairing_qr import decode_qr_png
    from privastead.protocol.short_code import looks_short, parse

    if args.qr is not None:
        return decode_qr_png(args.qr)
    text = read_code(args, given)
    if not looks_short(text):
        return PairingCode.parse(text)
    short = parse(text)
    url, asked = relay_url(args, known_relay or data.remembered_relay_url())
    print(f"exchanging the short code with the hub through {url}...", file=sys.stderr)
    code = await fetch_pairing_code(url, short, clock=clock)
    if asked:
        data.remember_relay_url(url)
    return code
