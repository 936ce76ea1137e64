"""Re-adding this device to a group it lost sync with, by request or by itself.

A device that lost sync with its ``events`` or ``live`` group reads nothing new there until the
hub replaces its leaf. ``request`` sends fresh KeyPackages in the camera's ``control`` group
(which authenticates this device's leaf); the hub's ``ReAddAccept``, read in order from the
control mailbox by the receive loop, is joined by ``rejoin`` and swapped in for the stale
state. ``auto`` sends that request by itself once the ``ResyncPolicy`` finds the evidence
convincing (``client/resync.py``), rate-limited per group and persisted in
``sync/resync.json``. Fresh leaves waiting for their Welcome survive a restart
(``*.readd.mls``).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from privastead.client.device import GroupEntry
from privastead.client.receiver import GroupReceiver
from privastead.client.resync import ResyncPolicy
from privastead.crypto import Identity
from privastead.errors import ConfigError, CryptoError, RelayError, StateLockedError, StorageError
from privastead.protocol.messages import Heartbeat
from privastead.protocol.pairing_messages import ReAddAccept, ReAddRequest
from privastead.protocol.seq import SeqTracker

if TYPE_CHECKING:
    from privastead.client.sync import Syncer

log = logging.getLogger(__name__)


def epoch_of(identity: Identity, group_id: bytes) -> int | None:
    """The group's epoch, or None once the hub removed this device from it."""
    try:
        return identity.epoch(group_id)
    except CryptoError:
        return None


class ReAdder:
    def __init__(self, syncer: Syncer, resync: ResyncPolicy | None) -> None:
        self._s = syncer
        self.resync = resync
        self._pending: dict[tuple[str, str], Identity] = {}  # fresh leaves awaiting a Welcome
        self._hub_epochs: dict[str, tuple[float, int]] = {}  # key -> (hub time, hub epoch)
        self._counted_beats: dict[str, float] = {}  # key -> hub time of the last counted lag
        self.readded: list[str] = []  # "camera/group" keys re-joined

    def reopen_pending(self, entry: GroupEntry, path: Path) -> None:
        """A re-add requested before a restart: its answer may still come."""
        try:
            self._pending[(entry.camera, entry.group)] = Identity.open(path)
        except StateLockedError:
            raise  # another process has this data directory open
        except (StorageError, CryptoError) as e:  # e.g. cut short by a crash: ask again later
            log.warning("%s: unusable pending re-add state dropped: %s", entry.key, e)
            path.unlink(missing_ok=True)

    def heartbeat(self, beat: Heartbeat, local: dict[str, int]) -> None:
        for key, epoch in beat.epochs.items():
            # Only the newest heartbeat counts (a replayed or reordered one proves nothing).
            if key in local and beat.hub_time >= self._hub_epochs.get(key, (0.0, 0))[0]:
                self._hub_epochs[key] = (beat.hub_time, epoch)

    def pending_path(self, camera: str, group: str) -> str:
        return f"{camera}-{group}.readd.mls"

    async def request(self, camera: str, groups: Sequence[str], reason: str = "") -> None:
        """Send fresh KeyPackages for ``groups`` of ``camera`` in its control group; the answer
        is joined by the receive loop. Keep this Syncer open until ``readded`` lists them."""
        control = next(
            (g for g in self._s.groups if g.entry.camera == camera and g.entry.group == "control"),
            None,
        )
        if control is None:
            raise ConfigError(f"this device is not paired with camera {camera!r}")
        kps: dict[str, bytes] = {}
        for name in groups:
            if name == "control" or not any(
                g.entry.camera == camera and g.entry.group == name for g in self._s.groups
            ):
                raise ConfigError(f"cannot re-add {camera}/{name}: only events or live groups")
            old = self._pending.pop((camera, name), None)
            if old is not None:
                old.close()
            path = self._s.data.mls / self.pending_path(camera, name)
            path.unlink(missing_ok=True)
            ident = Identity.create(path, secrets.token_hex(16).encode())
            self._pending[(camera, name)] = ident
            kps[name] = ident.key_package()
        request = ReAddRequest(self._s.info.device_id, camera, kps, reason)
        ciphertext = control.identity.encrypt(control.entry.group_id, request.encode())
        await self._s.upload(control.entry.mailbox, ciphertext)

    def rejoin(self, accept: ReAddAccept) -> None:
        camera = accept.camera.camera
        for grant in accept.camera.groups:
            ident = self._pending.pop((camera, grant.group), None)
            group = next(
                (
                    g
                    for g in self._s.groups
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
            pending = self._s.data.mls / self.pending_path(camera, grant.group)
            pending.replace(self._s.data.mls / group.entry.state)
            entry = replace(
                group.entry, mailbox=grant.mailbox, group_id=group_id, first_seq=grant.first_seq
            )
            identity = Identity.open(self._s.data.mls / entry.state)
            tracker = SeqTracker(grant.first_seq)  # what came before is gone for this leaf
            group.entry, group.identity = entry, identity
            group.receiver = GroupReceiver(
                identity,
                group_id,
                camera=camera,
                group=grant.group,
                tracker=tracker,
                health=self._s.health,
                sink=self._s.sink,
            )
            self._s.data.save_sync_state(
                entry, {"cursor": group.cursor, "tracker": tracker.to_dict()}
            )
            self._s.watch.readded(entry.key)
            self.readded.append(entry.key)
            if self.resync is not None:
                self.resync.readded(entry.key)
                self._s.data.save_sync_state_raw("resync", self.resync.to_dict())
            self._s.status_line(f"resync {entry.key}: re-added by the hub")
        self._s.info = replace(self._s.info, groups=tuple(g.entry for g in self._s.groups))
        self._s.data.save(self._s.info, self._s.data.token())

    def _gather_evidence(self) -> None:
        assert self.resync is not None
        undecryptable = set(self._s.health.desynced())
        for group in self._s.groups:
            key = group.entry.key
            if group.entry.group == "control":
                continue  # re-pairing territory: a re-add request travels in control itself
            if key in self._s.blocked:
                self.resync.observe(key, "blocked", "its mailbox waits on a later epoch")
            else:
                self.resync.clear(key, "blocked")
            if key in undecryptable:
                self.resync.observe(key, "undecryptable", "its messages do not decrypt")
            else:
                self.resync.clear(key, "undecryptable")
            beat = self._hub_epochs.get(key)
            local = epoch_of(group.identity, group.entry.group_id)
            if local is None:  # the hub removed this leaf: a re-add is the way back
                self.resync.observe(key, "undecryptable", "the hub removed this device's leaf")
                continue
            if beat is not None and beat[1] > local:
                if self._counted_beats.get(key) != beat[0]:  # one observation per heartbeat
                    self._counted_beats[key] = beat[0]
                    self.resync.observe(
                        key, "lagging", f"the hub is at epoch {beat[1]}, this device at {local}"
                    )
            else:
                self.resync.clear(key, "lagging")

    async def auto(self) -> list[str]:
        """After a round: ask for a re-add of the groups the policy finds lost and due;
        returns their keys. Nothing happens in a round the relay failed."""
        if self.resync is None or self._s.relay_error:
            return []
        self._gather_evidence()
        keys = [g.entry.key for g in self._s.groups if g.entry.group != "control"]
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
                await self.request(camera, groups, f"automatic: {reason}")
            except (RelayError, CryptoError) as e:
                for d in wanted:
                    self.resync.failed(d.key, previous[d.key])
                log.warning("resync %s: request not sent: %s", camera, type(e).__name__)
                continue
            for d in wanted:
                when = time.strftime("%H:%M:%S", time.localtime(d.next_allowed))
                self._s.status_line(
                    f"resync {d.key}: this device lost sync ({d.reason}); asked the hub to "
                    f"re-add it (request {d.attempt}; no new request before {when})"
                )
                sent.append(d.key)
        if due:
            self._s.data.save_sync_state_raw("resync", self.resync.to_dict())
        return sent

    def close(self) -> None:
        for ident in self._pending.values():
            ident.close()
        self._pending.clear()


__all__ = ["ReAdder", "epoch_of"]
