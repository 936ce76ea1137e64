"""`privastead-app listen`: receive continuously; print each decrypted notification and clip,
and every change of the hub's health as this device judges it.

The details (environment of --exec, states, exit status) are in ``EPILOG``, shown by --help.
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
from privastead.client.app import Client, ClientOptions
from privastead.client.cameras import CameraState
from privastead.client.defaults import (
    DEFAULT_OFFLINE_AFTER,
    DEFAULT_SKEW_ALLOWANCE,
    DEFAULT_UPDATE_INTERVAL,
    DEFAULT_WITHHELD_AFTER,
)
from privastead.client.health import HealthReport
from privastead.protocol.codec import Message
from privastead.protocol.messages import ClipFragment, Notification

EXIT_REMOVED = 3

EPILOG = """One line per notification (`event CAMERA TIME score=S id=EVENT_ID [thumbnail]`), per
completed clip (`clip CAMERA EVENT_ID PATH`), per health change (`health STATE: DETAIL`) and per
camera that goes away or comes back (`camera CAMERA offline since TIME` / `camera CAMERA back
online`). EVENT_ID is the full event id, as `events`, `clip` and the UI show it.

With `--exec CMD`, CMD (a shell command) runs in the background once per event (the hub
notifies twice: at once, then with the thumbnail; CMD runs on the first), once per health
change and once per camera change; a command that fails is reported (`exec failed ...` on
stderr) and listening goes on. Its environment (besides this process's own):

  PRIVASTEAD_KIND        `event`, `health` or `camera`
  PRIVASTEAD_HUB         the hub's name
  for an event:
  PRIVASTEAD_CAMERA      the camera
  PRIVASTEAD_EVENT_ID    the full event id (`privastead-app clip EVENT_ID --out FILE`)
  PRIVASTEAD_SCORE       the motion score
  PRIVASTEAD_AT          when, Unix time on the hub's clock
  PRIVASTEAD_THUMBNAIL   a JPEG path (usually still empty: the thumbnail follows)
  for a health change:
  PRIVASTEAD_STATE       ok, hub_offline, withheld, relay_unreachable, removed, desync,
                         stale_epoch, hub_clock, hub_disk or camera_offline
  PRIVASTEAD_DETAIL      the same sentence as the `health` line
  for a camera change:
  PRIVASTEAD_CAMERA      the camera
  PRIVASTEAD_STATE       `offline` or `online`
  PRIVASTEAD_SINCE       offline since when, Unix time on this device's clock (empty when
                         online)
  PRIVASTEAD_DETAIL      the same sentence as the `camera` line

States: `hub_offline` the newest heartbeat is older than --offline-after by the hub's own clock
(the hub is down, or the relay holds its messages back); `withheld` heartbeats say the hub sent
messages that never arrived, and asking again did not bring them within --withheld-after;
`relay_unreachable`; `removed` this device was removed from the hub (listen then stops with
status 3: pair it again to use it); `desync`/`stale_epoch` this device needs a re-add (see
below); `hub_clock` the hub's clock is off ours by more than --skew-allowance although its
heartbeats arrive on time; `hub_disk` the hub's disk is full (continuous recording paused
until old recordings are deleted; event clips and keys are kept); `camera_offline` the hub
is fine but gets no picture from a camera (it counts a camera as gone after 10 s without a
frame, whether the camera closed its connection or hung with it open, and sends a heartbeat
at once). With the hub's default
heartbeat every 60 s, the defaults tell you within 3 minutes that the hub went dark or that
the relay withholds messages, and within about 15 s that a camera went away.

When a group of this device has lost sync with the hub (its mailbox waits on an epoch this
device never reached, heartbeats name a later epoch, or its messages stop decrypting) for
`--resync-after` seconds, `listen` asks the hub to re-add it, as `privastead-app resync` does,
at most once per `--resync-interval` per group (doubling while unanswered), and prints
`resync CAMERA/GROUP: ...` lines. Every `--update-interval` (and whenever any command runs
after that long) it proposes fresh keys for each of its groups (post-compromise security).

While it runs, `status`, `devices`, `events`, `clip`, `live`, `sync` and `resync` on the same
data directory ask this process over its local socket (DATA_DIR/run/app.sock, 0600).

Exit status: 0 when stopped (Ctrl-C, --duration), 3 when this device was removed.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument(
        "--exec",
        dest="command",
        help="a shell command to run once per event, health change and camera change (its "
        "environment variables are listed below)",
    )
    parser.add_argument(
        "--offline-after",
        type=float,
        default=DEFAULT_OFFLINE_AFTER,
        help="report 'hub_offline' when the newest heartbeat is this many seconds old by the "
        f"hub's clock (default {DEFAULT_OFFLINE_AFTER:.0f})",
    )
    parser.add_argument(
        "--withheld-after",
        type=float,
        default=DEFAULT_WITHHELD_AFTER,
        help="report 'withheld' when messages the hub says it sent are still missing this "
        f"many seconds after asking for them (default {DEFAULT_WITHHELD_AFTER:.0f})",
    )
    parser.add_argument(
        "--skew-allowance",
        type=float,
        default=DEFAULT_SKEW_ALLOWANCE,
        help="how far the hub's clock may be off this device's, in seconds "
        f"(default {DEFAULT_SKEW_ALLOWANCE:.0f})",
    )
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument(
        "--update-interval",
        type=float,
        default=DEFAULT_UPDATE_INTERVAL,
        help="least seconds between this device's key update proposals "
        f"(default {DEFAULT_UPDATE_INTERVAL:.0f})",
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
    """Runs the user's ``--exec`` command once per event id and per health change, without
    holding up receiving."""

    def __init__(self, command: str, hub: str = "") -> None:
        self.command = command
        self.hub = hub
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
            "PRIVASTEAD_KIND": "event",
            "PRIVASTEAD_HUB": self.hub,
            "PRIVASTEAD_CAMERA": camera,
            "PRIVASTEAD_EVENT_ID": message.event_id,
            "PRIVASTEAD_SCORE": f"{message.score:.5f}",
            "PRIVASTEAD_AT": f"{message.at:.3f}",
            "PRIVASTEAD_THUMBNAIL": str(thumbnail or ""),
        }
        self._start(env, f"event {message.event_id}")

    def health(self, state: str, detail: str) -> None:
        env = {
            **os.environ,
            "PRIVASTEAD_KIND": "health",
            "PRIVASTEAD_HUB": self.hub,
            "PRIVASTEAD_STATE": state,
            "PRIVASTEAD_DETAIL": detail,
        }
        self._start(env, f"health {state}")

    def camera(self, camera: str, state: str, since: float | None, detail: str) -> None:
        env = {
            **os.environ,
            "PRIVASTEAD_KIND": "camera",
            "PRIVASTEAD_HUB": self.hub,
            "PRIVASTEAD_CAMERA": camera,
            "PRIVASTEAD_STATE": state,
            "PRIVASTEAD_SINCE": "" if since is None else f"{since:.3f}",
            "PRIVASTEAD_DETAIL": detail,
        }
        self._start(env, f"camera {camera} {state}")

    def _start(self, env: dict[str, str], what: str) -> None:
        task = asyncio.get_running_loop().create_task(self._run(env, what))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, env: dict[str, str], event_id: str) -> None:
        try:
            proc = await asyncio.create_subprocess_shell(self.command, env=env)
            code = await proc.wait()
        except OSError as e:
            print(f"exec failed for {event_id}: {e}", file=sys.stderr, flush=True)
            return
        if code != 0:
            print(f"exec failed for {event_id}: exit status {code}", file=sys.stderr, flush=True)

    async def drain(self) -> None:
        """Let running commands finish (they were started for real events), up to 30 s."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=30.0)


class Lines:
    """What `listen` prints (and runs ``--exec`` for) as the receive loop reports it."""

    def __init__(self, runner: CommandRunner | None) -> None:
        self.runner = runner
        self.client: Client | None = None  # set once open (the callbacks read its stores)

    def message(self, camera: str, group: str, message: Message) -> None:
        client = self.client
        if client is None:
            return
        if isinstance(message, Notification):
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(message.at))
            thumb = " thumbnail" if message.thumbnail else ""
            print(
                f"event {camera} {when} score={message.score:.3f} id={message.event_id}{thumb}",
                flush=True,
            )
            if self.runner is not None:
                record = client.events.get(message.event_id)
                self.runner.notify(camera, message, record.thumbnail_path if record else None)
        elif isinstance(message, ClipFragment) and message.final:
            record = client.events.get(message.event_id)
            path = record.clip_path if record is not None else None
            print(f"clip {camera} {message.event_id} {path}", flush=True)

    def health(self, report: HealthReport) -> None:
        print(f"health {report.state.value}: {report.detail}", flush=True)
        if self.runner is not None:
            self.runner.health(report.state.value, report.detail)

    def camera(self, camera: CameraState) -> None:
        assert self.client is not None
        since = self.client.health.camera_offline_since(camera.name)
        if since is None:
            line, state = f"camera {camera.name} back online", "online"
        else:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
            line, state = f"camera {camera.name} offline since {when}", "offline"
        print(line, flush=True)
        if self.runner is not None:
            self.runner.camera(camera.name, state, since, line)


def run(args: argparse.Namespace) -> int:
    from privastead.client.app import Client
    from privastead.client.device import DataDir
    from privastead.client.local_socket import open_owner, serving
    from privastead.client.resync import DEFAULT_MAX_INTERVAL, ResyncPolicy
    from privastead.client.watch import WatchSettings
    from privastead.clock import SystemClock

    runner = CommandRunner(args.command) if args.command else None
    lines = Lines(runner)

    async def main() -> int:
        clock = SystemClock()
        policy = ResyncPolicy(
            clock,
            after=args.resync_after,
            interval=args.resync_interval,
            max_interval=max(args.resync_interval, DEFAULT_MAX_INTERVAL),
        )
        options = ClientOptions(
            watch=WatchSettings(args.offline_after, args.withheld_after, args.skew_allowance),
            resync=policy,
            auto_resync=not args.no_auto_resync,
            update_interval=args.update_interval,
        )
        root = data_dir(args)
        syncer = await open_owner(
            root,
            lambda: Client(
                DataDir(root),
                clock=clock,
                options=options,
                on_message=lines.message,
                on_status=lambda line: print(line, flush=True),
            ),
        )
        lines.client = syncer
        if runner is not None:
            runner.hub = syncer.info.hub_name

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if args.duration is not None:
            loop.call_later(args.duration, stop.set)
        print(f"listening for {', '.join(syncer.info.cameras())}", file=sys.stderr, flush=True)
        try:
            async with serving(syncer):  # `status`, `live`... ask this process meanwhile
                await syncer.listen(
                    poll=args.poll, stop=stop, on_health=lines.health, on_camera=lines.camera
                )
        finally:
            await syncer.close()
            if runner is not None:
                await runner.drain()
        if syncer.removed:
            print(
                f"this device was removed from {syncer.info.hub_name!r}: it stops here (pair "
                "it again with `privastead-app pair` to use it)",
                file=sys.stderr,
                flush=True,
            )
            return EXIT_REMOVED
        return 0

    return asyncio.run(main())
