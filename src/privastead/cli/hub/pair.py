"""`privastead-hub pair [--camera NAME ...] | --replace DEVICE`: pair a client.

Shows the pairing QR in the terminal, writes it as a PNG and prints the typed code; then waits
(until the code expires) for the client, adds it to the cameras' groups and prints the safety
code, which must equal the one the client shows. If `privastead-hub run` is running, the running
hub does this in its own process (it holds the groups' state) through its admin socket; the
cameras keep recording meanwhile.

`--replace DEVICE` re-adds a device whose state is lost or desynced, even its `control` group
(where `privastead-app resync` alone cannot help): the code is for that device only; on the
device run `privastead-app resync --code CODE`. Its stale leaves are removed from every group
of every camera it had and its fresh ones added; nobody else re-pairs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


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
        "--replace",
        metavar="DEVICE",
        help="re-add this paired device (id or name) with fresh keys in every group of the "
        "cameras it had; on the device: `privastead-app resync --code CODE`",
    )
    parser.add_argument(
        "--png", type=Path, help="where to write the QR code (default: DATA_DIR/pairing-qr.png)"
    )
    parser.add_argument(
        "--ttl", type=float, default=600.0, help="seconds until the code expires (default 600)"
    )
    parser.add_argument("--no-qr", action="store_true", help="do not draw the QR in the terminal")
    parser.epilog = (
        "On the client: `privastead-app pair CODE` or `privastead-app pair --qr FILE` "
        "(with --replace: `privastead-app resync --code CODE`). Compare the safety codes both "
        "sides print. Works with `privastead-hub run` running or stopped."
    )


def run(args: argparse.Namespace) -> int:
    import asyncio

    from privastead.hub import config as hubconfig

    config = hubconfig.load(args.config)
    known = [c.name for c in config.cameras]
    unknown = sorted(set(args.camera) - set(known))
    if unknown:
        print(
            f"privastead-hub: no camera named {', '.join(unknown)} in {args.config} "
            f"(cameras: {', '.join(known)})",
            file=sys.stderr,
        )
        return 2
    if args.replace and args.camera:
        print(
            "privastead-hub: --replace re-adds the device to the cameras it had; drop --camera",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(_pair(config, args))


class _Screen:
    """Shows the code as soon as the hub made it, then the safety code and the outcome."""

    def __init__(self, args: argparse.Namespace, data_dir: Path) -> None:
        self.args = args
        self.png: Path = args.png or data_dir / "pairing-qr.png"

    def code(self, code: Any, cameras: list[str]) -> None:
        from privastead.protocol.pairing_qr import qr_terminal, save_qr_png

        save_qr_png(code, self.png)
        if not self.args.no_qr:
            print(qr_terminal(code))
        what = f"device {self.args.replace!r}" if self.args.replace else "a client"
        print(f"Pairing {what} with {', '.join(cameras)}. Scan the QR ({self.png}) or type:")
        print(code.to_text())
        where = "`privastead-app resync --code CODE`" if self.args.replace else "the client"
        print(
            f"The code expires in {self.args.ttl / 60:.0f} min. Waiting for {where}...",
            flush=True,
        )

    def safety(self, safety: str) -> None:
        print(f"safety code: {safety}", flush=True)

    def done(self, device_id: str, name: str) -> None:
        self.png.unlink(missing_ok=True)
        verb = "re-added" if self.args.replace else "paired"
        print(f"{verb} device {name!r} (id {device_id}); check that it shows the same safety code")


async def _pair(config: Any, args: argparse.Namespace) -> int:
    from privastead.hub.admin.client import call_running_hub
    from privastead.hub.admin.ops import HubAdmin
    from privastead.hub.state.service import open_hub
    from privastead.protocol.pairing_code import PairingCode

    screen = _Screen(args, config.hub.data_dir)

    def progress(frame: dict[str, Any]) -> None:
        if frame.get("event") == "code":
            screen.code(PairingCode.parse(str(frame["code"])), list(frame.get("cameras", [])))
        elif frame.get("event") == "safety":
            screen.safety(str(frame["safety"]))

    request = {"cameras": args.camera, "ttl": args.ttl, "replace": args.replace}
    result = await call_running_hub(config.hub.data_dir, "pair", request, progress)
    if result is not None:
        screen.done(str(result["device_id"]), str(result["device_name"]))
        return 0

    async def show(code: PairingCode, cameras: Any) -> None:
        screen.code(code, list(cameras))

    async with open_hub(config) as hub:
        paired = await HubAdmin.from_open_hub(hub).pair(
            args.camera, args.ttl, args.replace, show, screen.safety
        )
    screen.done(paired.device_id, paired.device_name)
    return 0
