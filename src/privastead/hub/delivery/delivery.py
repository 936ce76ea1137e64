"""From camera events to encrypted relay messages: notifications, clip fragments, heartbeats.

Delivery is the camera stage's ``ClipSink`` (``capture.camera``). The camera calls it on the
event loop; each call only queues a job on the camera's ``events`` group worker
(``delivery.worker``) and returns, so packet routing never waits for MLS or a disk:

- event start: a ``Notification`` without thumbnail (256 bytes of plaintext, small enough for
  the push wake-up), then the same event id with the thumbnail once it exists;
- clip: a self-update commit in ``events`` before its init segment (a leaked key opens one
  clip at most), then each fMP4 fragment as a ``ClipFragment``. One fragment is held back so
  the last one can carry ``final`` when the recorder closes the clip;
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
import contextlib
import functools
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from privastead import compat
from privastead.errors import RelayError
from privastead.hub.control.live_sessions import LiveSessions
from privastead.hub.control.reader import ControlReader
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
from privastead.protocol.messages import ClipFragment, Notification
from privastead.relay.client import RelayClient

log = logging.getLogger(__name__)


def _nothing(_app_seq: int) -> None:
    return None


def wire_event_id(event_id: str) -> str:
    """The protocol's 128-bit hex form; the detector's ids have it already (older 64-bit ids,
    e.g. in a journal written before, are padded)."""
    return event_id.rjust(32, "0")


@dataclass
class _Clip:
    clip_id: str
    event_id: str
    held: tuple[int, bytes] | None = None  # the latest fragment, sent when the next arrives
    refused: bool = False  # the outbox refused a fragment (quota): the rest is not sent


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
        self.keep_plaintext_clips = keep_plaintext_clips
        self.control_interval = control_interval
        # Touched only by the camera's events worker (one per camera: keys never collide).
        self._clips: dict[tuple[str, str], _Clip] = {}
        self.sent_notifications = 0
        self.sent_fragments = 0

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
        with contextlib.suppress(TimeoutError):
            async with compat.timeout(seconds):
                for group in self.groups:
                    await group.worker.wait_idle()
                for group in self.groups:
                    await self.uploader.drain(group.mailbox)

    async def _read_control(self) -> None:
        while True:
            try:
                await self.control.poll()
            except RelayError as e:
                log.warning("reading client messages: %s", e)
            except Exception:  # never let a client's message stop the hub
                log.exception("reading client messages failed")
            await self.wake.wait(self.control_interval)

    # -- ClipSink: called by the cameras on the event loop; each call only queues a job ---------

    def on_event(self, notice: EventNotice) -> None:
        group = self.groups.get(notice.camera, "events")
        group.worker.submit(self._notify, group, notice)

    def on_fragment(self, camera: str, clip: str, index: int, data: bytes, is_init: bool) -> None:
        group = self.groups.get(camera, "events")
        group.worker.submit(self._fragment, group, clip, index, data, is_init)

    def on_clip_end(self, camera: str, clip: str, path: Path) -> None:
        group = self.groups.get(camera, "events")
        group.worker.submit(self._clip_end, group, clip, path)

    # -- on the events group's worker -----------------------------------------------------------

    def _notify(self, group: HubGroup, notice: EventNotice) -> None:
        group.sender.send(
            lambda seq: Notification(
                camera=notice.camera,
                event_id=wire_event_id(notice.event_id),
                at=notice.at,
                score=notice.score,
                boxes=notice.boxes,
                seq=seq,
                thumbnail=notice.thumbnail,
            ),
        )
        self.sent_notifications += 1

    def _fragment(self, group: HubGroup, clip: str, index: int, data: bytes, is_init: bool) -> None:
        camera = group.camera
        key = (camera, clip)
        if is_init:
            # New keys before every clip: whoever steals one epoch's keys reads one clip.
            group.self_update()
            new = _Clip(clip_id=secrets.token_hex(16), event_id=wire_event_id(clip))
            self._clips[key] = new
            self.journal.open(camera, new.clip_id, new.event_id, clip, data)
        state = self._clips.get(key)
        if state is None:
            log.warning("%s: fragment %d of an unknown clip: not sent", camera, index)
            return
        if state.held is not None:
            self._send_fragment(group, state, state.held, final=False)
        state.held = (index, data)

    def _clip_end(self, group: HubGroup, clip: str, path: Path) -> None:
        camera = group.camera
        state = self._clips.pop((camera, clip), None)
        if state is None:
            return
        if state.held is not None:
            self._send_fragment(group, state, state.held, final=True)
        self.journal.close(camera, state.clip_id)
        if not self.keep_plaintext_clips and not state.refused:
            # Every fragment's ciphertext is durable in the outbox: the plaintext may go.
            with contextlib.suppress(OSError):
                path.unlink()

    def _send_fragment(
        self, group: HubGroup, state: _Clip, held: tuple[int, bytes], *, final: bool
    ) -> None:
        if state.refused:
            return
        index, data = held
        camera = group.camera
        next_app_seq = group.sender.next_app_seq
        self.journal.sending(camera, state.clip_id, index, next_app_seq, len(data), final=final)
        sent = group.sender.send(
            lambda seq: ClipFragment(
                clip_id=state.clip_id,
                event_id=state.event_id,
                index=index,
                final=final,
                is_init=index == 0,
                seq=seq,
                data=data,
            ),
        )
        if not sent.accepted:
            state.refused = True
            self.journal.close(camera, state.clip_id)
            log.warning("%s: outbox full, clip %s not sent", camera, state.clip_id)
        self.sent_fragments += 1


def send_now(group: HubGroup, build: Callable[[int], Message]) -> Sent:
    """Encrypt and queue on the caller's thread: for a caller that is the group's worker, or
    runs before the hub's tasks start (recovery) or without a running hub (CLI)."""
    return group.sender.send(build)


def send_queued(group: HubGroup, build: Callable[[int], Message]) -> object:
    """Queue the send on the group's worker (in place when called from that worker)."""
    return group.worker.submit(group.sender.send, build)


__all__ = ["Delivery", "send_now", "send_queued", "wire_event_id"]
