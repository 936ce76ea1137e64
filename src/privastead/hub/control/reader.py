"""What clients send the hub: update proposals (any group) and requests (``control``).

The hub reads every group mailbox after its own cursor, small messages only (proposals and
requests are a few hundred bytes; its own clip fragments are not fetched back). Its own
messages fail to process and are skipped; a client's update proposal is stored by the core
and folded into a ``self_update`` commit right away (post-compromise security: the client's
old leaf keys open nothing after it); a ``ResendRequest`` is answered from the outbox's
archive of uploaded ciphertext (indexed by app seq on disk, so also after a hub restart),
re-uploaded under a fresh resend message id (the relay would treat the original id as a
retry); seqs the hub sent but no longer holds are answered with ``ResendGone``. Each device
(its control leaf's signature key) may have at most ``ResendBudget`` messages re-uploaded per
window, so a member cannot make the hub re-upload its archive over and over. A
``ClockProbe`` is handed to the heartbeats (``on_probe``), which answer it at once.

A ``ReAddRequest`` (protocol.md, "Re-adding a desynced device") is honoured only in the
``control`` group and only from the member that ``devices.json`` records as that device's
control leaf (its leaf index *and* signature key,
never the credential text the device chose): the MLS sender authenticates it, never the relay.
A device being removed is re-added nowhere. The hub then removes the device's stale leaf in
each named group of that camera, adds the fresh KeyPackage (normal commits; other members
untouched; the core refuses a KeyPackage that reuses a member's credential or key), binds the
one new leaf to the device and answers with a ``ReAddAccept`` in the control group carrying the
Welcomes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from privastead.atomic_file import write_atomic
from privastead.clock import Clock, SystemClock
from privastead.crypto import Received
from privastead.errors import CryptoError, RelayError, StorageError
from privastead.hub.delivery.heartbeats import sent_high
from privastead.hub.delivery.outbox import Outbox
from privastead.hub.state.groups import HubGroup, HubGroups
from privastead.hub.state.registry import DeviceRegistry, DeviceStatus
from privastead.protocol.codec import decode_message
from privastead.protocol.health_messages import ClockProbe, ResendGone
from privastead.protocol.messages import LiveRequest, LiveStop, ResendRequest, resend_message_id
from privastead.protocol.pairing_messages import (
    CameraGrant,
    ReAddAccept,
    ReAddRequest,
)
from privastead.protocol.playback_messages import PlaybackRequest, RecordingsRequest
from privastead.relay.client import RelayClient

log = logging.getLogger(__name__)

SMALL = 16 * 1024  # larger messages are the hub's own clip fragments: never fetched back
MAX_RESEND = 256  # messages answered per request, against a hostile or confused client
RESEND_BUDGET = 512  # messages re-uploaded per device per RESEND_WINDOW at most
RESEND_WINDOW = 600.0


class ResendBudget:
    """A token bucket per device: ``capacity`` re-uploads, refilled evenly over ``window``
    seconds. A device that lost a few messages is never near it; one asking for the whole
    archive again and again gets at most ``capacity`` per window."""

    def __init__(
        self, clock: Clock, capacity: int = RESEND_BUDGET, window: float = RESEND_WINDOW
    ) -> None:
        self.clock = clock
        self.capacity = capacity
        self.rate = capacity / window
        self._buckets: dict[bytes, tuple[float, float]] = {}  # who -> (tokens, monotonic)

    def take(self, who: bytes) -> bool:
        """Spend one re-upload of ``who``'s; False when none is left now."""
        now = self.clock.monotonic()
        tokens, then = self._buckets.get(who, (float(self.capacity), now))
        tokens = min(float(self.capacity), tokens + (now - then) * self.rate)
        if tokens < 1:
            self._buckets[who] = (tokens, now)
            return False
        self._buckets[who] = (tokens - 1, now)
        return True


class LiveHandler(Protocol):
    async def handle(
        self, group: HubGroup, sender: bytes, message: LiveRequest | LiveStop
    ) -> None: ...


class PlaybackHandler(Protocol):
    async def handle(
        self, group: HubGroup, sender: bytes, message: PlaybackRequest | RecordingsRequest
    ) -> None: ...

    async def run(self) -> None: ...


class ControlReader:
    def __init__(
        self,
        groups: HubGroups,
        outbox: Outbox,
        relay: RelayClient,
        *,
        clock: Clock | None = None,
        on_probe: Callable[[str, str], None] | None = None,
        live: LiveHandler | None = None,
        playback: PlaybackHandler | None = None,
    ) -> None:
        self.groups = groups
        self.outbox = outbox
        self.relay = relay
        self.budget = ResendBudget(clock or SystemClock())
        self.on_probe = on_probe  # Heartbeats.answer: a clock probe gets a heartbeat
        self._path: Path = groups.paths.cursors
        try:
            self._cursors: dict[str, int] = json.loads(self._path.read_bytes())
        except (OSError, ValueError):
            self._cursors = {}
        self._attempts: dict[tuple[str, int], int] = {}
        self.proposals_folded = 0
        self.resent = 0
        self.gone = 0
        self.resends_refused = 0
        self.readded = 0
        self.live = live  # control.live_sessions.LiveSessions
        self.playback = playback  # control.playback_sessions.PlaybackSessions

    async def poll(self) -> int:
        """One pass over every mailbox; how many client messages were handled."""
        handled = 0
        for group in self.groups:
            handled += await self._poll_group(group)
        return handled

    async def _poll_group(self, group: HubGroup) -> int:
        cursor = self._cursors.get(group.mailbox, 0)
        page = await self.relay.list_messages(group.mailbox, after=cursor, limit=200)
        bodies: list[bytes] = []
        for info in page.messages:
            cursor = info.seq
            if info.size <= SMALL:
                bodies.append(await self.relay.body_of(group.mailbox, info))
        # One worker job processes the page and folds its proposals: a proposal stored by one
        # job and committed by a later one left the group with a proposal pending in between,
        # and any clip fragment or notification encrypted there was refused by MLS.
        received, proposals = await group.worker.call(_process_page, group, bodies)
        for message in received:
            if message.kind == "application":
                await self._request(group, message)
        if page.messages:
            self._cursors[group.mailbox] = cursor
            cursors = json.dumps(self._cursors).encode()
            await asyncio.to_thread(write_atomic, self._path, cursors)
            await self.relay.ack(group.mailbox, cursor)
        self.proposals_folded += proposals
        return len(received)

    async def _request(self, group: HubGroup, received: Received) -> None:
        try:
            message = decode_message(received.data)
        except CryptoError as e:
            log.warning("%s: malformed client message: %s", group.key, e)
            return
        if isinstance(message, ResendRequest):
            if message.camera != group.camera or group.group != "control":
                return
            who = _sender_key(group, received.sender_index)
            await self._resend(group, who, message)
        elif isinstance(message, ClockProbe):
            if message.camera == group.camera and group.group == "control" and self.on_probe:
                self.on_probe(message.camera, message.nonce)
        elif isinstance(message, ReAddRequest):
            await group.worker.call(self._readd, group, received.sender_index, message)
        elif isinstance(message, LiveRequest | LiveStop) and self.live is not None:
            await self.live.handle(group, received.sender, message)
        elif isinstance(message, PlaybackRequest | RecordingsRequest) and self.playback:
            await self.playback.handle(group, received.sender, message)
        else:
            log.info("%s: %s from a client (not handled yet)", group.key, type(message).__name__)

    def _readd(self, group: HubGroup, sender_index: int, request: ReAddRequest) -> None:
        """Re-add ``request.device_id`` to the named groups, if the control-group sender (leaf
        ``sender_index``) is that device's own control leaf. Runs on the control group's worker;
        each add runs on its own group's worker (control waits for events and live, never the
        reverse, so workers cannot wait on each other in a circle)."""
        registry = DeviceRegistry(self.groups.paths)
        device = registry.get(request.device_id)
        bound = device.leaves.get(group.key) if device is not None else None
        sender = next((m for m in group.members() if m.index == sender_index), None)
        if (
            device is None
            or bound is None
            or sender is None
            or group.group != "control"
            or request.camera != group.camera
            or (sender.index, sender.signature_key) != (bound.index, bound.signature_key)
        ):
            log.warning("%s: re-add request from a member that is not that device", group.key)
            return
        if device.status is not DeviceStatus.PAIRED:
            log.warning("%s: re-add request from a device being removed: refused", group.key)
            return
        wanted = [g for g in sorted(request.key_packages) if g != "control"]
        grants = []
        for name in wanted:
            try:
                target = self.groups.get(group.camera, name)
            except StorageError:
                continue
            try:
                stale = device.leaves.get(target.key)
                kp = request.key_packages[name]
                added = target.worker.submit(target.add_device, kp, stale).result()
            except CryptoError as e:
                log.warning("%s: re-add refused: %s", target.key, e)
                continue
            # At once, before anything else can run: the new leaf is this device's.
            registry.set_leaf(device.device_id, target.key, added.leaf)
            grants.append(added.grant)
        if not grants:
            return
        grant = CameraGrant(camera=group.camera, groups=tuple(grants))
        group.sender.send(
            lambda app_seq: ReAddAccept(device_id=request.device_id, seq=app_seq, camera=grant)
        )
        self.readded += 1
        log.info("%s: re-added a device to %s", group.key, ", ".join(g.group for g in grants))

    async def _resend(self, control: HubGroup, who: bytes, request: ResendRequest) -> None:
        """Re-upload what ``request`` names from the archive; answer ``ResendGone`` for what
        was sent but is no longer held. At most ``MAX_RESEND`` per request and the device's
        ``ResendBudget``."""
        key = f"{request.camera}/{request.group}"
        try:
            target = self.groups.get(request.camera, request.group)
        except StorageError:
            return
        wanted, gone = await target.worker.call(self._archived, target, key, who, request)
        for app_seq, found in wanted:
            await self._reupload(target, key, app_seq, found)
        if gone:
            self.gone += sum(b - a + 1 for a, b in gone)
            log.info("%s: app seqs %s are no longer held; told the clients", key, gone)
            ranges = tuple(gone[:256])
            await control.worker.call(
                control.sender.send,
                lambda app_seq: ResendGone(
                    camera=request.camera, group=request.group, ranges=ranges, seq=app_seq
                ),
            )

    def _archived(
        self, target: HubGroup, key: str, who: bytes, request: ResendRequest
    ) -> tuple[list[tuple[int, tuple[int, bytes]]], list[tuple[int, int]]]:
        """On ``target``'s worker (outbox reads): what to re-upload, and the ranges gone."""
        high = sent_high(target, self.outbox)
        queue = self.outbox.mailbox(target.mailbox)
        wanted: list[tuple[int, tuple[int, bytes]]] = []
        gone: list[tuple[int, int]] = []
        count = 0
        for first, last in request.ranges:
            for app_seq in range(first, min(last, -1 if high is None else high) + 1):
                if count >= MAX_RESEND:
                    break
                count += 1
                # The archive is indexed by app seq from each entry's own metadata, so this
                # also answers for messages sent before the hub restarted.
                found = queue.archived_app(app_seq)
                if found is None:
                    if gone and gone[-1][1] == app_seq - 1:
                        gone[-1] = (gone[-1][0], app_seq)
                    else:
                        gone.append((app_seq, app_seq))
                    continue
                if not self.budget.take(who):
                    self.resends_refused += 1
                    log.warning("%s: resend budget of a device used up; not answered", key)
                    break
                wanted.append((app_seq, found))
        return wanted, gone

    async def _reupload(
        self, target: HubGroup, key: str, app_seq: int, found: tuple[int, bytes]
    ) -> None:
        seq, ciphertext = found
        attempt = min(self._attempts.get((target.mailbox, seq), 0) + 1, 999)
        self._attempts[(target.mailbox, seq)] = attempt
        try:
            await self.relay.upload(
                target.mailbox, ciphertext, resend_message_id(target.mailbox, seq, attempt)
            )
            self.resent += 1
        except RelayError as e:
            log.warning("%s: resend of %d failed: %s", key, app_seq, e)


def _sender_key(group: HubGroup, index: int) -> bytes:
    """The signature key of the member at leaf ``index`` (who asks, for the resend budget)."""
    member = next((m for m in group.members() if m.index == index), None)
    return member.signature_key if member is not None else index.to_bytes(4, "big")


def _process_page(group: HubGroup, bodies: list[bytes]) -> tuple[list[Received], int]:
    """On the group's worker: each message processed, then the stored update proposals folded
    into one self-update commit (clients get fresh keys). (messages read, proposals folded)"""
    received: list[Received] = []
    proposals = 0
    for body in bodies:
        try:
            message = group.identity.process(group.group_id, body)
        except CryptoError:
            continue  # our own message, or one for an epoch we left: nothing to do
        received.append(message)
        proposals += message.kind == "proposal"
    if proposals:
        group.self_update()
    return received, proposals


__all__ = ["ControlReader"]
