"""`privastead-app push register|status|unregister`: where the relay sends this device's
wake-ups.

A wake-up carries only ciphertext the relay cannot read (the event's encrypted notification,
or nothing): FCM data messages or a UnifiedPush-style webhook POST. Registering uses this
device's own relay token (from pairing), so it changes nothing for other devices.
`register` replaces the previous registration: give every target you want in one call.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from urllib.parse import urlsplit

from privastead.cli.app.common import add_data_dir, data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    register = actions.add_parser(
        "register", help="send this device's wake-ups to an FCM token and/or a webhook"
    )
    fcm = register.add_mutually_exclusive_group()
    fcm.add_argument("--fcm", metavar="TOKEN", help="the FCM registration token of this device")
    fcm.add_argument(
        "--fcm-file", type=Path, metavar="FILE", help="read the FCM token from FILE instead"
    )
    register.add_argument(
        "--webhook", metavar="URL", help="a UnifiedPush-style endpoint (https) to POST to"
    )
    add_data_dir(register)
    add_data_dir(actions.add_parser("status", help="show where this device's wake-ups go"))
    add_data_dir(actions.add_parser("unregister", help="stop all wake-ups for this device"))


def _shown(url: str) -> str:
    """A webhook URL without its path: UnifiedPush endpoints carry a secret there."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…" if parts.path not in ("", "/") else url


def run(args: argparse.Namespace) -> int:
    import asyncio

    from privastead.client.device import DataDir
    from privastead.errors import ConfigError
    from privastead.relay.client import RelayClient

    data = DataDir(data_dir(args))
    info = data.load()
    fcm: str | None = None
    if args.action == "register":
        fcm = args.fcm_file.read_text().strip() if args.fcm_file else args.fcm
        if not fcm and not args.webhook:
            raise ConfigError("give --fcm TOKEN (or --fcm-file FILE) and/or --webhook URL")

    async def main() -> dict[str, object]:
        async with RelayClient(info.relay_url, data.token()) as relay:
            if args.action == "register":
                await relay.set_push(fcm_token=fcm, webhook_url=args.webhook)
            elif args.action == "unregister":
                await relay.set_push(fcm_token=None, webhook_url=None)
            return await relay.get_push()

    status = asyncio.run(main())
    hint, url = status.get("fcm_token_hint"), status.get("webhook_url")
    print(f"push targets of this device ({info.device_name!r}) at {info.relay_url}:")
    print(f"  fcm: {f'registered (token ends in {hint})' if hint else 'none'}")
    print(f"  webhook: {_shown(str(url)) if url else 'none'}")
    if args.action == "status" and not hint and not url:
        print("Wake-ups are off; `listen` still receives. Use `privastead-app push register`.")
    return 0
