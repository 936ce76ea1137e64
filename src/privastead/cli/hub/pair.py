"""`privastead-hub pair [--camera NAME ...] | --replace DEVICE`: pair a client.

Shows a short code to type (``417-acorn-shiny``), the pairing QR in the terminal (also written
as a PNG) and the long code; then waits (until the code expires) for the client. A device that
knows the code is held **pending**: this command shows its name, the safety code and its key
fingerprint (the device shows the same two) and asks to confirm. Only then does the hub add it
to the cameras' groups and give it a relay token. Without an answer here (no terminal, or the
input closed) decide with `privastead-hub devices approve ID` / `reject ID` from another
shell; an undecided device expires with the code. If `privastead-hub run` is running, the
running hub does all this in its own process (it holds the groups' state) through its admin
socket; the cameras keep recording meanwhile.

`--replace DEVICE` re-adds a device whose state is lost or desynced, even its `control` group
(where `privastead-app resync` alone cannot help): the code is for that device only; on the
device run `privastead-app resync --code`. Its stale leaves are removed from every group of
every camera it had and its fresh ones added; nobody else re-pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

Decide = Callable[[str, bool], Awaitable[None]]


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
        "cameras it had; on the device: `privastead-app resync --code`",
    )
    parser.add_argument(
        "--png", type=Path, help="where to write the QR code (default: DATA_DIR/pairing-qr.png)"
    )
    parser.add_argument(
        "--ttl",
        type=float,
        default=600.0,
        help="seconds until the code expires (default 600; the short code lasts at most 600)",
    )
    parser.add_argument("--no-qr", action="store_true", help="do not draw the QR in the terminal")
    parser.add_argument(
        "--no-short-code",
        action="store_true",
        help="offer only the QR and the long code (no short code through the relay's nameplate)",
    )
    parser.add_argument(
        "--insecure-http",
        action="store_true",
        help="allow a plain http:// relay URL on another host (tokens then cross the network "
        "unencrypted: only on a trusted network; same as PRIVASTEAD_INSECURE_HTTP=1)",
    )
    parser.epilog = (
        "On the client: `privastead-app pair` and type the short code (or `--qr FILE`; with "
        "--replace: `privastead-app resync --code`). Approve the device here only if it shows "
        "the same safety code and key fingerprint. Works with `privastead-hub run` running or "
        "stopped."
    )


def run(args: argparse.Namespace) -> int:
    from privastead.hub import config as hubconfig
    from privastead.protocol.relay_url import INSECURE_HTTP_ENV

    if args.insecure_http:  # the same switch every relay client reads
        os.environ[INSECURE_HTTP_ENV] = "1"
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


def _read_line_in_background(loop: asyncio.AbstractEventLoop) -> asyncio.Future[str | None]:
    """One line of stdin (None at end of input), read by a daemon thread: a prompt nobody
    answers never keeps the command from exiting once the pairing ended."""
    answer: asyncio.Future[str | None] = loop.create_future()

    def read() -> None:
        try:
            line: str | None = sys.stdin.readline() if sys.stdin is not None else ""
        except (OSError, ValueError):
            line = ""
        value = line if line else None

        def settle() -> None:
            if not answer.done():
                answer.set_result(value)

        loop.call_soon_threadsafe(settle)

    threading.Thread(target=read, name="pair-prompt", daemon=True).start()
    return answer


class _Screen:
    """What the owner sees (``PairingEvents``): the codes, the pending device and its prompt,
    security alerts."""

    def __init__(self, args: argparse.Namespace, data_dir: Path, decide: Decide) -> None:
        self.args = args
        self.png: Path = args.png or data_dir / "pairing-qr.png"
        self.decide = decide
        self._prompt: asyncio.Task[None] | None = None

    async def code(self, code: Any, short: Any, cameras: Sequence[str]) -> None:
        from privastead.protocol.pairing_qr import qr_terminal, save_qr_png

        save_qr_png(code, self.png)
        what = f"device {self.args.replace!r}" if self.args.replace else "a client"
        print(f"Pairing {what} with {', '.join(cameras)}.")
        if short is not None:
            print(f"short code: {short}")
            print(f"relay: {code.relay_url}")
            print(
                "  type both on the device (`privastead-app pair`); nobody else should see the code"
            )
        if not self.args.no_qr:
            print(qr_terminal(code))
        print(f"Or scan the QR ({self.png}), or type the long code:")
        print(code.to_text())
        where = "`privastead-app resync --code`" if self.args.replace else "the device"
        ttl = self.args.ttl
        left = f"{ttl / 60:.0f} min" if ttl >= 90 else f"{ttl:.0f} s"
        print(f"The code expires in {left}. Waiting for {where}...", flush=True)

    def pending(self, device: Any) -> None:
        self.png.unlink(missing_ok=True)  # used: the QR must not pair anyone else
        until = time.strftime("%H:%M:%S", time.localtime(device.expires_at))
        print(f"device {device.name!r} wants to join {', '.join(device.cameras)}")
        print(f"pending id: {device.pending_id}")
        print(f"safety code: {device.safety_code}")
        print(f"device key fingerprint: {device.fingerprint}")
        print(
            "Approve only if the device shows the same safety code and key fingerprint. "
            f"(Or from another shell, before {until}: `privastead-hub devices approve "
            f"{device.pending_id}` / `reject {device.pending_id}`.)"
        )
        print(f"Add {device.name!r}? [y/N] ", end="", flush=True)
        self._prompt = asyncio.ensure_future(self._ask(device.pending_id))

    async def _ask(self, pending_id: str) -> None:
        line = await _read_line_in_background(asyncio.get_running_loop())
        if line is None:
            print("\n(no answer from this terminal: waiting for `devices approve|reject`)")
            return
        approve = line.strip().lower() in ("y", "yes")
        try:
            await self.decide(pending_id, approve)
        except Exception as e:  # decided elsewhere meanwhile, or expired: the pairing says
            print(f"privastead-hub: {e}", file=sys.stderr)
            return
        print("approved: adding the device..." if approve else "rejected.", flush=True)

    def alert(self, text: str) -> None:
        print(f"\n{text}", file=sys.stderr, flush=True)

    def safety(self, safety: str) -> None:
        pass  # shown with the pending device

    def done(self, device_id: str, name: str) -> None:
        if self._prompt is not None:
            self._prompt.cancel()
        self.png.unlink(missing_ok=True)
        verb = "re-added" if self.args.replace else "paired"
        print(f"{verb} device {name!r} (id {device_id}); it shows the same safety code")


async def _pair(config: Any, args: argparse.Namespace) -> int:
    from privastead.hub.admin.client import call_running_hub
    from privastead.hub.admin.ops import HubAdmin, on_hub
    from privastead.hub.state.pending import PendingDevice
    from privastead.protocol.pairing_code import PairingCode
    from privastead.protocol.short_code import parse

    data_dir = config.hub.data_dir
    hub_admin: list[HubAdmin] = []

    async def decide(pending_id: str, approve: bool) -> None:
        if hub_admin:  # this process holds the groups
            await hub_admin[0].decide(pending_id, approve)
            return
        op = "approve" if approve else "reject"
        await call_running_hub(data_dir, op, {"device": pending_id})

    screen = _Screen(args, data_dir, decide)
    try:
        request = {
            "cameras": args.camera,
            "ttl": args.ttl,
            "replace": args.replace,
            "short": not args.no_short_code,
        }

        async def progress(frame: dict[str, Any]) -> None:
            event = frame.get("event")
            if event == "code":
                short = frame.get("short_code")
                await screen.code(
                    PairingCode.parse(str(frame["code"])),
                    parse(str(short)) if short else None,
                    list(frame.get("cameras", [])),
                )
            elif event == "pending":
                pending = PendingDevice.from_json(str(frame["pending_id"]), frame["device"])
                screen.pending(pending)
            elif event == "alert":
                screen.alert(str(frame.get("text", "")))

        async def here(admin: HubAdmin) -> dict[str, Any]:
            hub_admin.append(admin)
            paired = await admin.pair(
                args.camera, args.ttl, args.replace, screen, short=not args.no_short_code
            )
            return {"device_id": paired.device_id, "device_name": paired.device_name}

        result = await on_hub(config, "pair", "pair", request, local=here, progress=progress)
        screen.done(str(result["device_id"]), str(result["device_name"]))
        return 0
    finally:
        screen.png.unlink(missing_ok=True)
