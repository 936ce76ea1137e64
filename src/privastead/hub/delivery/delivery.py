"""From camera events to encrypted relay messages: notifications, clip fragments, heartbeats.

Delivery is the camera stage's ``ClipSink`` (``capture.camera``) through ``ClipDelivery``
(``delivery.clip_delivery``): each call only queues work for the camera's ``events`` group
worker (``delivery.worker``) and returns, so packet routing never waits for MLS or a disk;
the bytes it queues per camera are bounded, and the worker sends what waits in bounded batches
with one durable MLS write each (``delivery.batch``). Besides:

- every ``heartbeat_interval``: a ``Heartbeat`` in each camera's ``control`` group
  (``delivery.heartbeats``: the hub's clock and what it sent, so clients judge the relay), plus
  one at once to answer a client's ``ClockProbe``;
- every group gets new keys at least every ``rotation_interval`` (``delivery.rotation``).

Every message goes through the group's ``GroupSender`` (MLS state and outbox written together)
on the group's worker, and the ``Uploader`` sends the outbox in order. The recorded MP4 is
deleted once every fragment's ciphertext is durable, unless ``keep_plaintext_clips`` is set.
The parts are built by the hub's composition root (``hub.app``) and handed in.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from pathlib import Path

from privastead import compat
from privastead.errors import RelayError
from privastead.hub.control.live_sessions import LiveSessions
from privastead.hub.control.reader import ControlReader
from privastead.hub.delivery.clip_delivery import ClipDelivery, wire_event_id
from privastead.hub.delivery.clip_journal import ClipJournal, end_interrupted_clips
from privastead.hub.delivery.heartbeats import Heartbeats
from privastead.hub.delivery.mailbox_wake import MailboxWake
from privastead.hub.delivery.outbox import Outbox
from privastead.hub.delivery.rotation import KeyRotation
from privastead.hub.delivery.sender import Sent
from privastead.hub.delivery.uploader import Uploader
from privastead.hub.recording.clips import EventNotice
from privastead.hub.state.groups import HubGroup, HubGroups
from privastead.protocol.codec import Message
from privastead.relay.client import RelayClient

log = logging.getLogger(__name__)


def _nothing(_app_seq: int) -> None:
    return None


class Delivery:
    def __init__(
        self,
        groups: HubGroups,
        outbox: Outbox,
        relay: RelayClient,
        *,
        heartbeats: Heartbeats,
        rotation: KeyRotation,
        uploader: Uploader,
        control: ControlReader,
        live: LiveSessions,
        wake: MailboxWake,
        journal: ClipJournal,
        keep_plaintext_clips: bool = False,
        control_interval: float = 1.0,
    ) -> None:
        self.groups = groups
        self.outbox = outbox
        self.relay = relay
        self.heartbeats = heartbeats
        self.rotation = rotation
        self.uploader = uploader
        self.control = control
        self.live = live
        self.wake = wake
        # Open clips on disk, so that a restart ends a clip cut mid-recording (clip_journal).
        self.journal = journal
        self.control_interval = control_interval
        self.clips = ClipDelivery(groups, journal, keep_plaintext_clips=keep_plaintext_clips)

    @property
    def sent_notifications(self) -> int:
        return self.clips.sent_notifications

    @property
    def sent_fragments(self) -> int:
        return self.clips.sent_fragments

    # -- startup ---------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Create the mailboxes on the relay (idempotent) and put back what a crash lost."""
        for group in self.groups:
            replay = functools.partial(self.journal.replay, group.camera)
            recovery = await group.worker.call(
                group.sender.recover, replay if group.group == "events" else _nothing
            )
            if recovery.lost:
                log.warning("%s: %d message(s) lost in a crash", group.key, len(recovery.lost))
        # Startup, before any camera runs: the clips a crash cut go out first, in a thread.
        await asyncio.to_thread(end_interrupted_clips, self.journal, self.groups, send_now)
        for group in self.groups:
            await self.relay.create_mailbox(group.mailbox)
            # Registered, the relay keeps client messages until the hub has read them too.
            await self.relay.register(group.mailbox)

    async def run(self) -> None:
        """Upload and send heartbeats until cancelled."""
        async with compat.TaskGroup() as tasks:
            tasks.create_task(self.uploader.run())
            tasks.create_task(self.heartbeats.run())
            tasks.create_task(self.rotation.run())
            tasks.create_task(self._read_control())
            tasks.create_task(self.live.run())
            tasks.create_task(self.wake.run())

    async def drain(self, seconds: float) -> None:
        """At shutdown: let the queued jobs finish and the last fragments reach the relay."""
        try:
            async with compat.timeout(seconds):
                for group in self.groups:
                    await group.worker.wait_idle()
                for group in self.groups:
                    await self.uploader.drain(group.mailbox)
        except TimeoutError:
            # The outbox lock may be held across a worker's fsync: ask from a thread.
            left = await asyncio.to_thread(self.outbox.status)
            log.warning(
                "stopping with %d message(s) (%d bytes) not yet at the relay after %.0f s: "
                "they stay in the outbox and go when the hub next runs",
                left.pending_messages,
                left.pending_bytes,
                seconds,
            )

    async def _read_control(self) -> None:
        while True:
            try:
                await self.control.poll()
            except RelayError as e:
                log.warning("reading client messages: %s", e)
            except Exception:  # never let a client's message stop the hub
                log.exception("reading client messages failed")
            await self.wake.wait(self.control_interval)

    # -- ClipSink (the cameras call it on the event loop): ClipDelivery queues the work -------

    def on_event(self, notice: EventNotice) -> None:
        self.clips.on_event(notice)

    def on_fragment(self, camera: str, clip: str, index: int, data: bytes, is_init: bool) -> None:
        self.clips.on_fragment(camera, clip, index, data, is_init)

    def on_clip_end(self, camera: str, clip: str, path: Path) -> None:
        self.clips.on_clip_end(camera, clip, path)


def send_now(group: HubGroup, build: Callable[[int], Message]) -> Sent:
    """Encrypt and queue on the caller's thread: for a caller that is the group's worker, or
    runs before the hub's tasks start (recovery) or without a running hub (CLI)."""
    return group.sender.send(build)


def send_queued(group: HubGroup, build: Callable[[int], Message]) -> object:
    """Queue the send on the group's worker (in place when called from that worker)."""
    return group.worker.submit(group.sender.send, build)


__all__ = ["Delivery", "send_now", "send_queued", "wire_event_id"]
