"""The hub's composition root: every part of a running hub, built from ``hub.toml`` here.

Read top to bottom, :meth:`Hub.open` is the hub's wiring diagram. Each part gets what it needs
through its constructor (nothing is assigned afterwards), and parts meet through small typed
interfaces: the cameras' recorders hand events and clips to a ``recording.clips.ClipSink`` (the
delivery),
livestreams read the running cameras as ``control.live_sessions.LiveSource``, and the camera
health read by heartbeats and the metrics endpoint is one ``capture.health.CameraHealth``.

Stages (the sub-packages of ``privastead.hub``):

    capture     cameras: RTSP ingest, pre-roll ring, live feed; supervised by the runner
    analysis    decode, motion detection, the event tracker (each camera's analysis thread,
                started by ``capture.camera``)
    recording   clips cut from the ring, thumbnails, sidecars; continuous recording in
                segments, event marks, retention and the disk's health (``recordings``)
    delivery    events and clips to MLS messages on per-group workers, outbox, upload,
                heartbeats, key rotation
    control     what clients ask in their control groups: resends, re-adds, probes, live,
                playback of the continuous recording
    admin       pairing and removal over the admin socket, the metrics endpoint
    state       the data directory, the MLS groups, the device registry

Without ``[relay] url`` the hub records locally: no groups, no delivery, no admin socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TextIO

from privastead.clock import Clock, SystemClock
from privastead.crypto import signature_hash_backend
from privastead.hub.admin.loop_lag import LoopLag
from privastead.hub.admin.metrics import HubMetrics, MetricsServer
from privastead.hub.admin.ops import HubAdmin
from privastead.hub.admin.server import AdminServer
from privastead.hub.capture.camera import Camera
from privastead.hub.capture.health import CameraHealth
from privastead.hub.capture.runner import HubRunner
from privastead.hub.config import HubConfig
from privastead.hub.control.live_sessions import LiveSessions
from privastead.hub.control.playback_sessions import PlaybackSessions
from privastead.hub.control.reader import ControlReader
from privastead.hub.delivery.clip_journal import ClipJournal
from privastead.hub.delivery.delivery import Delivery, send_now, send_queued
from privastead.hub.delivery.heartbeats import Heartbeats
from privastead.hub.delivery.mailbox_wake import MailboxWake
from privastead.hub.delivery.rotation import KeyRotation
from privastead.hub.delivery.uploader import Uploader
from privastead.hub.recording.recordings import Recordings
from privastead.hub.state.service import OpenHub, StateHolder, open_hub
from privastead.media.diskspace import DiskStatus
from privastead.media.ingest import IngestSettings

log = logging.getLogger(__name__)

DRAIN_SECONDS = 10.0  # at shutdown: how long the last fragments may take to reach the relay
STATE_WAIT_SECONDS = 30.0  # at start: how long to wait for a `devices` command to let go


def _waiting_for(holder: StateHolder | None) -> None:
    log.info(
        "waiting up to %.0f s for %s to release the hub's state",
        STATE_WAIT_SECONDS,
        holder or "another privastead-hub process",
    )


def build_delivery(
    config: HubConfig,
    opened: OpenHub,
    cameras: dict[str, Camera],
    health: CameraHealth,
    clock: Clock,
    *,
    recordings: Recordings | None = None,
) -> Delivery:
    """Delivery and its parts, over the groups ``open_hub`` opened."""
    groups, outbox, relay = opened.groups, opened.outbox, opened.relay
    paths = config.hub.paths()
    heartbeats = Heartbeats(
        groups,
        outbox,
        send_now,  # a heartbeat is built and sent on the control group's worker
        clock=clock,
        interval=config.relay.heartbeat_interval,
        health=health.facts,
    )
    live = LiveSessions(groups, relay, send_queued, cameras=cameras)
    playback = PlaybackSessions(
        groups,
        relay,
        send_queued,
        paths.recordings,
        paths.recordings_index,
        protected=recordings.protected if recordings is not None else None,
    )
    control = ControlReader(
        groups,
        outbox,
        relay,
        clock=clock,
        on_probe=heartbeats.answer,
        live=live,
        playback=playback,
    )
    mailboxes = [g.mailbox for g in groups if g.group == "control"]
    return Delivery(
        groups,
        outbox,
        relay,
        heartbeats=heartbeats,
        rotation=KeyRotation(groups, clock=clock, interval=config.relay.key_rotation_interval),
        uploader=Uploader(outbox, relay, clock=clock),
        control=control,
        live=live,
        wake=MailboxWake(relay, mailboxes, clock),
        journal=ClipJournal(
            paths.open_clips, paths.clips, keep_plaintext=config.relay.keep_plaintext_clips
        ),
        keep_plaintext_clips=config.relay.keep_plaintext_clips,
    )


class Hub:
    """A running hub: the cameras, and with a relay the delivery, admin socket and metrics."""

    def __init__(
        self,
        config: HubConfig,
        runner: HubRunner,
        health: CameraHealth,
        recordings: Recordings,
        *,
        delivery: Delivery | None,
        admin: AdminServer | None,
        metrics: MetricsServer | None,
        lag: LoopLag | None = None,
    ) -> None:
        self.config = config
        self.runner = runner
        self.health = health
        self.recordings = recordings
        self.delivery = delivery
        self.admin = admin
        self.metrics = metrics
        self.lag = lag

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        config: HubConfig,
        *,
        clock: Clock | None = None,
        ingest_settings: IngestSettings | None = None,
        status_stream: TextIO | None = None,
    ) -> AsyncIterator[Hub]:
        """Build every part from ``config``; on exit, close what was opened (state files last)."""
        clock = clock or SystemClock()
        cameras: dict[str, Camera] = {}  # the running cameras, filled by the runner
        paths = config.hub.paths()
        async with contextlib.AsyncExitStack() as stack:
            # Recover the segments a crash left before any camera records (file I/O: a thread).
            recordings = await asyncio.to_thread(
                Recordings.open, config.storage, config.cameras, clock, paths
            )
            stack.callback(recordings.close)
            health = CameraHealth(
                [c.name for c in config.cameras], cameras, clock, storage=recordings.facts
            )
            delivery: Delivery | None = None
            admin: AdminServer | None = None
            if config.relay.url:
                # A `devices` command may hold the groups for a moment: wait for it.
                opened = await stack.enter_async_context(
                    open_hub(config, "run", wait=STATE_WAIT_SECONDS, on_wait=_waiting_for)
                )
                delivery = build_delivery(
                    config, opened, cameras, health, clock, recordings=recordings
                )
                admin = AdminServer(
                    config.hub.paths().admin_socket,
                    HubAdmin(
                        config,
                        opened.groups,
                        opened.outbox,
                        opened.relay,
                        uploader=delivery.uploader,
                    ),
                )
            runner = HubRunner(
                config,
                ingest_settings=ingest_settings,
                status_stream=status_stream,
                sink=delivery,
                cameras=cameras,
                recordings=recordings,
            )
            metrics: MetricsServer | None = None
            lag: LoopLag | None = None
            if config.metrics.enabled:
                lag = LoopLag()
                host, port = config.metrics.address()
                metrics = MetricsServer(host, port, HubMetrics(health, delivery, lag, recordings))
            yield cls(
                config,
                runner,
                health,
                recordings,
                delivery=delivery,
                admin=admin,
                metrics=metrics,
                lag=lag,
            )

    def _disk_changed(self, status: DiskStatus) -> None:
        """The disk's state changed: every camera's heartbeat now, so clients hear of it."""
        if self.delivery is not None:
            for camera in self.health.names:
                self.delivery.heartbeats.soon(camera)

    def stop(self) -> None:
        """Finish the clips being written and return from ``run`` (signal-safe)."""
        self.runner.stop()

    async def run(self, duration: float | None = None) -> None:
        """Run until ``stop()`` or ``duration`` seconds."""
        loop = asyncio.get_running_loop()
        if duration is not None:
            loop.call_later(duration, self.stop)
        started = time.monotonic()
        log.info("MLS: Ed25519 hashes with %s", signature_hash_backend())
        async with contextlib.AsyncExitStack() as stack:
            if self.delivery is not None:
                await self.delivery.prepare()
            if self.admin is not None and await self.admin.start():
                stack.push_async_callback(self.admin.close)
            if self.metrics is not None:
                await self.metrics.start()
                stack.push_async_callback(self.metrics.close)
            if self.lag is not None:
                probe = asyncio.create_task(self.lag.run(), name="loop-lag")
                stack.callback(probe.cancel)
            if self.delivery is not None:  # a camera going away is news at once
                watching = asyncio.create_task(
                    self.health.watch(self.delivery.heartbeats.soon), name="camera-health"
                )
                stack.callback(watching.cancel)
            keeping = asyncio.create_task(self.recordings.run(self._disk_changed), name="disk")
            stack.callback(keeping.cancel)
            playback = self.delivery.control.playback if self.delivery else None
            if playback is not None:  # ends its sessions when the hub stops
                replaying = asyncio.create_task(playback.run(), name="playback")
                stack.push_async_callback(_cancelled, replaying)
            sending = asyncio.create_task(self.delivery.run()) if self.delivery else None
            try:
                await self.runner.run()
            finally:
                if sending is not None and self.delivery is not None:
                    await self.delivery.drain(DRAIN_SECONDS)
                    sending.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await sending
        log.info("hub stopped after %.0f s", time.monotonic() - started)


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


__all__ = ["Hub", "build_delivery"]
