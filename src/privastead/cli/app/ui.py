"""`privastead-app ui`: the local web UI on 127.0.0.1, at an address with a per-launch secret."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Serve this client's cameras, events, clips, livestreams, devices and pairing as a web "
        "page on 127.0.0.1 only. Open the printed address (it holds a secret that changes at "
        "every launch; requests without it, or from other sites, get 403)."
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="loopback address to bind: 127.0.0.1 or ::1 only"
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--events-db", type=Path, help="the client's event log (SQLite) to show")
    what.add_argument(
        "--demo",
        action="store_true",
        help="show a made-up household (synthetic clips, thumbnails and live video)",
    )


async def _serve(args: argparse.Namespace) -> int:
    from privastead.client.ui.server import UiServer
    from privastead.client.ui.source import UiSource

    with contextlib.ExitStack() as stack:
        source: UiSource
        if args.demo:
            import time

            from privastead.client.ui.fake import demo_source

            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pv-ui-demo-")))
            source = await asyncio.to_thread(demo_source, root, now=time.time())
        else:
            from privastead.client.eventlog import EventLog
            from privastead.client.ui.source import LocalSource
            from privastead.clock import SystemClock
            from privastead.media.transcode import transcode_clip

            log = stack.enter_context(EventLog(args.events_db, clock=SystemClock()))
            cache = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pv-ui-")))
            source = LocalSource(log, cache_dir=cache, transcode_clip=transcode_clip)
        server = UiServer(source, host=args.host, port=args.port)
        url = await server.start()
        print(f"Privastead UI: {url}", flush=True)
        print("Open it in a browser on this computer; Ctrl-C stops it.", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_serve(args))
    except KeyboardInterrupt:
        return 130
