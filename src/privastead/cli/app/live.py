"""`privastead-app live CAMERA (--out FILE | --pipe) [--seconds N]`: watch a livestream.

Asks the hub for a livestream of CAMERA through the camera's control group, decrypts the
fragments in this process and writes the playable fMP4 (init segment, then media fragments)
to FILE or to stdout. Status lines go to stderr. Ctrl-C ends the session cleanly (the hub is
told with a LiveStop); what was written stays playable.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

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
A connection that breaks (a Wi-Fi hand-over, a relay restart, a proxy) is joined again and the
same stream goes on from the next keyframe, up to 8 times a session; past that, or when the
pictures do not come back within 10 s, it stops with an error: ask for the livestream again.
While `privastead-app listen` or `ui` runs on the same data directory, the stream comes
through it (over its local socket); otherwise this command reads the relay itself.
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
        _say(args, f"session {status.session_id}: reading the session's new keys")
    elif status.phase == "waiting" and status.first_picture is None:
        _say(args, "connected to the relay, waiting for the first picture")
    elif status.phase == "waiting":
        _say(args, "back on the relay, waiting for the pictures to go on")
    elif status.phase == "reconnecting":
        from privastead.relay.client import LIVE_MAX_RESUMES  # here: keeps --help fast

        _say(
            args,
            f"the connection was lost ({status.interruptions} of at most "
            f"{LIVE_MAX_RESUMES} times a session): joining the session again…",
        )
    elif status.phase == "playing" and status.interruptions:
        _say(args, "pictures again: the same session goes on")
    elif status.phase == "playing" and status.first_picture is not None:
        _say(args, f"first picture after {status.first_picture:.2f} s")


def _summary(args: argparse.Namespace, status: LiveStatus) -> None:
    first = "-" if status.first_picture is None else f"{status.first_picture:.2f} s"
    _say(
        args,
        f"ended ({status.ended or 'stopped'}): {status.fragments} fragments, "
        f"{status.bytes} bytes, first picture after {first}, {status.dropped} dropped"
        + (f", resumed {status.interruptions} times" if status.interruptions else ""),
    )


async def _main(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from privastead.client.device import DataDir
    from privastead.client.live_request import LiveStatus

    cameras = DataDir(data_dir(args)).load().cameras()
    if args.camera not in cameras:
        known = ", ".join(cameras) or "none"
        print(
            f"privastead-app: no camera {args.camera!r} on this device (paired: {known})",
            file=sys.stderr,
        )
        return 2
    status = LiveStatus(on_change=lambda st: _phase(args, st))
    out: BinaryIO = sys.stdout.buffer if args.pipe else args.out.open("wb")
    writer = _Writer(args, out, status)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(_watch(args, status, writer))
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


class _Writer:
    """Writes the stream's pieces; a closed pipe ends the stream, not the program."""

    def __init__(self, args: argparse.Namespace, out: BinaryIO, status: LiveStatus) -> None:
        self.args, self.out, self.status = args, out, status
        self.last = time.monotonic()
        self.closed = False

    def write(self, piece: bytes) -> None:
        try:
            self.out.write(piece)
            self.out.flush()
        except BrokenPipeError:
            self.status.ended = "the player closed the pipe"
            self.closed = True
            raise
        if time.monotonic() - self.last >= 5.0:
            self.last = time.monotonic()
            _say(self.args, f"{self.status.fragments} fragments, {self.status.bytes / 1e6:.1f} MB")


async def _watch(args: argparse.Namespace, status: LiveStatus, writer: _Writer) -> None:
    """Through the running client if there is one, else from this process's own client."""
    from privastead.client.local_call import call_running_client

    def on_progress(frame: dict[str, Any]) -> None:
        _update(status, frame)
        status.set(str(frame.get("phase", status.phase)))

    def on_data(piece: bytes) -> None:
        status.fragments += 1  # approximately, for the progress line; the result is exact
        status.bytes += len(piece)
        writer.write(piece)

    request = {"camera": args.camera, "seconds": args.seconds, "timeout": args.timeout}
    try:
        result = await call_running_client(
            data_dir(args), "live", request, on_progress=on_progress, on_data=on_data
        )
        if result is not None:
            _update(status, result)
            return
        await _watch_here(args, status, writer)
    except BrokenPipeError:
        return


def _update(status: LiveStatus, frame: dict[str, Any]) -> None:
    """The running client's view of the stream (counts, first picture, why it ended)."""
    status.session_id = str(frame.get("session_id") or status.session_id)
    first = frame.get("first_picture")
    status.first_picture = float(first) if isinstance(first, int | float) else None
    for name in ("fragments", "bytes", "dropped", "interruptions"):
        value = frame.get(name)
        if isinstance(value, int):
            setattr(status, name, value)
    status.ended = str(frame.get("ended") or status.ended)


async def _watch_here(args: argparse.Namespace, status: LiveStatus, writer: _Writer) -> None:
    from privastead.client.app import Client
    from privastead.client.device import DataDir
    from privastead.client.live_request import open_live
    from privastead.clock import SystemClock

    client = Client(DataDir(data_dir(args)), clock=SystemClock())
    try:
        stream = open_live(
            client, args.camera, seconds=args.seconds, status=status, answer_timeout=args.timeout
        )
        try:
            async for piece in stream:
                writer.write(piece)
        finally:
            await stream.aclose()
    finally:
        await client.close()
