"""`privastead-hub reset`: forget every group and paired device, delete the relay mailboxes.

Asks for confirmation (or `--yes`). Afterwards every client must pair again. Recorded clips
are kept. Refuses while `privastead-hub run` is running (its admin socket answers): stop it
first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("hub.toml"), help="hub.toml")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def run(args: argparse.Namespace) -> int:
    import asyncio

    from privastead.hub import config as hubconfig
    from privastead.hub.admin.client import running_hub_pid

    config = hubconfig.load(args.config)
    pid = asyncio.run(running_hub_pid(config.hub.data_dir))
    if pid is not None:
        print(
            f"privastead-hub: the hub is running (pid {pid}); stop it first (Ctrl-C in its "
            f"terminal, `kill -TERM {pid}`, or stop its service), then reset. Nothing changed.",
            file=sys.stderr,
        )
        return 1
    if not args.yes:
        answer = input(
            "This unpairs every client and deletes the hub's encrypted state and mailboxes. "
            "Type 'reset' to go on: "
        )
        if answer.strip() != "reset":
            print("privastead-hub: nothing changed", file=sys.stderr)
            return 1
    from privastead.hub.admin.devices import reset_hub

    asyncio.run(reset_hub(config))
    print("hub reset: pair your clients again with `privastead-hub pair`")
    return 0
