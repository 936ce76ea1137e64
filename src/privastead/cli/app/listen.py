"""`privastead-app listen`: receive continuously; print each decrypted notification and clip.

One line per notification (`event CAMERA TIME score=S id=EVENT_ID [thumbnail]`) and per
completed clip (`clip CAMERA EVENT_ID PATH`). With `--exec CMD`, CMD runs for each
notification with PRIVASTEAD_CAMERA, PRIVASTEAD_EVENT_ID, PRIVASTEAD_SCORE, PRIVASTEAD_AT and
PRIVASTEAD_THUMBNAIL (may be empty) in its environment.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from privastead.cli.app.common import add_data_dir, data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exec", dest="command", help="a shell command to run per notification")
    parser.add_argument(
        "--offline-after",
        type=float,
        default=900.0,
        help="seconds without a heartbeat before reporting 'hub offline' (default 900)",
    )
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument(
        "--update-interval",
        type=float,
        default=86400.0,
        help="seconds between this device's key update proposals (default: a day)",
    )
    parser.add_argument("--poll", type=float, default=5.0, help="seconds between polls (5)")
    add_data_dir(parser)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from privastead.client.device import DataDir
    from privastead.client.sync import Syncer
    from privastead.clock import SystemClock
    from privastead.protocol.codec import Message
    from privastead.protocol.messages import ClipFragment, Notification

    holder: list[Syncer] = []

    def on_message(camera: str, group: str, message: Message) -> None:
        if isinstance(message, Notification):
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(message.at))
            thumb = " thumbnail" if message.thumbnail else ""
            print(
                f"event {camera} {when} score={message.score:.3f} id={message.event_id}{thumb}",
                flush=True,
            )
            if args.command:
                record = holder[0].events.get(message.event_id)
                path = record.thumbnail_path if record is not None else None
                env = {
                    **os.environ,
                    "PRIVASTEAD_CAMERA": camera,
                    "PRIVASTEAD_EVENT_ID": message.event_id,
                    "PRIVASTEAD_SCORE": f"{message.score:.5f}",
                    "PRIVASTEAD_AT": f"{message.at:.3f}",
                    "PRIVASTEAD_THUMBNAIL": str(path or ""),
                }
                subprocess.run(args.command, shell=True, env=env, check=False)  # noqa: S602 - the user's own command
        elif isinstance(message, ClipFragment) and message.final:
            record = holder[0].events.get(message.event_id)
            path = record.clip_path if record is not None else None
            print(f"clip {camera} {message.event_id} {path}", flush=True)

    async def main() -> int:
        syncer = Syncer(
            DataDir(data_dir(args)),
            clock=SystemClock(),
            offline_after=args.offline_after,
            on_message=on_message,
        )
        holder.append(syncer)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if args.duration is not None:
            loop.call_later(args.duration, stop.set)
        print(f"listening for {', '.join(syncer.info.cameras())}", file=sys.stderr, flush=True)
        try:
            await syncer.listen(poll=args.poll, stop=stop, update_interval=args.update_interval)
        finally:
            await syncer.close()
        return 0

    return asyncio.run(main())
