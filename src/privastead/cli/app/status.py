"""`privastead-app status`: the hub's health as this device judges it (from the hub's own
heartbeats and clock, never from the relay's word), re-adds `listen` asked for by itself, and
the safety code. While `listen` or `ui` runs on the data directory it asks that process (whose
receive loop is current); otherwise it fetches what is waiting on the relay once. Its exit
status says the state (see ``EPILOG``)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from privastead.cli.app.common import add_data_dir, ask_running, data_dir
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
    "camera_offline": 9,
    "hub_disk": 10,
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
  9  camera_offline      the hub is fine but says a camera is gone (no picture from it since
                         the time shown: unplugged, powered off, or hung)
 10  hub_disk            the hub's disk is full: continuous recording is paused until old
                         recordings are deleted (event clips and keys are kept)
  1  an error (data directory, state), 2 a usage error

While `privastead-app listen` or `ui` runs on the same data directory, `status` asks it over
its local socket and reports its view (judged with that process's --offline-after,
--withheld-after and --skew-allowance); otherwise it reads the relay once itself.
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


def _camera_line(name: str, camera: dict[str, Any]) -> str:
    if not camera:
        return f"camera {name}: no report from the hub yet"
    if not camera["connected"]:
        line = f"camera {name} offline since {_when(camera['offline_since'])}"
    else:
        line = (
            f"camera {name}: connected, {camera['fps'] or 0:.1f} fps, "
            f"{camera['reconnects'] or 0} reconnect(s), {camera['decode_errors'] or 0} decode "
            "error(s)"
        )
    if camera.get("recording") not in (None, "off"):
        line += f", continuous recording {camera['recording']}"
    if camera.get("disk") not in (None, "ok"):
        line += f"; hub disk {camera['disk']}: {camera.get('disk_detail') or ''}"
    return line


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def run(args: argparse.Namespace) -> int:
    import asyncio

    from privastead.client import queries
    from privastead.client.app import Client, ClientOptions
    from privastead.client.device import DataDir
    from privastead.client.watch import WatchSettings
    from privastead.clock import SystemClock

    async def look() -> dict[str, Any]:
        answer = await ask_running(args, "status")
        if answer is not None:
            return answer
        settings = WatchSettings(args.offline_after, args.withheld_after, args.skew_allowance)
        client = Client(
            DataDir(data_dir(args)), clock=SystemClock(), options=ClientOptions(watch=settings)
        )
        try:
            await client.sync_once()
            return queries.status(client)
        finally:
            await client.close()

    answer = asyncio.run(look())
    if "served_by" in answer:  # its own thresholds applied, not this command's flags
        print(
            f"(answered by the running `privastead-app listen` or `ui`, pid {answer['served_by']})",
            file=sys.stderr,
        )
    state = answer["state"]
    print(f"hub {answer['hub_name']!r} via {answer['relay_url']}: {state}: {answer['detail']}")
    if answer["groups"] and state != "camera_offline":
        print(f"  groups concerned: {', '.join(answer['groups'])}")
    for name, camera in answer["cameras"].items():
        print(f"  {_camera_line(name, camera)}")
    for key, count in answer["lost"].items():
        print(f"  {key}: {count} message(s) lost (the hub no longer had them)")
    for key, sent in answer["resync"].items():  # what `listen` asked for by itself
        when = _when(sent["last_sent"])
        print(f"  re-add of {key} last requested {when} (request {sent['attempts']})")
    store = answer.get("clip_store")
    if store:
        print(
            f"clips on this device: {store['clips']}, {store['bytes'] / 1e6:.1f} MB "
            f"({store['keeping']}; set in client.toml)"
        )
    print(f"safety code (pairing): {answer['safety_code']}")
    return EXIT_CODES.get(state, 1)
