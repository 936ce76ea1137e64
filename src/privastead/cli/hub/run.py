"""`privastead-hub run [--config hub.toml]`: read the cameras, detect events, record clips.

Without ``--config`` it runs the embedded default: one simulated camera (``privastead-camsim``,
scene ``demo``, started in a subprocess on a free port) recorded into the data directory, so a
fresh machine shows events and clips within a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from privastead.errors import CameraUnavailableError
from privastead.ports import free_port

if TYPE_CHECKING:
    from privastead.hub.config import HubConfig

log = logging.getLogger(__name__)

DEMO_SIZE = "640x360"
DEMO_FPS = 15
DEMO_LOOP = 20  # seconds: one walk-through per loop, a short first-run encode


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, help="hub.toml (default: a built-in demo with one simulated camera)"
    )
    parser.add_argument(
        "--data-dir", type=Path, help="override [hub].data_dir (clips go to DATA_DIR/clips)"
    )
    parser.add_argument(
        "--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)"
    )
    parser.epilog = (
        "Clips, thumbnails (.jpg) and sidecars (.json) land in "
        "<data_dir>/clips/YYYY-MM-DD/. Check a config first with "
        "`privastead-hub check-config hub.toml`."
    )


def _start_demo_camera() -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "privastead.cli.camsim",
        "--port",
        str(port),
        "--scene",
        "demo",
        "--size",
        DEMO_SIZE,
        "--fps",
        str(DEMO_FPS),
        "--duration",
        str(DEMO_LOOP),
    ]
    print(f"privastead-hub: starting the demo camera: {' '.join(args[2:])}", file=sys.stderr)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the first run encodes the scene (cached afterwards)
    if not line.startswith("rtsp://"):
        proc.kill()
        raise CameraUnavailableError("the demo camera (privastead-camsim) did not start")
    return proc, line.split()[0]


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from privastead.hub import config as hubconfig

    camsim: subprocess.Popen[str] | None = None
    if args.config is not None:
        config = hubconfig.load(args.config)
    else:
        camsim, url = _start_demo_camera()
        config = hubconfig.HubConfig(cameras=(hubconfig.CameraConfig(name="demo", url=url),))
    if args.data_dir is not None:
        config = replace(config, hub=replace(config.hub, data_dir=args.data_dir))
    print(
        f"privastead-hub: {len(config.cameras)} camera(s), clips in {config.hub.clips}",
        file=sys.stderr,
    )
    try:
        _run(config, args.duration)
    finally:
        if camsim is not None:
            camsim.terminate()
            camsim.wait(10)
    return 0


def _run(config: HubConfig, duration: float | None) -> None:
    import signal

    from privastead.hub.app import Hub

    async def main() -> None:
        # Signals are taken from before the hub opens its state (which can wait for a
        # `devices` command holding it): a SIGTERM from a supervisor in that moment would
        # otherwise take the default action and kill the hub instead of stopping it.
        loop = asyncio.get_running_loop()
        stopped = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopped.set)
        async with Hub.open(config) as hub:
            if stopped.is_set():
                return  # stopped while opening: close what was opened, start nothing
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, hub.stop)
            await hub.run(duration)

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover
        asyncio.run(main())
