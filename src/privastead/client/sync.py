"""The client's receive loop: every group mailbox, in order, through ``GroupReceiver``.

For each mailbox of the ``Client`` (``client.app``, which owns the groups and the stores): list
the messages after our relay cursor, let the receiver decrypt, check and store each one, and
acknowledge it to the relay only once the receiver says its data is durable. A message of a
future epoch stops that mailbox until the next round (its commit comes first in the same
mailbox, so this only happens while a commit is being uploaded). Sequence gaps become
``ResendRequest``s in the camera's ``control`` group. A ``ReAddAccept`` for this device, read in
order from the control mailbox, is joined and swapped in for the stale state
(``client.readd``); with a ``ResyncPolicy`` the client asks for re-adds by itself once the
evidence of a lost group holds (``client.resync``). The cursor and the sequence tracker are
saved after every message; every handler is idempotent, so a crash between the two costs
nothing.

``listen`` waits on the relay's WebSocket for "new message" events (falling back to polling),
so a notification reaches the client within one round trip of its upload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from privastead import compat
from privastead.client.cameras import CameraState
from privastead.client.health import HealthReport
from privastead.client.receiver import Outcome
from privastead.client.watch import GroupView
from privastead.errors import CryptoError, DeviceRemovedError, RelayError
from privastead.protocol.pairing_messages import ReAddAccept

if TYPE_CHECKING:
    from privastead.client.app import Client, GroupState

log = logging.getLogger(__name__)


class Syncer:
    """The rounds over a client's mailboxes, one at a time (a lock keeps a livestream's
    catch-up and the receive loop from interleaving)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.received = 0
        self.relay_error = ""  # the last round's relay failure, if any
        self.blocked: set[str] = set()  # groups whose mailbox waits on a later epoch now
        self.round = 0  # sync rounds so far (heartbeat claims are checked a round later)
        self._lock = asyncio.Lock()

    async def sync_groups(self, camera: str | None = None, names: Sequence[str] = ()) -> int:
        """Fetch and handle everything waiting for the groups of ``camera`` named in ``names``
        (every group when both are empty): a livestream reads its answer and the session's
        commit without waiting for clip downloads. Returns how many messages."""
        async with self._lock:
            return await self._sync_groups(camera, names)

    async def _sync_groups(self, camera: str | None, names: Sequence[str]) -> int:
        client = self.client
        handled = 0
        self.blocked.clear()
        self.round += 1
        try:
            for group in client.groups:
                if camera is not None and group.entry.camera != camera:
                    continue
                if names and group.entry.group not in names:
                    continue
                handled += await self._sync_group(group)
            client.health.relay_ok()
            self.relay_error = ""
            await self._after_round()
            if camera is None and not names:
                await client.update_keys_if_due()
        except DeviceRemovedError as e:
            client.health.device_removed(str(e))
            self.relay_error = str(e)
            log.warning("relay: %s", e)
        except RelayError as e:
            client.health.relay_failed()
            self.relay_error = str(e)
            log.warning("relay: %s", e)
        client.watch.save()
        return handled

    async def _after_round(self) -> None:
        """Ask again for what heartbeats say was sent but never came; probe the hub's clock
        when it looks silent."""
        client = self.client
        views = [GroupView(g.entry.key, g.receiver.tracker, g.read_round) for g in client.groups]
        for key, ranges in client.watch.after_round(views):
            entry = next(g.entry for g in client.groups if g.entry.key == key)
            await client.request_resend(entry, ranges)
        probe = client.watch.probe()
        if probe is not None:
            try:
                await client.send_control(probe.camera, probe)
            except CryptoError as e:  # our own update proposal is pending: next time
                log.info("clock probe not sent: %s", e)

    async def _sync_group(self, group: GroupState) -> int:
        client = self.client
        mailbox = group.entry.mailbox
        handled = 0
        while True:
            page = await client.relay.list_messages(mailbox, after=group.cursor)
            if not page.messages:
                group.read_round = self.round
                return handled
            for info in page.messages:
                if client.own(mailbox, info.seq):
                    # Our own proposal or request coming back: nothing to decrypt.
                    await self._after(group, info.seq, Outcome(True, "own message"))
                    handled += 1
                    continue
                body = await client.relay.body_of(mailbox, info)
                # On the loop: the event log's SQLite connection belongs to this thread.
                outcome = group.receiver.handle(body)
                if not outcome.ack:
                    # A later epoch: its commit is not here yet, or (if this lasts) we missed it.
                    self.blocked.add(group.entry.key)
                    return handled
                if outcome.decrypted and client.resync is not None:
                    client.resync.clear(group.entry.key)
                await self._after(group, info.seq, outcome)
                handled += 1

    async def _after(self, group: GroupState, seq: int, outcome: Outcome) -> None:
        client = self.client
        group.cursor = seq
        client.save_cursor(group)
        await client.relay.ack(group.entry.mailbox, seq)
        message = outcome.message
        if message is not None and outcome.note == "stored":
            self.received += 1
            client.stored(group.entry.camera, group.entry.group, message)
        if outcome.missing:
            await client.request_resend(group.entry, outcome.missing)
        if isinstance(message, ReAddAccept) and message.device_id == client.info.device_id:
            client.readd.rejoin(message)

    def _tell(
        self,
        on_health: Callable[[HealthReport], None] | None,
        on_camera: Callable[[CameraState], None] | None,
    ) -> None:
        """After a round: a change of the health state, and each camera gone or back."""
        health = self.client.health
        report = health.check()
        if report is not None:
            log.warning("hub health: %s: %s", report.state.value, report.detail)
            if on_health is not None:
                on_health(report)
        for camera in health.cameras.changes():
            presence = "connected" if camera.connected else "offline"
            log.warning("camera %s: %s (hub report)", camera.name, presence)
            if on_camera is not None:
                on_camera(camera)

    async def listen(
        self,
        *,
        poll: float = 5.0,
        stop: asyncio.Event | None = None,
        on_health: Callable[[HealthReport], None] | None = None,
        on_camera: Callable[[CameraState], None] | None = None,
    ) -> None:
        """Sync on every relay "new message" event (or every ``poll`` seconds without the
        socket) until ``stop``, or until the device turns out to be removed (no retrying
        then). ``on_health`` gets every change of the health state (the first one too),
        ``on_camera`` every camera that went away or came back (``client.cameras``)."""
        client = self.client
        stop = stop or asyncio.Event()
        sub = None
        try:
            while not stop.is_set():
                if sub is None and not client.removed:
                    with contextlib.suppress(RelayError):
                        sub = await client.relay.subscribe([g.entry.mailbox for g in client.groups])
                await self.sync_groups()
                if not client.removed:
                    await client.auto_resync()
                self._tell(on_health, on_camera)
                client.keep_clips()
                if client.removed:
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
                    client.health.device_removed(str(e))
                    sub = None
                except RelayError:
                    with contextlib.suppress(Exception):
                        await sub.close()
                    sub = None
        finally:
            if sub is not None:
                with contextlib.suppress(Exception):
                    await sub.close()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with compat.timeout(seconds):
            await stop.wait()


__all__ = ["Syncer"]
