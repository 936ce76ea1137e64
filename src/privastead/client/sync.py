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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from privastead import compat
from privastead.client.clipstore import ClipStore
from privastead.client.device import DataDir, DeviceInfo, GroupEntry
from privastead.client.eventlog import EventLog
from privastead.client.health import HealthMonitor, HubHealth
from privastead.client.receiver import GroupReceiver, Outcome
from privastead.client.resync import ResyncPolicy
from privastead.client.sink import LocalSink
from privastead.clock import Clock
from privastead.crypto import Identity
from privastead.errors import (
    ConfigError,
    CryptoError,
    RelayError,
    StateLockedError,
    StorageError,
)
from privastead.protocol.codec import Message
from privastead.protocol.messages import Heartbeat, ResendRequest
from privastead.protocol.pairing_messages import ReAddAccept, ReAddRequest
from privastead.protocol.seq import SeqTracker
from privastead.relay.client import RelayClient

log = logging.getLogger(__name__)


@dataclass
class _Group:
    entry: GroupEntry
    identity: Identity
    receiver: GroupReceiver
    cursor: int


class Syncer:
    """Owns the device's group identities while open (``close()`` releases them)."""

    def __init__(
        self,
        data: DataDir,
        *,
        clock: Clock,
        offline_after: float = 900.0,
        on_message: Callable[[str, str, Message], None] | None = None,
        resync: ResyncPolicy | None = None,
        auto_resync: bool = True,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        """``listen`` asks for re-adds by itself unless ``auto_resync`` is off (``resync``
        tunes when; the default policy otherwise)."""
        self.data = data
        if resync is None and auto_resync:
            resync = ResyncPolicy(clock)
        self.resync = resync if auto_resync else None
        self.on_status = on_status
        if resync is not None:
            saved_resync = data.sync_state_raw("resync")
            if saved_resync:
                resync.restore(saved_resync)
        self.info: DeviceInfo = data.load()
        self.clock = clock
        self.on_message = on_message
        self.health = HealthMonitor(clock, offline_after=offline_after)
        saved = data.sync_state_raw("health")
        if saved:
            self.health.restore(saved)
        self.clips = ClipStore(data.clips)
        self.events = EventLog(data.events_db, clock=clock)
        self.sink = LocalSink(self.clips, self.events, data.thumbnails, self._on_heartbeat)
        self.relay = RelayClient(self.info.relay_url, data.token())
        self.groups: list[_Group] = []
        self._pending: dict[tuple[str, str], Identity] = {}  # fresh leaves awaiting a Welcome
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
                pending = data.mls / self._pending_path(entry.camera, entry.group)
                if entry.group != "control" and pending.exists():
                    self._reopen_pending(entry, pending)
        except BaseException:
            self._close_identities()
            raise
        self.received = 0
        self.relay_error = ""  # the last round's relay failure, if any
        self._own: set[tuple[str, int]] = set()  # (mailbox, relay seq) of our own uploads
        self._hub_epochs: dict[str, tuple[float, int]] = {}  # key -> (hub time, hub epoch)
        self._counted_beats: dict[str, float] = {}  # key -> hub time of the last counted lag
        self._blocked: set[str] = set()  # groups whose mailbox waits on a later epoch now
        self.readded: list[str] = []  # "camera/group" keys re-joined
        # Callbacks for every stored message (e.g. a livestream waiting for its LiveAnswer),
        # and one lock so that a livestream's catch-up and the receive loop never interleave.
        self.listeners: list[Callable[[str, str, Message], None]] = []
        self._lock = asyncio.Lock()

    def _reopen_pending(self, entry: GroupEntry, path: Path) -> None:
        """A re-add requested before a restart: its answer may still come."""
        try:
            self._pending[(entry.camera, entry.group)] = Identity.open(path)
        except StateLockedError:
            raise  # another process has this data directory open
        except (StorageError, CryptoError) as e:  # e.g. cut short by a crash: ask again later
            log.warning("%s: unusable pending re-add state dropped: %s", entry.key, e)
            path.unlink(missing_ok=True)

    def _on_heartbeat(self, camera: str, beat: Heartbeat) -> None:
        local = {
            g.entry.key: g.identity.epoch(g.entry.group_id)
            for g in self.groups
            if g.entry.camera == camera
        }
        self.health.heartbeat(beat, local, caught_up=True)
        for key, epoch in beat.epochs.items():
            # Only the newest heartbeat counts (a replayed or reordered one proves nothing).
            if key in local and beat.hub_time >= self._hub_epochs.get(key, (0.0, 0))[0]:
                self._hub_epochs[key] = (beat.hub_time, epoch)

    def _status(self, line: str) -> None:
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
        self._blocked.clear()
        try:
            for group in self.groups:
                if camera is not None and group.entry.camera != camera:
                    continue
                if names and group.entry.group not in names:
                    continue
                handled += await self._sync_group(group)
            self.health.relay_ok()
            self.relay_error = ""
        except RelayError as e:
            self.health.relay_failed()
            self.relay_error = str(e)
            log.warning("relay: %s", e)
        self.data.save_sync_state_raw("health", self.health.to_dict())
        return handled

    async def _sync_group(self, group: _Group) -> int:
        handled = 0
        while True:
            page = await self.relay.list_messages(group.entry.mailbox, after=group.cursor)
            if not page.messages:
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
                    self._blocked.add(group.entry.key)
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
            self._rejoin(message)

    # -- re-adding this device to groups it lost sync with -------------------------------

    def _pending_path(self, camera: str, group: str) -> str:
        return f"{camera}-{group}.readd.mls"

    async def request_readd(self, camera: str, groups: Sequence[str], reason: str = "") -> None:
        """Send fresh KeyPackages for ``groups`` of ``camera`` in its control group; the answer
        is joined by the receive loop. Keep this Syncer open until ``readded`` lists them."""
        control = next(
            (g for g in self.groups if g.entry.camera == camera and g.entry.group == "control"),
            None,
        )
        if control is None:
            raise ConfigError(f"this device is not paired with camera {camera!r}")
        kps: dict[str, bytes] = {}
        for name in groups:
            if name == "control" or not any(
                g.entry.camera == camera and g.entry.group == name for g in self.groups
            ):
                raise ConfigError(f"cannot re-add {camera}/{name}: only events or live groups")
            old = self._pending.pop((camera, name), None)
            if old is not None:
                old.close()
            path = self.data.mls / self._pending_path(camera, name)
            path.unlink(missing_ok=True)
            ident = Identity.create(path, secrets.token_hex(16).encode())
            self._pending[(camera, name)] = ident
            kps[name] = ident.key_package()
        request = ReAddRequest(self.info.device_id, camera, kps, reason)
        ciphertext = control.identity.encrypt(control.entry.group_id, request.encode())
        await self._upload(control.entry.mailbox, ciphertext)

    def _rejoin(self, accept: ReAddAccept) -> None:
        camera = accept.camera.camera
        for grant in accept.camera.groups:
            ident = self._pending.pop((camera, grant.group), None)
            group = next(
                (
                    g
                    for g in self.groups
                    if g.entry.camera == camera and g.entry.group == grant.group
                ),
                None,
            )
            if ident is None or group is None:
                continue  # not ours, or an answer to an earlier request we gave up on
            try:
                group_id = ident.join(grant.welcome, inviter_signature_key=grant.hub_signature_key)
            except CryptoError as e:
                log.warning("%s: re-add Welcome not usable: %s", group.entry.key, e)
                ident.close()
                continue
            ident.close()
            group.identity.close()
            pending = self.data.mls / self._pending_path(camera, grant.group)
            pending.replace(self.data.mls / group.entry.state)
            entry = replace(
                group.entry, mailbox=grant.mailbox, group_id=group_id, first_seq=grant.first_seq
            )
            identity = Identity.open(self.data.mls / entry.state)
            tracker = SeqTracker(grant.first_seq)  # what came before is gone for this leaf
            group.entry, group.identity = entry, identity
            group.receiver = GroupReceiver(
                identity,
                group_id,
                camera=camera,
                group=grant.group,
                tracker=tracker,
                health=self.health,
                sink=self.sink,
            )
            self.data.save_sync_state(entry, {"cursor": group.cursor, "tracker": tracker.to_dict()})
            self.readded.append(entry.key)
            if self.resync is not None:
                self.resync.readded(entry.key)
                self.data.save_sync_state_raw("resync", self.resync.to_dict())
            self._status(f"resync {entry.key}: re-added by the hub")
        self.info = replace(self.info, groups=tuple(g.entry for g in self.groups))
        self.data.save(self.info, self.data.token())

    # -- asking for a re-add by itself -------------------------------------------------------

    def _gather_evidence(self) -> None:
        assert self.resync is not None
        report = self.health.report()
        undecryptable = set(report.groups) if report.state is HubHealth.DESYNC else set()
        for group in self.groups:
            key = group.entry.key
            if group.entry.group == "control":
                continue  # re-pairing territory: a re-add request travels in control itself
            if key in self._blocked:
                self.resync.observe(key, "blocked", "its mailbox waits on a later epoch")
            else:
                self.resync.clear(key, "blocked")
            if key in undecryptable:
                self.resync.observe(key, "undecryptable", "its messages do not decrypt")
            else:
                self.resync.clear(key, "undecryptable")
            beat = self._hub_epochs.get(key)
            local = group.identity.epoch(group.entry.group_id)
            if beat is not None and beat[1] > local:
                if self._counted_beats.get(key) != beat[0]:  # one observation per heartbeat
                    self._counted_beats[key] = beat[0]
                    self.resync.observe(
                        key, "lagging", f"the hub is at epoch {beat[1]}, this device at {local}"
                    )
            else:
                self.resync.clear(key, "lagging")

    async def auto_resync(self) -> list[str]:
        """After a round: ask for a re-add of the groups the policy finds lost and due;
        returns their keys. Nothing happens in a round the relay failed."""
        if self.resync is None or self.relay_error:
            return []
        self._gather_evidence()
        keys = [g.entry.key for g in self.groups if g.entry.group != "control"]
        previous = {k: self.resync.record(k) for k in keys}
        due = self.resync.due(keys)
        by_camera: dict[str, list[str]] = {}
        for d in due:
            camera, group = d.key.split("/", 1)
            by_camera.setdefault(camera, []).append(group)
        sent: list[str] = []
        for camera, groups in by_camera.items():
            wanted = [d for d in due if d.key.split("/", 1)[0] == camera]
            reason = "; ".join(f"{d.key}: {d.reason}" for d in wanted)
            try:
                await self.request_readd(camera, groups, f"automatic: {reason}")
            except (RelayError, CryptoError) as e:
                for d in wanted:
                    self.resync.failed(d.key, previous[d.key])
                log.warning("resync %s: request not sent: %s", camera, type(e).__name__)
                continue
            for d in wanted:
                when = time.strftime("%H:%M:%S", time.localtime(d.next_allowed))
                self._status(
                    f"resync {d.key}: this device lost sync ({d.reason}); asked the hub to "
                    f"re-add it (request {d.attempt}; no new request before {when})"
                )
                sent.append(d.key)
        if due:
            self.data.save_sync_state_raw("resync", self.resync.to_dict())
        return sent

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
            await self._upload(control.entry.mailbox, ciphertext)
        except Exception as e:  # a resend request is best effort; the gap stays reported
            log.warning("%s: resend request not sent: %s", entry.key, type(e).__name__)

    def group_state(self, camera: str, group: str) -> tuple[GroupEntry, Identity]:
        """The entry and open identity of one of this device's groups."""
        for g in self.groups:
            if g.entry.camera == camera and g.entry.group == group:
                return g.entry, g.identity
        raise ConfigError(f"this device is not paired with camera {camera!r}")

    async def send_control(self, camera: str, message: Message) -> None:
        """Send a request (e.g. ``LiveRequest``) to the hub in ``camera``'s control group."""
        entry, identity = self.group_state(camera, "control")
        await self._upload(entry.mailbox, identity.encrypt(entry.group_id, message.encode()))

    async def _upload(self, mailbox: str, body: bytes) -> None:
        result = await self.relay.upload(mailbox, body, secrets.token_hex(16))
        self._own.add((mailbox, result.seq))

    async def propose_updates(self) -> int:
        """Fresh leaf keys for every group, proposed to the hub (the only committer), which
        folds them into its next commit: post-compromise security for this device."""
        sent = 0
        for group in self.groups:
            try:
                proposal = group.identity.propose_update(group.entry.group_id)
                await self._upload(group.entry.mailbox, proposal)
                sent += 1
            except (RelayError, CryptoError) as e:
                log.warning("%s: update proposal not sent: %s", group.entry.key, e)
        return sent

    # -- forever -----------------------------------------------------------------------------

    async def listen(
        self,
        *,
        poll: float = 5.0,
        stop: asyncio.Event | None = None,
        update_interval: float = 86400.0,
    ) -> None:
        """Sync on every relay "new message" event (or every ``poll`` seconds without the
        socket) until ``stop``; propose fresh keys every ``update_interval`` seconds."""
        stop = stop or asyncio.Event()
        next_update = self.clock.monotonic() + update_interval
        sub = None
        try:
            while not stop.is_set():
                if sub is None:
                    with contextlib.suppress(RelayError):
                        sub = await self.relay.subscribe([g.entry.mailbox for g in self.groups])
                await self.sync_once()
                await self.auto_resync()
                if self.clock.monotonic() >= next_update:
                    await self.propose_updates()
                    next_update = self.clock.monotonic() + update_interval
                report = self.health.check()
                if report is not None:
                    log.warning("hub health: %s: %s", report.state.value, report.detail)
                if sub is None:
                    await _wait(stop, poll)
                    continue
                try:
                    async with compat.timeout(poll):
                        await sub.next_event()
                except TimeoutError:
                    pass
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
        for ident in self._pending.values():
            ident.close()
        self._pending.clear()
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
