"""From camera events to encrypted relay messages: notifications, clip fragments, heartbeats.

Hooked into every camera by the runner (``hooks(camera)``), on the event loop:

- event start: a ``Notification`` without thumbnail (256 bytes of plaintext, small enough for
  the push wake-up), then the same event id with the thumbnail once it exists;
- clip: a self-update commit in ``events`` before its init segment (a leaked key opens one
  clip at most), then each fMP4 fragment as a ``ClipFragment``. One fragment is held back so
  the last one can carry ``final`` when the recorder closes the clip;
- every ``heartbeat_interval``: a ``Heartbeat`` in each camera's ``control`` group
  (``hub.heartbeats``: the hub's clock and what it sent, so clients judge the relay), plus one
  at once to answer a client's ``ClockProbe``;
- every group gets new keys at least every ``rotation_interval`` (``hub.rotation``).

Every message goes through the group's ``GroupSender`` (MLS state and outbox written together)
and the ``Uploader`` sends the outbox in order. The recorded MP4 is deleted once every fragment's
ciphertext is durable, unless ``keep_plaintext_clips`` is set.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privastead import compat
from privastead.clock import Clock
from privastead.errors import RelayError
from privastead.hub.camera import EventNotice
from privastead.hub.clip_journal import ClipJournal, end_interrupted_clips
from privastead.hub.control import ControlReader
from privastead.hub.groups import HubGroup, HubGroups
from privastead.hub.heartbeats import Heartbeats
from privastead.hub.live_sessions import LiveSessions
from privastead.hub.mailbox_wake import MailboxWake
from privastead.hub.outbox import Outbox
from privastead.hub.rotation import DEFAULT_INTERVAL, KeyRotation
from privastead.hub.sender import Sent
from privastead.hub.uploader import Uploader
from privastead.protocol.codec import Message
from privastead.protocol.messages import ClipFragment, Notification
from privastead.relay.client import RelayClient

log = logging.getLogger(__name__)


def _nothing(_app_seq: int) -> None:
    return None


def wire_event_id(event_id: str) -> str:
    """The detector's event ids are 64-bit hex; the protocol's ids are 128-bit hex."""
    return event_id.rjust(32, "0")


@dataclass
class _Clip:
    clip_id: str
    event_id: str
    held: tuple[int, bytes] | None = None  # the latest fragment, sent when the next arrives
    refused: bool = False  # the outbox refused a fragment (quota): the rest is not sent


@dataclass(frozen=True)
class CameraHooks:
    on_event: Any
    on_fragment: Any
    on_clip_end: Any


class Delivery:
    def __init__(
        self,
        groups: HubGroups,
        outbox: Outbox,
        relay: RelayClient,
        *,
        clock: Clock,
        heartbeat_interval: float = 60.0,
        rotation_interval: float = DEFAULT_INTERVAL,
        keep_plaintext_clips: bool = False,
        health: Any = None,
        journal: ClipJournal | None = None,
    ) -> None:
        self.groups = groups
        self.outbox = outbox
        self.relay = relay
        self.clock = clock
        self.keep_plaintext_clips = keep_plaintext_clips
        self.heartbeats = Heartbeats(
            groups, outbox, self._send, clock=clock, interval=heartbeat_interval, health=health
        )
        self.rotation = KeyRotation(groups, clock=clock, interval=rotation_interval)
        self.uploader = Uploader(outbox, relay, clock=clock)
        # Open clips on disk, so that a restart ends a clip cut mid-recording (clip_journal).
        self.journal = journal or ClipJournal(groups.data_dir / "open-clips")
        self._clips: dict[tuple[str, str], _Clip] = {}
        self.control = ControlReader(groups, outbox, relay, clock=clock)
        self.control.on_probe = self.heartbeats.answer
        self.control_interval = 1.0
        # Livestreams answer LiveRequest/LiveStop; the reader wakes on news in control.
        self.live = LiveSessions(groups, relay, self._send)
        self.control.live = self.live
        control = [g.mailbox for g in groups if g.group == "control"]
        self.wake = MailboxWake(relay, control, clock)
        self.sent_notifications = 0
        self.sent_fragments = 0

    # -- startup ---------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Create the mailboxes on the relay (idempotent) and put back what a crash lost."""
        for group in self.groups:
            replay = functools.partial(self.journal.replay, group.camera)
            recovery = group.sender.recover(replay if group.group == "events" else _nothing)
            if recovery.lost:
                log.warning("%s: %d message(s) lost in a crash", group.key, len(recovery.lost))
        end_interrupted_clips(self.journal, self.groups, self._send)
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

    async def _read_control(self) -> None:
        while True:
            try:
                await self.control.poll()
            except RelayError as e:
                log.warning("reading client messages: %s", e)
            except Exception:  # never let a client's message stop the hub
                log.exception("reading client messages failed")
            await self.wake.wait(self.control_interval)

    def _send(self, group: HubGroup, build: Callable[[int], Message]) -> Sent:
        # The outbox records each message's app seq with it: resends find it there.
        return group.sender.send(build)

    # -- camera hooks (event loop) --------------------------------------------------------

    def hooks(self, camera: str) -> CameraHooks:
        return CameraHooks(
            on_event=self.on_event,
            on_fragment=lambda clip, index, data, is_init: self.on_fragment(
                camera, clip, index, data, is_init
            ),
            on_clip_end=lambda clip, path: self.on_clip_end(camera, clip, path),
        )

    def on_event(self, notice: EventNotice) -> None:
        group = self.groups.get(notice.camera, "events")
        self._send(
            group,
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

    def on_fragment(self, camera: str, clip: str, index: int, data: bytes, is_init: bool) -> None:
        key = (camera, clip)
        group = self.groups.get(camera, "events")
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
            self._send_fragment(camera, state, state.held, final=False)
        state.held = (index, data)

    def on_clip_end(self, camera: str, clip: str, path: Path) -> None:
        state = self._clips.pop((camera, clip), None)
        if state is None:
            return
        if state.held is not None:
            self._send_fragment(camera, state, state.held, final=True)
        self.journal.close(camera, state.clip_id)
        if not self.keep_plaintext_clips and not state.refused:
            # Every fragment's ciphertext is durable in the outbox: the plaintext may go.
            with contextlib.suppress(OSError):
                path.unlink()

    def _send_fragment(
        self, camera: str, state: _Clip, held: tuple[int, bytes], *, final: bool
    ) -> None:
        if state.refused:
            return
        index, data = held
        group = self.groups.get(camera, "events")
        next_app_seq = group.sender.next_app_seq
        self.journal.sending(camera, state.clip_id, index, next_app_seq, len(data), final=final)
        sent = self._send(
            group,
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
            log.warning("%s: outbox full, clip %s not sent", camera, state.clip_id[:8])
        self.sent_fragments += 1


__all__ = ["CameraHooks", "Delivery"]
