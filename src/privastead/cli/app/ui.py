"""`privastead-app ui`: the local web UI on 127.0.0.1, at an address with a per-launch secret."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import tempfile
import time
from pathlib import Path

from privastead.cli.app.common import add_data_dir, data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Serve this client's cameras, events, clips, livestreams, devices and pairing as a web "
        "page on 127.0.0.1 only, and keep receiving from the relay while it runs. Open the "
        "printed address in a browser on this computer: it holds a secret that changes at every "
        "launch; requests without it, or from other sites, get 403."
    )
    parser.add_argument("--port", type=int, default=0, help="port (default: any free one)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="loopback address to bind: 127.0.0.1 or ::1 only"
    )
    parser.add_argument(
        "--name", default=socket.gethostname()[:64], help="this device's name when pairing"
    )
    parser.add_argument("--poll", type=float, default=5.0, help="seconds between relay polls")
    parser.add_argument(
        "--live-timeout",
        type=float,
        default=20.0,
        help="seconds the live page waits for the hub to answer before saying it is offline "
        "(default 20)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="show a made-up household (synthetic clips, thumbnails, live video); no relay",
    )
    add_data_dir(parser)


async def _serve(args: argparse.Namespace) -> int:
    from privastead.client.ui.security import check_loopback
    from privastead.client.ui.server import UiServer
    from privastead.client.ui.source import UiSource

    check_loopback(args.host)  # before anything else starts
    async with contextlib.AsyncExitStack() as stack:
        source: UiSource
        if args.demo:
            from privastead.client.ui.fake import demo_source

            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pv-ui-demo-")))
            source = await asyncio.to_thread(demo_source, root, now=time.time())
        else:
            from privastead.client.device import DataDir
            from privastead.client.ui.client_source import ClientSource
            from privastead.clock import SystemClock

            client = ClientSource(
                DataDir(data_dir(args)),
                clock=SystemClock(),
                device_name=args.name,
                poll=args.poll,
                live_timeout=args.live_timeout,
            )
            await client.start()
            stack.push_async_callback(client.close)
            source = client
        server = UiServer(source, host=args.host, port=args.port)
        url = await server.start()
        stack.push_async_callback(server.stop)
        print(f"Privastead UI: {url}", flush=True)
        print("Open it in a browser on this computer; Ctrl-C stops it.", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_serve(args))
