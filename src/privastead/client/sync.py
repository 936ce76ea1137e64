"""The client's receive loop: every group mailbox, in order, through ``GroupReceiver``.

For each mailbox: list the messages after our relay cursor, let the receiver decrypt, check and
store each one, and acknowledge it to the relay only once the receiver says its data is durable.
A message of a future epoch stops that mailbox until the next round (its commit comes first in
the same mailbox, so this only happens while a commit is being uploaded). Sequence gaps become
``ResendRequest``s in the camera's ``control`` group. ``request_readd`` asks the hub to
replace this device's leaf in groups it lost sync with (fresh KeyPackages, sent in the control
group, which authenticates us); the ``ReAddAccept`` answer, read in order from the control
mailbox, is joined and swapped in for the stale state. With a ``ResyncPolicy``, ``listen``
sends that request by itself once the evidence of a lost group holds (``client/resync.py``),
rate-limited per group and persisted in ``sync/resync.json``. The cursor and the sequence
tracker are saved after every message; every handler is idempotent, so a crash between the two
costs nothing.

``listen`` waits on the relay's WebSocket for "new message" events (falling back to polling),
so a notification reaches the client within one round trip of its upload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from privastead import compat
from privastead.client.clipstore import ClipStore
from privastead.client.defaults import DEFAULT_UPDATE_INTERVAL
from privastead.client.device import DataDir, DeviceInfo, GroupEntry
from privastead.client.eventlog import EventLog
from privastead.client.health import HealthReport
from privastead.client.readd import ReAdder, epoch_of
from privastead.client.receiver import GroupReceiver, Outcome
from privastead.client.resync import ResyncPolicy
from privastead.client.sink import LocalSink
from privastead.client.watch import GroupView, HubWatch, WatchSettings
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
from privastead.protocol.pairing_messages import ReAddAccept
from privastead.protocol.seq import SeqTracker
from privastead.relay.client import RelayClient

log = logging.getLogger(__name__)


@dataclass
class _Group:
    entry: GroupEntry
    identity: Identity
    receiver: GroupReceiver
    cursor: int
    read_round: int = -1  # the last sync round that read this mailbox to its end


class Syncer:
    """Owns the device's group identities while open (``close()`` releases them)."""

    def __init__(
        self,
        data: DataDir,
        *,
        clock: Clock,
        offline_after: float | None = None,
        watch: WatchSettings | None = None,
        on_message: Callable[[str, str, Message], None] | None = None,
        resync: ResyncPolicy | None = None,
        auto_resync: bool = True,
        on_status: Callable[[str], None] | None = None,
        update_interval: float = DEFAULT_UPDATE_INTERVAL,
    ) -> None:
        """``listen`` asks for re-adds by itself unless ``auto_resync`` is off (``resync``
        tunes when; the default policy otherwise). ``watch`` tunes when the hub counts as
        offline and messages as withheld (``offline_after`` overrides its first field). Every
        full round that reached the relay proposes fresh keys for every group once the last
        proposal (by any process on this data directory) is ``update_interval`` old."""
        self.data = data
        self.update_interval = update_interval
        if resync is None and auto_resync:
            resync = ResyncPolicy(clock)
        self.on_status = on_status
        if resync is not None:
            saved_resync = data.sync_state_raw("resync")
            if saved_resync:
                resync.restore(saved_resync)
        self.readd = ReAdder(self, resync if auto_resync else None)
        self.info: DeviceInfo = data.load()
        self.clock = clock
        self.on_message = on_message
        settings = watch or WatchSettings()
        if offline_after is not None:
            settings = replace(settings, offline_after=offline_after)
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
        self.sink = LocalSink(self.clips, self.events, data.thumbnails, self._on_heartbeat)
        self.relay = RelayClient(self.info.relay_url, data.token())
        self.groups: list[_Group] = []
        try:
            for entry in self.info.groups:
                identity = Identity.open(data.mls / entry.state)
                state = data.sync_state(entry)
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
                self.groups.append(_Group(entry, identity, receiver, int(state.get("cursor", 0))))
                pending = data.mls / self.readd.pending_path(entry.camera, entry.group)
                if entry.group != "control" and pending.exists():
                    self.readd.reopen_pending(entry, pending)
        except BaseException:
            self._close_identities()
            raise
        self.received = 0
        self.relay_error = ""  # the last round's relay failure, if any
        self._own: set[tuple[str, int]] = set()  # (mailbox, relay seq) of our own uploads
        self.blocked: set[str] = set()  # groups whose mailbox waits on a later epoch now
        self._round = 0  # sync rounds so far (heartbeat claims are checked a round later)
        # Callbacks for every stored message (e.g. a livestream waiting for its LiveAnswer),
        # and one lock so that a livestream's catch-up and the receive loop never interleave.
        self.listeners: list[Callable[[str, str, Message], None]] = []
        self._lock = asyncio.Lock()

    @property
    def resync(self) -> ResyncPolicy | None:
        """When ``listen`` asks for re-adds by itself (None: never)."""
        return self.readd.resync

    @property
    def readded(self) -> list[str]:
        """The "camera/group" keys re-joined so far."""
        return self.readd.readded

    async def request_readd(self, camera: str, groups: Sequence[str], reason: str = "") -> None:
        """Ask the hub to replace this device's leaf in ``groups`` of ``camera`` (see
        ``client.readd``); keep this Syncer open until ``readded`` lists them."""
        await self.readd.request(camera, groups, reason)

    async def auto_resync(self) -> list[str]:
        """After a round: ask for the re-adds the policy finds due; returns their keys."""
        return await self.readd.auto()

    @property
    def removed(self) -> bool:
        """This device was removed from the hub: nothing will work again (pair anew)."""
        return self.health.removed

    def _on_heartbeat(self, camera: str, beat: Heartbeat) -> None:
        local = {
            g.entry.key: epoch
            for g in self.groups
            if g.entry.camera == camera
            and (epoch := epoch_of(g.identity, g.entry.group_id)) is not None
        }
        self.watch.heartbeat(beat, local, self._round)
        self.readd.heartbeat(beat, local)

    def status_line(self, line: str) -> None:
        log.warning("%s", line)
        if self.on_status is not None:
            self.on_status(line)

    # -- one round -------------------------------------------------------------------------

    async def sync_once(self) -> int:
        """Fetch and handle everything waiting in every mailbox; how many messages."""
        return await self.sync_groups()

    async def sync_groups(self, camera: str | None = None, names: Sequence[str] = ()) -> int:
        """Like ``sync_once``, for the groups of ``camera`` named in ``names`` only (all when
        empty): a livestream reads its answer and the session's commit without waiting for
        clip downloads."""
        async with self._lock:
            return await self._sync_groups(camera, names)

    async def _sync_groups(self, camera: str | None, names: Sequence[str]) -> int:
        handled = 0
        self.blocked.clear()
        self._round += 1
        try:
            for group in self.groups:
                if camera is not None and group.entry.camera != camera:
                    continue
                if names and group.entry.group not in names:
                    continue
                handled += await self._sync_group(group)
            self.health.relay_ok()
            self.relay_error = ""
            await self._after_round()
            if camera is None and not names:
                await self.update_keys_if_due()
        except DeviceRemovedError as e:
            self.health.device_removed(str(e))
            self.relay_error = str(e)
            log.warning("relay: %s", e)
        except RelayError as e:
            self.health.relay_failed()
            self.relay_error = str(e)
            log.warning("relay: %s", e)
        self.watch.save()
        return handled

    async def _after_round(self) -> None:
        """Ask again for what heartbeats say was sent but never came; probe the hub's clock
        when it looks silent."""
        views = [GroupView(g.entry.key, g.receiver.tracker, g.read_round) for g in self.groups]
        for key, ranges in self.watch.after_round(views):
            entry = next(g.entry for g in self.groups if g.entry.key == key)
            await self.request_resend(entry, ranges)
        probe = self.watch.probe()
        if probe is not None:
            try:
                await self.send_control(probe.camera, probe)
            except CryptoError as e:  # our own update proposal is pending: next time
                log.info("clock probe not sent: %s", e)

    async def _sync_group(self, group: _Group) -> int:
        handled = 0
        while True:
            page = await self.relay.list_messages(group.entry.mailbox, after=group.cursor)
            if not page.messages:
                group.read_round = self._round
                return handled
            for info in page.messages:
                if (group.entry.mailbox, info.seq) in self._own:
                    # Our own proposal or request coming back: nothing to decrypt.
                    self._own.discard((group.entry.mailbox, info.seq))
                    await self._after(group, info.seq, Outcome(True, "own message"))
                    handled += 1
                    continue
                body = await self.relay.body_of(group.entry.mailbox, info)
                # On the loop: the event log's SQLite connection belongs to this thread.
                outcome = group.receiver.handle(body)
                if not outcome.ack:
                    # A later epoch: its commit is not here yet, or (if this lasts) we missed it.
                    self.blocked.add(group.entry.key)
                    return handled
                if outcome.decrypted and self.resync is not None:
                    self.resync.clear(group.entry.key)
                await self._after(group, info.seq, outcome)
                handled += 1

    async def _after(self, group: _Group, seq: int, outcome: Outcome) -> None:
        group.cursor = seq
        self.data.save_sync_state(
            group.entry, {"cursor": seq, "tracker": group.receiver.tracker.to_dict()}
        )
        await self.relay.ack(group.entry.mailbox, seq)
        if outcome.message is not None and outcome.note == "stored":
            self.received += 1
            if self.on_message is not None:
                self.on_message(group.entry.camera, group.entry.group, outcome.message)
            for listener in list(self.listeners):
                listener(group.entry.camera, group.entry.group, outcome.message)
        if outcome.missing:
            await self.request_resend(group.entry, outcome.missing)
        message = outcome.message
        if isinstance(message, ReAddAccept) and message.device_id == self.info.device_id:
            self.readd.rejoin(message)
        elif isinstance(message, ResendGone) and outcome.note == "stored":
            self._gone(message)

    def _gone(self, message: ResendGone) -> None:
        target = next(
            (
                g
                for g in self.groups
                if g.entry.camera == message.camera and g.entry.group == message.group
            ),
            None,
        )
        if target is None:
            return
        lost = self.watch.gone(message, target.receiver.tracker)
        if lost:
            state = {"cursor": target.cursor, "tracker": target.receiver.tracker.to_dict()}
            self.data.save_sync_state(target.entry, state)
            self.status_line(
                f"{target.entry.key}: {lost} message(s) lost (the hub no longer has them)"
            )

    async def request_resend(self, entry: GroupEntry, ranges: tuple[tuple[int, int], ...]) -> None:
        control = next(
            (
                g
                for g in self.groups
                if g.entry.camera == entry.camera and g.entry.group == "control"
            ),
            None,
        )
        if control is None:
            return
        log.warning("%s: missing messages %s, asking the hub to resend", entry.key, ranges)
        request = ResendRequest(camera=entry.camera, group=entry.group, ranges=tuple(ranges))
        try:
            ciphertext = control.identity.encrypt(control.entry.group_id, request.encode())
            await self.upload(control.entry.mailbox, ciphertext)
        except Exception as e:  # a resend request is best effort; the gap stays reported
            log.warning("%s: resend request not sent: %s", entry.key, type(e).__name__)

    def group_state(self, camera: str, group: str) -> tuple[GroupEntry, Identity]:
        """The entry and open identity of one of this device's groups."""
        for g in self.groups:
            if g.entry.camera == camera and g.entry.group == group:
                return g.entry, g.identity
        raise ConfigError(f"this device is not paired with camera {camera!r}")

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

    async def upload(self, mailbox: str, body: bytes) -> None:
        result = await self.relay.upload(mailbox, body, secrets.token_hex(16))
        self._own.add((mailbox, result.seq))

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
        and ``status`` included, honours the same rate)."""
        now = self.clock.time()
        last = self.data.sync_state_raw("updates").get("last")
        if isinstance(last, int | float) and 0 <= now - float(last) < self.update_interval:
            return 0
        sent = await self.propose_updates()
        if sent:
            self.data.save_sync_state_raw("updates", {"last": now})
        return sent

    # -- forever -----------------------------------------------------------------------------

    async def listen(
        self,
        *,
        poll: float = 5.0,
        stop: asyncio.Event | None = None,
        on_health: Callable[[HealthReport], None] | None = None,
    ) -> None:
        """Sync on every relay "new message" event (or every ``poll`` seconds without the
        socket) until ``stop``, or until the device turns out to be removed (no retrying
        then). ``on_health`` gets every change of the health state (the first one too)."""
        stop = stop or asyncio.Event()
        sub = None
        try:
            while not stop.is_set():
                if sub is None and not self.removed:
                    with contextlib.suppress(RelayError):
                        sub = await self.relay.subscribe([g.entry.mailbox for g in self.groups])
                await self.sync_once()
                if not self.removed:
                    await self.auto_resync()
                report = self.health.check()
                if report is not None:
                    log.warning("hub health: %s: %s", report.state.value, report.detail)
                    if on_health is not None:
                        on_health(report)
                if self.removed:
                    return
                if sub is None:
                    await _wait(stop, poll)
                    continue
                try:
                    async with compat.timeout(poll):
                        await sub.next_event()
                except TimeoutError:
                    pass
                except DeviceRemovedError as e:  # the relay closed our socket: removed
                    self.health.device_removed(str(e))
                    sub = None
                except RelayError:
                    with contextlib.suppress(Exception):
                        await sub.close()
                    sub = None
        finally:
            if sub is not None:
                with contextlib.suppress(Exception):
                    await sub.close()

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


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with compat.timeout(seconds):
            await stop.wait()


__all__ = ["Syncer"]
