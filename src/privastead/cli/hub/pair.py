"""`privastead-hub pair [--camera NAME ...]`: pair a client (phone, `privastead-app`).

Shows the pairing QR in the terminal, writes it as a PNG and prints the typed code; then waits
(until the code expires) for the client, adds it to the cameras' groups and prints the safety
code, which must equal the one the client shows. Stop `privastead-hub run` first: pairing
changes the groups' MLS state, which the running hub holds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("hub.toml"), help="hub.toml")
    parser.add_argument(
        "--camera",
        action="append",
        default=[],
        metavar="NAME",
        help="a camera to share (repeat for several; default: all cameras)",
    )
    parser.add_argument(
        "--png", type=Path, help="where to write the QR code (default: DATA_DIR/pairing-qr.png)"
    )
    parser.add_argument(
        "--ttl", type=float, default=600.0, help="seconds until the code expires (default 600)"
    )
    parser.add_argument("--no-qr", action="store_true", help="do not draw the QR in the terminal")
    parser.epilog = (
        "On the client: `privastead-app pair CODE` or `privastead-app pair --qr FILE`. Compare "
        "the safety codes both sides print."
    )


def run(args: argparse.Namespace) -> int:
    import asyncio

    from privastead.hub import config as hubconfig

    config = hubconfig.load(args.config)
    known = [c.name for c in config.cameras]
    cameras = args.camera or known
    unknown = sorted(set(cameras) - set(known))
    if unknown:
        print(
            f"privastead-hub: no camera named {', '.join(unknown)} in {args.config} "
            f"(cameras: {', '.join(known)})",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(_pair(config, cameras, args))


async def _pair(config: object, cameras: list[str], args: argparse.Namespace) -> int:
    from privastead.clock import SystemClock
    from privastead.hub.config import HubConfig
    from privastead.hub.pairing import HubPairing
    from privastead.hub.service import open_hub
    from privastead.protocol.pairing_qr import qr_terminal, save_qr_png

    assert isinstance(config, HubConfig)
    async with open_hub(config) as hub:
        await hub.relay.me()  # fails early, with a clear message, on a bad URL or token
        pairing = HubPairing(
            hub.groups, hub.outbox, hub.relay, config.relay.url, clock=SystemClock(), ttl=args.ttl
        )
        code = await pairing.start(cameras)
        png = args.png or config.hub.data_dir / "pairing-qr.png"
        save_qr_png(code, png)
        if not args.no_qr:
            print(qr_terminal(code))
        print(f"Pairing {', '.join(cameras)}. Scan the QR ({png}) or type this code:")
        print(code.to_text())
        print(f"The code expires in {args.ttl / 60:.0f} min. Waiting for the client...", flush=True)

        def show(safety: str) -> None:
            print(f"safety code: {safety}", flush=True)

        paired = await pairing.finish(code, cameras, show)
        png.unlink(missing_ok=True)
        print(
            f"paired device {paired.device_name!r} (id {paired.device_id}); check that it "
            "shows the same safety code"
        )
    return 0
