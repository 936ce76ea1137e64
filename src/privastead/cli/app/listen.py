"""`privastead-app listen`: receive continuously; print each decrypted notification and clip.

One line per notification (`event CAMERA TIME score=S id=EVENT_ID [thumbnail]`) and per
completed clip (`clip CAMERA EVENT_ID PATH`). With `--exec CMD`, CMD (a shell command) runs
once per event (the hub notifies twice: at once, then with the thumbnail; CMD runs on the
first), in the background, with PRIVASTEAD_CAMERA, PRIVASTEAD_EVENT_ID, PRIVASTEAD_SCORE,
PRIVASTEAD_AT (Unix time) and PRIVASTEAD_THUMBNAIL (a JPEG path, usually still empty) in its
environment; a command that fails is reported (`exec failed ...` on stderr) and listening
goes on.

When a group of this device has lost sync with the hub (its mailbox waits on an epoch this
device never reached, heartbeats name a later epoch, or its messages stop decrypting) for
`--resync-after` seconds, `listen` asks the hub to re-add it, as `privastead-app resync` does,
at most once per `--resync-interval` per group (doubling while unanswered), and prints
`resync CAMERA/GROUP: ...` lines.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from privastead.cli.app.common import add_data_dir, data_dir
from privastead.protocol.messages import Notification


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--exec",
        dest="command",
        help="a shell command to run once per event (see above for its environment)",
    )
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
    parser.add_argument(
        "--resync-after",
        type=float,
        default=60.0,
        help="seconds a group must look lost before asking the hub to re-add it (default 60)",
    )
    parser.add_argument(
        "--resync-interval",
        type=float,
        default=600.0,
        help="least seconds between two re-add requests for one group (default 600)",
    )
    parser.add_argument(
        "--no-auto-resync",
        action="store_true",
        help="never ask for a re-add by itself (use `privastead-app resync`)",
    )
    add_data_dir(parser)


class CommandRunner:
    """Runs the user's ``--exec`` command once per event id, without holding up receiving."""

    def __init__(self, command: str) -> None:
        self.command = command
        self._tasks: set[asyncio.Task[None]] = set()
        self._seen: dict[str, None] = {}  # event ids it ran for (insertion-ordered, bounded)

    def notify(self, camera: str, message: Notification, thumbnail: Path | None) -> None:
        if message.event_id in self._seen:
            return  # the same event again, now with its thumbnail
        self._seen[message.event_id] = None
        while len(self._seen) > 1024:
            del self._seen[next(iter(self._seen))]
        env = {
            **os.environ,
            "PRIVASTEAD_CAMERA": camera,
            "PRIVASTEAD_EVENT_ID": message.event_id,
            "PRIVASTEAD_SCORE": f"{message.score:.5f}",
            "PRIVASTEAD_AT": f"{message.at:.3f}",
            "PRIVASTEAD_THUMBNAIL": str(thumbnail or ""),
        }
        task = asyncio.get_running_loop().create_task(self._run(env, message.event_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, env: dict[str, str], event_id: str) -> None:
        try:
            proc = await asyncio.create_subprocess_shell(self.command, env=env)
            code = await proc.wait()
        except OSError as e:
            print(f"exec failed for event {event_id}: {e}", file=sys.stderr, flush=True)
            return
        if code != 0:
            print(
                f"exec failed for event {event_id}: exit status {code}", file=sys.stderr, flush=True
            )

    async def drain(self) -> None:
        """Let running commands finish (they were started for real events), up to 30 s."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=30.0)


def run(args: argparse.Namespace) -> int:
    from privastead.client.device import DataDir
    from privastead.client.resync import DEFAULT_MAX_INTERVAL, ResyncPolicy
    from privastead.client.sync import Syncer
    from privastead.clock import SystemClock
    from privastead.protocol.codec import Message
    from privastead.protocol.messages import ClipFragment

    holder: list[Syncer] = []
    runner = CommandRunner(args.command) if args.command else None

    def on_message(camera: str, group: str, message: Message) -> None:
        if isinstance(message, Notification):
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(message.at))
            thumb = " thumbnail" if message.thumbnail else ""
            print(
                f"event {camera} {when} score={message.score:.3f} id={message.event_id}{thumb}",
                flush=True,
            )
            if runner is not None:
                record = holder[0].events.get(message.event_id)
                runner.notify(camera, message, record.thumbnail_path if record else None)
        elif isinstance(message, ClipFragment) and message.final:
            record = holder[0].events.get(message.event_id)
            path = record.clip_path if record is not None else None
            print(f"clip {camera} {message.event_id} {path}", flush=True)

    async def main() -> int:
        clock = SystemClock()
        policy = ResyncPolicy(
            clock,
            after=args.resync_after,
            interval=args.resync_interval,
            max_interval=max(args.resync_interval, DEFAULT_MAX_INTERVAL),
        )
        syncer = Syncer(
            DataDir(data_dir(args)),
            clock=clock,
            offline_after=args.offline_after,
            on_message=on_message,
            resync=policy,
            auto_resync=not args.no_auto_resync,
            on_status=lambda line: print(line, flush=True),
        )
        holder.append(syncer)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if args.duration is not None:
            loop.call_later(args.duration, stop.set)
        print(f"listening for {', '.join(syncer.info.cameras())}", file=sys.stderr, flush=True)
        try:
            await syncer.listen(poll=args.poll, stop=stop, update_interval=args.update_interval)
        finally:
            await syncer.close()
            if runner is not None:
                await runner.drain()
        return 0

    return asyncio.run(main())
