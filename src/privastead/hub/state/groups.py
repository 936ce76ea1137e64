"""The hub's MLS groups: per camera ``events``, ``live`` and ``control``, each with its own
state file, relay mailbox and :class:`GroupSender`; plus the registry of paired devices.

Each group also has its :class:`GroupWorker` (``delivery.worker``), the one thread that runs
its MLS calls and durable writes while the hub runs. Paths come from ``HubDataDir``
(``state.datadir``): ``groups.json`` maps ``"<camera>/<group>"`` to the group id, mailbox and
state file (``mls/<camera>-<group>.mls``); ``devices.json`` is the registry.

A group is created on first use and recorded in ``groups.json`` right after its state file
exists; a state file without a manifest entry (crash between the two) is recreated.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privastead.atomic_file import write_atomic
from privastead.crypto import AddResult, Identity, Member
from privastead.errors import PolicyError, StorageError
from privastead.hub.delivery.outbox import Outbox
from privastead.hub.delivery.sender import GroupSender
from privastead.hub.delivery.worker import GroupWorker
from privastead.hub.state.datadir import HubDataDir, as_data_dir
from privastead.hub.state.registry import DeviceRegistry, Leaf, migrate
from privastead.protocol.groups import GROUPS, HUB_MEMBER
from privastead.protocol.pairing_messages import GroupGrant


@dataclass(frozen=True)
class DeviceAdded:
    """A device's fresh leaf in one group: the add commit, the leaf, the device's grant."""

    outbox_seq: int  # where the add commit sits in the outbox
    result: AddResult
    leaf: Leaf  # the one leaf the add created: what devices.json binds to the device
    grant: GroupGrant


@dataclass
class HubGroup:
    camera: str
    group: str
    group_id: bytes
    mailbox: str
    identity: Identity
    sender: GroupSender
    #: The only thread that may run this group's MLS calls and outbox writes while the hub
    #: runs (``delivery.worker``); synchronous callers outside a running hub call directly.
    worker: GroupWorker

    @property
    def key(self) -> str:
        return f"{self.camera}/{self.group}"

    def members(self) -> list[Member]:
        """Every leaf but the hub's own."""
        own = self.identity.committer(self.group_id)
        return [m for m in self.identity.members(self.group_id) if m.index != own]

    # Commits go through the sender, which records them in the same atomic state write.

    def add(self, key_package: bytes) -> AddResult:
        def op(app_data: bytes) -> AddResult:
            return self.identity.add_members(self.group_id, [key_package], app_data=app_data)

        return self.sender.commit(op, lambda r: r.commit)

    def add_device(self, key_package: bytes, stale: Leaf | None = None) -> DeviceAdded:
        """Add a device's KeyPackage, first removing its ``stale`` leaf if that is still a
        member: pairing, re-pairing and re-adding all do this.

        The device's new leaf is the one leaf (index, signature key) the add commit created,
        read from the member lists before and after it. Anything but exactly one is undone
        (the new leaves are removed again before anyone has their Welcome) and raises
        ``PolicyError``; the core already refuses a KeyPackage that reuses a member's
        credential or key, so this guards the registry against the unforeseen."""
        if stale is not None:
            index = stale.find(self.members())
            if index is not None:
                self.remove_leaves([index])
        before = {(m.index, m.signature_key) for m in self.members()}
        first_seq = self.sender.next_app_seq
        outbox_seq = self.sender.next_seq
        result = self.add(key_package)
        new = {(m.index, m.signature_key) for m in self.members()} - before
        if len(new) != 1:
            if new:
                self.remove_leaves(sorted(index for index, _ in new))
            raise PolicyError(
                f"{self.key}: the add created {len(new)} leaves instead of one; undone"
            )
        ((index, signature_key),) = new
        grant = GroupGrant(
            group=self.group,
            mailbox=self.mailbox,
            hub_signature_key=self.identity.signature_key,
            welcome=result.welcome,
            first_seq=first_seq,
        )
        return DeviceAdded(outbox_seq, result, Leaf(index, signature_key), grant)

    def remove_leaves(self, indexes: Sequence[int]) -> bytes:
        """One commit removing the leaves at ``indexes``."""

        def op(app_data: bytes) -> bytes:
            return self.identity.remove_members(self.group_id, list(indexes), app_data=app_data)

        return self.sender.commit(op, lambda c: c)

    def self_update(self) -> bytes:
        def op(app_data: bytes) -> bytes:
            return self.identity.self_update(self.group_id, app_data=app_data)

        return self.sender.commit(op, lambda c: c)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as e:
        raise StorageError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise StorageError(f"{path} is not a JSON object")
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True).encode())


class HubGroups:
    """Opens (creating if needed) every group of ``cameras``; ``close()`` releases the locks.

    Raises ``StateLockedError`` if another hub process (``run`` or ``pair``) holds them.
    """

    def __init__(self, data: HubDataDir | Path, outbox: Outbox, cameras: Sequence[str]) -> None:
        self.paths = as_data_dir(data)
        self.outbox = outbox
        self.paths.prepare()
        self._manifest_path = self.paths.groups_manifest
        self._manifest = _read_json(self._manifest_path)
        self._groups: dict[str, HubGroup] = {}
        try:
            for camera in cameras:
                for group in GROUPS:
                    self._groups[f"{camera}/{group}"] = self._open(camera, group)
            migrate(self.paths, self._members_of)
        except BaseException:
            self.close()
            raise

    def _members_of(self, key: str) -> list[Member] | None:
        group = self._groups.get(key)
        return None if group is None else group.members()

    def _open(self, camera: str, group: str) -> HubGroup:
        key = f"{camera}/{group}"
        entry = self._manifest.get(key)
        if entry is None:
            path = self.paths.group_state(f"{camera}-{group}.mls")
            if path.exists():  # created, but the crash came before the manifest entry
                path.unlink()
            identity = Identity.create(path, HUB_MEMBER)
            group_id = identity.create_group()
            entry = {"group_id": group_id.hex(), "mailbox": secrets.token_hex(16)}
            entry["state"] = path.name
            self._manifest[key] = entry
            _write_json(self._manifest_path, self._manifest)
        else:
            identity = Identity.open(self.paths.group_state(entry["state"]))
            group_id = bytes.fromhex(entry["group_id"])
        mailbox = str(entry["mailbox"])
        sender = GroupSender(identity, group_id, self.outbox.mailbox(mailbox))
        return HubGroup(camera, group, group_id, mailbox, identity, sender, GroupWorker(key))

    def get(self, camera: str, group: str) -> HubGroup:
        try:
            return self._groups[f"{camera}/{group}"]
        except KeyError:
            raise StorageError(f"no group {camera}/{group} on this hub") from None

    def __iter__(self) -> Iterator[HubGroup]:
        return iter(list(self._groups.values()))

    def cameras(self) -> list[str]:
        return sorted({g.camera for g in self._groups.values()})

    def epochs(self) -> dict[str, int]:
        return {g.key: g.identity.epoch(g.group_id) for g in self._groups.values()}

    def close(self) -> None:
        for group in self._groups.values():
            group.worker.close()  # what is queued runs (and becomes durable) first
            if not group.identity.closed:
                group.identity.close()


__all__ = ["GROUPS", "HUB_MEMBER", "DeviceAdded", "HubGroup", "HubGroups", "unknown_members"]


def unknown_members(groups: HubGroups, registry: DeviceRegistry) -> dict[str, list[Member]]:
    """Per group, the leaves (other than the hub's own) that belong to no registered device."""
    bound: dict[str, set[bytes]] = {}
    for device in registry.all().values():
        for key, leaf in device.leaves.items():
            bound.setdefault(key, set()).add(leaf.signature_key)
    out: dict[str, list[Member]] = {}
    for group in groups:
        strays = [m for m in group.members() if m.signature_key not in bound.get(group.key, set())]
        if strays:
            out[group.key] = strays
    return out
