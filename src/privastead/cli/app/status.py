"""`privastead-app status`: hub health (from its heartbeats, on this device's clock), desync
and relay problems, re-adds `listen` asked for by itself, and the safety code. Fetches what
is waiting on the relay once (so it cannot run while `listen` holds the data directory)."""

from __future__ import annotations

import argparse
import time

from privastead.cli.app.common import add_data_dir, data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--offline-after",
        type=float,
        default=900.0,
        help="seconds without a heartbeat before the hub counts as offline (default 900)",
    )
    add_data_dir(parser)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from privastead.client.device import DataDir
    from privastead.client.health import HubHealth
    from privastead.client.sync import Syncer
    from privastead.clock import SystemClock

    async def main() -> int:
        syncer = Syncer(
            DataDir(data_dir(args)), clock=SystemClock(), offline_after=args.offline_after
        )
        try:
            await syncer.sync_once()
            report = syncer.health.report()
        finally:
            await syncer.close()
        info = syncer.info
        if syncer.relay_error:
            print(f"relay {info.relay_url} unreachable: {syncer.relay_error}")
            return 1
        print(f"hub {info.hub_name!r} via {info.relay_url}: {report.state.value}: {report.detail}")
        if report.groups:
            print(f"  groups concerned: {', '.join(report.groups)}")
        requests = syncer.resync.to_dict() if syncer.resync is not None else {}
        for key, sent in requests.items():  # what `listen` asked for by itself
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(sent["last_sent"]))
            print(f"  re-add of {key} last requested {when} (request {sent['attempts']})")
        print(f"safety code (pairing): {info.safety_code}")
        return 0 if report.state is HubHealth.OK else 1

    return asyncio.run(main())
