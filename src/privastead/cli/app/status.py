"""`privastead-app status`: hub health (from its heartbeats, on this device's clock),
desync and relay problems, and the safety code. Reads what `listen`/`sync` last saw and
contacts the relay once unless `--offline`."""

from __future__ import annotations

import argparse

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
        print(f"safety code (pairing): {info.safety_code}")
        return 0 if report.state is HubHealth.OK else 1

    return asyncio.run(main())
