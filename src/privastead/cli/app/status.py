"""`privastead-app status`: the hub's health as this device judges it (from the hub's own
heartbeats and clock, never from the relay's word), re-adds `listen` asked for by itself, and
the safety code. Fetches what is waiting on the relay once (so it cannot run while `listen`
holds the data directory). Its exit status says the state (see ``EPILOG``)."""

from __future__ import annotations

import argparse
import time

from privastead.cli.app.common import add_data_dir, data_dir
from privastead.client.defaults import (
    DEFAULT_OFFLINE_AFTER,
    DEFAULT_SKEW_ALLOWANCE,
    DEFAULT_WITHHELD_AFTER,
)

#: Exit status per state (0 = ok); scripts and monitoring can tell them apart.
EXIT_CODES = {
    "ok": 0,
    "removed": 3,
    "hub_offline": 4,
    "withheld": 5,
    "relay_unreachable": 6,
    "desync": 7,
    "stale_epoch": 7,
    "hub_clock": 8,
}

EPILOG = """States and exit status:
  0  ok                  heartbeats arrive, fresh by the hub's clock, and nothing is missing
  3  removed             this device was removed from the hub: pair it again to use it
  4  hub_offline         the newest heartbeat is older than --offline-after by the hub's clock
                         (the hub is down, or the relay holds its messages back)
  5  withheld            the hub says it sent messages that never arrived, even when asked again
                         (the relay is withholding them)
  6  relay_unreachable   the relay does not answer
  7  desync, stale_epoch this device lost sync with a group (`privastead-app resync`)
  8  hub_clock           the hub's clock is off this device's by more than --skew-allowance
  1  an error (data directory, state), 2 a usage error
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument(
        "--offline-after",
        type=float,
        default=DEFAULT_OFFLINE_AFTER,
        help="seconds the newest heartbeat may be old, by the hub's clock, before the hub "
        f"counts as offline (default {DEFAULT_OFFLINE_AFTER:.0f})",
    )
    parser.add_argument(
        "--withheld-after",
        type=float,
        default=DEFAULT_WITHHELD_AFTER,
        help="seconds messages the hub says it sent may stay missing after asking for them "
        f"(default {DEFAULT_WITHHELD_AFTER:.0f})",
    )
    parser.add_argument(
        "--skew-allowance",
        type=float,
        default=DEFAULT_SKEW_ALLOWANCE,
        help=f"seconds the hub's clock may be off (default {DEFAULT_SKEW_ALLOWANCE:.0f})",
    )
    add_data_dir(parser)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from privastead.client.device import DataDir
    from privastead.client.sync import Syncer
    from privastead.client.watch import WatchSettings
    from privastead.clock import SystemClock

    async def main() -> int:
        settings = WatchSettings(args.offline_after, args.withheld_after, args.skew_allowance)
        syncer = Syncer(DataDir(data_dir(args)), clock=SystemClock(), watch=settings)
        try:
            await syncer.sync_once()
            report = syncer.health.report()
        finally:
            await syncer.close()
        info = syncer.info
        state, detail = report.state.value, report.detail
        if syncer.relay_error and state != "removed":
            # One look, no grace period: this run could not reach the relay.
            state, detail = "relay_unreachable", f"the relay did not answer: {syncer.relay_error}"
        print(f"hub {info.hub_name!r} via {info.relay_url}: {state}: {detail}")
        if report.groups:
            print(f"  groups concerned: {', '.join(report.groups)}")
        for key, count in sorted(syncer.watch.announced.lost.items()):
            print(f"  {key}: {count} message(s) lost (the hub no longer had them)")
        requests = syncer.resync.to_dict() if syncer.resync is not None else {}
        for key, sent in requests.items():  # what `listen` asked for by itself
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(sent["last_sent"]))
            print(f"  re-add of {key} last requested {when} (request {sent['attempts']})")
        print(f"safety code (pairing): {info.safety_code}")
        return EXIT_CODES.get(state, 1)

    return asyncio.run(main())
