"""`privastead-app sync`: fetch, decrypt and store everything waiting, then exit."""

from __future__ import annotations

import argparse

from privastead.cli.app.common import add_data_dir, data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_dir(parser)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from privastead.client.device import DataDir
    from privastead.client.sync import Syncer
    from privastead.clock import SystemClock

    async def main() -> int:
        syncer = Syncer(DataDir(data_dir(args)), clock=SystemClock())
        try:
            handled = await syncer.sync_once()
        finally:
            await syncer.close()
        print(f"{handled} message(s) handled, {syncer.received} new")
        return 0

    return asyncio.run(main())
