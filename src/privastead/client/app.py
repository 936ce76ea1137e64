"""The client's composition root: one object per open data directory.

``Client`` opens a paired ``DataDir`` and owns everything that lives as long as it is open: the
device's pairing (``info``), one MLS ``Identity`` and ``GroupReceiver`` per group, the clip
store, the event log, the hub watch (``health``), the relay client and the re-add bookkeeping.
It is built in one place, here, from the data directory and ``ClientOptions``; every command
and the UI open a ``Client`` (or ask the one a running ``listen``/``ui`` serves, see
``client.local_server``) and never wire these parts themselves.

The receive loop is ``Syncer`` (``client.sync``): it reads the mailboxes through the client's
groups and hands each message to the receivers. What a client sends (control requests, resend
requests, key update proposals) is here, since the live view and re-adds send too.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from privastead.client.cameras import CameraState
from privastead.client.clip_retention import SWEEP_INTERVAL, load_config, prune
from privastead.client.clipstore import ClipStore
from privastead.client.defaults import DEFAULT_UPDATE_INTERVAL
from privastead.client.device import DataDir, DeviceInfo, GroupEntry
from privastead.client.eventlog import EventLog
from privastead.client.health import HealthReport
from privastead.client.readd import ReAdder, epoch_of
from privastead.client.receiver import GroupReceiver
from privastead.client.resync import ResyncPolicy
from privastead.client.sink import LocalSink
from privastead.client.sync import Syncer
from privastead.client.watch import HubWatch, WatchSettings
from privastead.clock import Clock
from privastead.crypto import Identity
from privastead.errors import (
    ConfigError,
    CryptoError,
    DeviceRemovedError,
    GroupStateError,
    RelayError,
)
from privastead.protocol.codec import Message
from privastead.protocol.health_messages import ResendGone
from privastead.protocol.messages import Heartbeat, ResendRequest
from privastead.protocol.seq import SeqTracker
from privastead.relay.client import RelayClient

log = logging.getLogger(__name__)

MessageHook = Callable[[str, str, Message], None]


@dataclass(frozen=True)
class ClientOptions:
    """How an open client behaves (the CLI's flags; defaults for everything else).

    ``listen`` asks for re-adds by itself unless ``auto_resync`` is off (``resync`` tunes
    when; the default policy otherwise). ``watch`` tunes when the hub counts as offline and
    messages as withheld (``offline_after`` overrides its first field). Every full round that
    reached the relay proposes fresh keys for every group once the last proposal (by any
    process on this data directory) is ``update_interval`` old."""

    watch: WatchSettings = field(default_factory=WatchSettings)
    offline_after: float | None = None
    resync: ResyncPolicy | None = None
    auto_resync: bool = True
    update_interval: float = DEFAULT_UPDATE_INTERVAL


@dataclass
class GroupState:
    """One of this device's groups while open: its entry, MLS state, receiver and cursor."""

    entry: GroupEntry
    identity: Identity
    receiver: GroupReceiver
    cursor: int
    read_round: int = -1  # the last sync round that read this mailbox to its end


class Client:
    """Owns the device's group identities while open (``close()`` releases them)."""

    def __init__(
        self,
        data: DataDir,
        *,
        clock: Clock,
        options: ClientOptions | None = None,
        on_message: MessageHook | None = None,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        opts = options or ClientOptions()
        self.data = data
        self.clock = clock
        self.options = opts
        self.update_interval = opts.update_interval
        self.on_status = on_status
        resync = opts.resync
        if resync is None and opts.auto_resync:
            resync = ResyncPolicy(clock)
        if resync is not None:
            saved_resync = data.sync_state_raw("resync")
            if saved_resync:
                resync.restore(saved_resync)
        self.readd = ReAdder(self, resync if opts.auto_resync else None)
        self.info: DeviceInfo = data.load()
        settings = opts.watch
        if opts.offline_after is not None:
            settings = replace(settings, offline_after=opts.offline_after)
        self.watch = HubWatch(
            data,
            clock,
            hub_name=self.info.hub_name,
            groups=[g.key for g in self.info.groups],
            settings=settings,
        )
        self.health = self.watch.health
        self.clips = ClipStore(data.clips)
        self.events = EventLog(data.events_db, clock=clock)
        self.clip_keeping = load_config(data.root).clips
        self._last_clip_sweep = float("-inf")
        self.sink = LocalSink(self.clips, self.events, data.thumbnails, self._on_heartbeat)
        self.groups: list[GroupState] = []
        # Callbacks for every stored message: the caller's (``on_message``: listen's lines),
        # then e.g. a livestream waiting for its LiveAnswer.
        self.listeners: list[MessageHook] = [] if on_message is None else [on_message]
        self._own: set[tuple[str, int]] = set()  # (mailbox, relay seq) of our own uploads
        self.watching = 0  # livestreams open through this client now
        try:
            self._open_groups()
        except BaseException:
            self._close_identities()
            self.events.close()
            raise
        # Last: nothing above leaves a relay session open when a group's state is locked.
        self.relay = RelayClient(self.info.relay_url, data.token())
        self.syncer = Syncer(self)

    def _open_groups(self) -> None:
        for entry in self.info.groups:
            identity = Identity.open(self.data.mls / entry.state)
            state = self.data.sync_state(entry)
            tracker = (
                SeqTracker.from_dict(state["tracker"])
                if "tracker" in state
                else SeqTracker(entry.first_seq)
            )
            receiver = GroupReceiver(
                identity,
                entry.group_id,
                camera=entry.camera,
                group=entry.group,
                tracker=tracker,
                health=self.health,
                sink=self.sink,
            )
            self.groups.append(GroupState(entry, identity, receiver, int(state.get("cursor", 0))))
            pending = self.data.mls / self.readd.pending_path(entry.camera, entry.group)
            if entry.group != "control" and pending.exists():
                self.readd.reopen_pending(entry, pending)

    # -- what the receive loop knows ---------------------------------------------------------

    @property
    def received(self) -> int:
        """Messages stored (new to this device) since it was opened."""
        return self.syncer.received

    @property
    def relay_error(self) -> str:
        """The last round's relay failure, if any."""
        return self.syncer.relay_error

    @property
    def blocked(self) -> set[str]:
        """Groups whose mailbox waits on a later epoch now."""
        return self.syncer.blocked

    @property
    def removed(self) -> bool:
        """This device was removed from the hub: nothing will work again (pair anew)."""
        return self.health.removed

    @property
    def resync(self) -> ResyncPolicy | None:
        """When ``listen`` asks for re-adds by itself (None: never)."""
        return self.readd.resync

    @property
    def readded(self) -> list[str]:
        """The "camera/group" keys re-joined so far."""
        return self.readd.readded

    async def sync_once(self) -> int:
        """Fetch and handle everything waiting in every mailbox; how many messages."""
        return await self.syncer.sync_groups()

    async def sync_groups(self, camera: str | None = None, names: Sequence[str] = ()) -> int:
        """One round over the groups of ``camera`` named in ``names`` (all when empty)."""
        return await self.syncer.sync_groups(camera, names)

    async def listen(
        self,
        *,
        poll: float = 5.0,
        stop: asyncio.Event | None = None,
        on_health: Callable[[HealthReport], None] | None = None,
        on_camera: Callable[[CameraState], None] | None = None,
    ) -> None:
        """The receive loop until ``stop`` or removal (``Syncer.listen``)."""
        await self.syncer.listen(poll=poll, stop=stop, on_health=on_health, on_camera=on_camera)

    def keep_clips(self) -> int:
        """Apply this device's clip retention (``client.toml``), at most every
        ``SWEEP_INTERVAL`` seconds; clips deleted."""
        now = self.clock.monotonic()
        if now - self._last_clip_sweep < SWEEP_INTERVAL:
            return 0
        self._last_clip_sweep = now
        return prune(self.clips.root / "clips", self.events, self.clip_keeping, self.clock.time())

    async def request_readd(self, camera: str, groups: Sequence[str], reason: str = "") -> None:
        """Ask the hub to replace this device's leaf in ``groups`` of ``camera`` (see
        ``client.readd``); keep this client open until ``readded`` lists them."""
        await self.readd.request(camera, groups, reason)

    async def auto_resync(self) -> list[str]:
        """After a round: ask for the re-adds the policy finds due; returns their keys."""
        return await self.readd.auto()

    def _on_heartbeat(self, camera: str, beat: Heartbeat) -> None:
        local = {
            g.entry.key: epoch
            for g in self.groups
            if g.entry.camera == camera
            and (epoch := epoch_of(g.identity, g.entry.group_id)) is not None
        }
        self.watch.heartbeat(beat, local, self.syncer.round)
        self.readd.heartbeat(beat, local)

    def status_line(self, line: str) -> None:
        log.warning("%s", line)
        if self.on_status is not None:
            self.on_status(line)

    def stored(self, camera: str, group: str, message: Message) -> None:
        """A message new to this device is durable: tell the listeners; act on hub answers."""
        for listener in list(self.listeners):
            listener(camera, group, message)
        if isinstance(message, ResendGone):
            self._gone(message)

    def _gone(self, message: ResendGone) -> None:
        target = self.find_group(message.camera, message.group)
        if target is None:
            return
        lost = self.watch.gone(message, target.receiver.tracker)
        if lost:
            self.save_cursor(target)
            self.status_line(
                f"{target.entry.key}: {lost} message(s) lost (the hub no longer has them)"
            )

    def save_cursor(self, group: GroupState) -> None:
        state = {"cursor": group.cursor, "tracker": group.receiver.tracker.to_dict()}
        self.data.save_sync_state(group.entry, state)

    def find_group(self, camera: str, group: str) -> GroupState | None:
        return next(
            (g for g in self.groups if g.entry.camera == camera and g.entry.group == group), None
        )

    def group_state(self, camera: str, group: str) -> tuple[GroupEntry, Identity]:
        """The entry and open identity of one of this device's groups."""
        found = self.find_group(camera, group)
        if found is None:
            raise ConfigError(f"this device is not paired with camera {camera!r}")
        return found.entry, found.identity

    # -- sending -----------------------------------------------------------------------------

    def own(self, mailbox: str, seq: int) -> bool:
        """Whether (mailbox, seq) is one of our own uploads coming back (then forget it)."""
        key = (mailbox, seq)
        if key in self._own:
            self._own.discard(key)
            return True
        return False

    async def upload(self, mailbox: str, body: bytes) -> None:
        result = await self.relay.upload(mailbox, body, secrets.token_hex(16))
        self._own.add((mailbox, result.seq))

    async def request_resend(self, entry: GroupEntry, ranges: tuple[tuple[int, int], ...]) -> None:
        control = self.find_group(entry.camera, "control")
        if control is None:
            return
        log.warning("%s: missing messages %s, asking the hub to resend", entry.key, ranges)
        request = ResendRequest(camera=entry.camera, group=entry.group, ranges=tuple(ranges))
        try:
            ciphertext = control.identity.encrypt(control.entry.group_id, request.encode())
            await self.upload(control.entry.mailbox, ciphertext)
        except Exception as e:  # a resend request is best effort; the gap stays reported
            log.warning("%s: resend request not sent: %s", entry.key, type(e).__name__)

    async def send_control(self, camera: str, message: Message, *, wait: float = 0.0) -> None:
        """Send a request (e.g. ``LiveRequest``) to the hub in ``camera``'s control group.

        While our own update proposal waits for the hub's commit, MLS lets us send nothing in
        that group; with ``wait`` the control mailbox is read until the commit came (at most
        ``wait`` seconds; the hub commits proposals within a second or two). Not from inside
        a round (it takes the round lock)."""
        entry, identity = self.group_state(camera, "control")
        deadline = self.clock.monotonic() + wait
        while True:
            try:
                ciphertext = identity.encrypt(entry.group_id, message.encode())
                break
            except GroupStateError:
                if self.clock.monotonic() >= deadline:
                    raise
                await self.sync_groups(camera, ("control",))
                await self.clock.sleep(0.2)
        await self.upload(entry.mailbox, ciphertext)

    async def propose_updates(self) -> int:
        """Fresh leaf keys for every group, proposed to the hub (the only committer), which
        folds them into its next commit: post-compromise security for this device (a copy of
        its state taken before is locked out from then on)."""
        sent = 0
        for group in self.groups:
            try:
                proposal = group.identity.propose_update(group.entry.group_id)
                await self.upload(group.entry.mailbox, proposal)
                sent += 1
            except DeviceRemovedError:
                raise
            except (RelayError, CryptoError) as e:
                log.warning("%s: update proposal not sent: %s", group.entry.key, e)
        return sent

    async def update_keys_if_due(self) -> int:
        """``propose_updates`` if the last proposal from this data directory is at least
        ``update_interval`` old (recorded in ``sync/updates.json``, so every process, ``sync``
        and ``status`` included, honours the same rate). Not while a livestream is open: until
        the hub folds a proposal into a commit it cannot encrypt in that group, and the stream
        would end; the update goes out in the first round after the stream."""
        if self.watching:
            return 0
        now = self.clock.time()
        last = self.data.sync_state_raw("updates").get("last")
        if isinstance(last, int | float) and 0 <= now - float(last) < self.update_interval:
            return 0
        sent = await self.propose_updates()
        if sent:
            self.data.save_sync_state_raw("updates", {"last": now})
        return sent

    # -- closing -----------------------------------------------------------------------------

    def _close_identities(self) -> None:
        self.readd.close()
        for group in self.groups:
            if not group.identity.closed:
                group.identity.close()

    async def close(self) -> None:
        self._close_identities()
        self.events.close()
        await self.relay.close()


__all__ = ["Client", "ClientOptions", "GroupState"]
