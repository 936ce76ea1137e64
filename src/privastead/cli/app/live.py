"""`privastead-app live CAMERA (--out FILE | --pipe) [--seconds N]`: watch a livestream.

Asks the hub for a livestream of CAMERA through the camera's control group, decrypts the
fragments in this process and writes the playable fMP4 (init segment, then media fragments)
to FILE or to stdout. Status lines go to stderr. Ctrl-C ends the session cleanly (the hub is
told with a LiveStop); what was written stays playable.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from privastead.cli.app.common import add_data_dir, data_dir

if TYPE_CHECKING:
    from privastead.client.live_request import LiveStatus

EPILOG = """\
examples:
  privastead-app live door --out door.mp4 --seconds 30   save 30 s of livestream
  privastead-app live door --pipe | ffplay -fflags nobuffer -
  privastead-app live door --pipe | mpv --profile=low-latency -

The stream starts at the camera's newest keyframe, so the first picture comes at once. It runs
until --seconds pass, Ctrl-C, or the hub ends it (its time limit, the camera disconnecting).
Only one process may use a data directory at a time: stop `privastead-app listen` or the UI
for this directory first, or watch from the UI's live page instead.
Exit codes: 0 ended normally or by Ctrl-C, 1 error (the message says what to do), 2 usage."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("camera", help="the camera's name (see `privastead-app cameras`)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, help="write the livestream to this MP4 file")
    where.add_argument(
        "--pipe", action="store_true", help="write the fMP4 stream to stdout (for ffplay/mpv -)"
    )
    parser.add_argument(
        "--seconds", type=float, help="stop after this many seconds (default: until Ctrl-C)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=20.0,
        help="seconds to wait for the hub's answer before giving up (default 20)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no status lines on stderr (errors still show)"
    )
    add_data_dir(parser)
    parser.epilog = EPILOG


def run(args: argparse.Namespace) -> int:
    import asyncio

    return asyncio.run(_main(args))


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(f"live: {text}", file=sys.stderr, flush=True)


def _phase(args: argparse.Namespace, status: LiveStatus) -> None:
    if status.phase == "requesting":
        _say(args, f"asking the hub for {args.camera}…")
    elif status.phase == "catching up":
        _say(args, f"session {status.session_id[:8]}…: reading the session's new keys")
    elif status.phase == "waiting":
        _say(args, "connected to the relay, waiting for the first picture")
    elif status.phase == "playing" and status.first_picture is not None:
        _say(args, f"first picture after {status.first_picture:.2f} s")


def _summary(args: argparse.Namespace, status: LiveStatus) -> None:
    first = "-" if status.first_picture is None else f"{status.first_picture:.2f} s"
    _say(
        args,
        f"ended ({status.ended or 'stopped'}): {status.fragments} fragments, "
        f"{status.bytes} bytes, first picture after {first}, {status.dropped} dropped",
    )


async def _main(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib
    import signal

    from privastead.client.device import DataDir
    from privastead.client.live_request import open_live
    from privastead.client.sync import Syncer
    from privastead.clock import SystemClock

    syncer = Syncer(DataDir(data_dir(args)), clock=SystemClock())
    if args.camera not in syncer.info.cameras():
        await syncer.close()
        known = ", ".join(syncer.info.cameras()) or "none"
        print(
            f"privastead-app: no camera {args.camera!r} on this device (paired: {known})",
            file=sys.stderr,
        )
        return 2

    from privastead.client.live_request import LiveStatus

    status = LiveStatus(on_change=lambda st: _phase(args, st))
    stream = open_live(
        syncer, args.camera, seconds=args.seconds, status=status, answer_timeout=args.timeout
    )
    out: BinaryIO = sys.stdout.buffer if args.pipe else args.out.open("wb")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def consume() -> None:
        last = time.monotonic()
        async for piece in stream:
            try:
                out.write(piece)
                out.flush()
            except BrokenPipeError:
                status.ended = "the player closed the pipe"
                return
            if time.monotonic() - last >= 5.0:
                last = time.monotonic()
                _say(args, f"{status.fragments} fragments, {status.bytes / 1e6:.1f} MB")

    task = asyncio.create_task(consume())
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            status.ended = "interrupted"
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # raises what the stream raised (relay lost, hub refused)
    finally:
        stopper.cancel()
        await stream.aclose()
        await syncer.close()
        if not args.pipe:
            out.close()
        _summary(args, status)
    if status.fragments == 0:
        print(
            "privastead-app: no picture arrived; check `privastead-app status` and the hub",
            file=sys.stderr,
        )
        return 1
    if args.out is not None:
        _say(args, f"saved {args.out}")
    return 0
