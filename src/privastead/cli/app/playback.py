"""`privastead-app playback CAMERA --from TIME --to TIME --out FILE`: recorded video, decrypted.

Asks the hub (through the camera's control group) for its continuous recording of CAMERA
between the two times; the hub sends it MLS-encrypted through the relay, starting at the
keyframe before --from, and this device writes one seekable MP4 that starts at zero. The file
appears only once the whole range arrived and checked out (FILE.part until then); a stream
the relay cut or reordered is asked for again, then reported. Progress lines go to stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from privastead.cli.app.common import add_data_dir, data_dir
from privastead.cli.app.times import FORMS, parse_time

if TYPE_CHECKING:
    from privastead.client.playback_request import PlaybackStatus

EPILOG = f"""\
examples:
  privastead-app playback door --from -10m --to now --out last10.mp4
  privastead-app playback door --from 2026-12-04T14:30 --to 2026-12-04T14:45 --out door.mp4
  privastead-app recordings door --day today      what is recorded (and the events)

Times: {FORMS}.
One request covers at most 3 hours. A range with no recording is answered with the recorded
spans nearest to it. While `privastead-app listen` or `ui` runs on the same data directory,
the playback comes through it (over its local socket).
Exit codes: 0 saved, 1 error (the message says what to do), 2 usage, 3 nothing recorded."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("camera", help="the camera's name (see `privastead-app cameras`)")
    parser.add_argument("--from", dest="start", required=True, help="start of the range")
    parser.add_argument("--to", dest="end", required=True, help="end of the range")
    parser.add_argument("--out", type=Path, required=True, help="the MP4 file to write")
    parser.add_argument(
        "--timeout",
        type=float,
        default=20.0,
        help="seconds to wait for the hub's answer before giving up (default 20)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="times to ask again after a stream that did not arrive whole (default 2)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress lines on stderr (errors still show)"
    )
    add_data_dir(parser)
    parser.epilog = EPILOG


def run(args: argparse.Namespace) -> int:
    import asyncio

    now = time.time()
    try:
        start, end = parse_time(args.start, now), parse_time(args.end, now)
    except ValueError as e:
        print(f"privastead-app: {e}", file=sys.stderr)
        return 2
    if end <= start:
        print("privastead-app: --to must be after --from", file=sys.stderr)
        return 2
    if end - start > 3 * 3600:
        print("privastead-app: at most 3 hours per playback: ask for it in parts", file=sys.stderr)
        return 2
    if args.retries < 0:
        print("privastead-app: --retries must be 0 or more", file=sys.stderr)
        return 2
    return asyncio.run(_main(args, start, end))


class _Progress:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.last = 0.0
        self.phase = ""

    def say(self, text: str) -> None:
        if not self.args.quiet:
            print(f"playback: {text}", file=sys.stderr, flush=True)

    def __call__(self, st: PlaybackStatus) -> None:
        from privastead.client.playback_request import when

        if st.phase != self.phase:
            self.phase = st.phase
            if st.phase == "requesting":
                self.say(f"asking the hub for {self.args.camera} (attempt {st.attempts or 1})…")
            elif st.phase == "catching up":
                self.say(
                    f"the hub sends {when(st.start)} to {when(st.end)}: {st.duration:.1f} s, "
                    f"{st.bytes_total / 1e6:.1f} MB"
                )
            elif st.phase == "receiving" and st.first_picture is not None:
                self.say(f"first picture after {st.first_picture:.2f} s")
            elif st.phase == "failed" and st.error:
                self.say(f"failed: {st.error}")
        if st.phase == "receiving" and time.monotonic() - self.last >= 2.0:
            self.last = time.monotonic()
            self.say(
                f"{st.media_time:.0f} of {st.duration:.0f} s, "
                f"{st.bytes / 1e6:.1f} of {st.bytes_total / 1e6:.1f} MB"
            )


async def _main(args: argparse.Namespace, start: float, end: float) -> int:
    from privastead.client.local_call import call_running_client
    from privastead.client.playback_request import PlaybackStatus
    from privastead.errors import NothingRecordedError, PrivasteadError

    out = args.out.resolve()
    if not out.parent.is_dir():
        print(f"privastead-app: no directory {out.parent} for --out", file=sys.stderr)
        return 2
    progress = _Progress(args)
    status = PlaybackStatus(on_change=progress)
    request = {
        "camera": args.camera,
        "start": start,
        "end": end,
        "out": str(out),
        "timeout": args.timeout,
        "retries": args.retries,
    }

    def on_progress(frame: dict[str, Any]) -> None:
        _update(status, frame)
        status.set(str(frame.get("phase", status.phase)))

    try:
        result = await call_running_client(
            data_dir(args), "playback", request, on_progress=on_progress
        )
        if result is None:
            await _fetch_here(args, start, end, out, status)
        else:
            _update(status, result)
    except NothingRecordedError as e:
        print(f"privastead-app: {e}", file=sys.stderr)
        return 3
    except PrivasteadError as e:
        print(f"privastead-app: {e}", file=sys.stderr)
        return 1
    progress.say(
        f"saved {out}: {status.duration:.1f} s from {_local(status.start)}, "
        f"{status.bytes / 1e6:.1f} MB"
        + (f" (after {status.attempts} attempts)" if status.attempts > 1 else "")
        + (f"; {status.skipped} unreadable frame(s) skipped" if status.skipped else "")
    )
    return 0


def _local(seconds: float) -> str:
    from privastead.client.playback_request import when

    return when(seconds)


def _update(status: PlaybackStatus, frame: dict[str, Any]) -> None:
    for name in ("start", "end", "duration", "media_time", "first_picture"):
        value = frame.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            setattr(status, name, float(value))
    for name in ("pieces", "bytes", "pieces_total", "bytes_total", "attempts", "skipped"):
        value = frame.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            setattr(status, name, value)
    for name in ("session_id", "error"):
        value = frame.get(name)
        if isinstance(value, str):
            setattr(status, name, value)


async def _fetch_here(
    args: argparse.Namespace, start: float, end: float, out: Path, status: PlaybackStatus
) -> None:
    from privastead.client.app import Client
    from privastead.client.device import DataDir
    from privastead.client.playback_request import fetch_playback
    from privastead.clock import SystemClock

    client = Client(DataDir(data_dir(args)), clock=SystemClock())
    try:
        await fetch_playback(
            client,
            args.camera,
            start,
            end,
            out,
            status=status,
            retries=args.retries,
            answer_timeout=args.timeout,
        )
    finally:
        await client.close()
