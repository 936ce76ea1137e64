"""The hub's MLS groups: per camera ``events``, ``live`` and ``control``, each with its own
state file, relay mailbox and :class:`GroupSender`; plus the registry of paired devices.

Layout under ``<data_dir>``::

    groups.json           {"<camera>/<group>": {"group_id": hex, "mailbox": hex, "state": file}}
    mls/<camera>-<group>.mls   one Identity (state file) per group: small per-message snapshots
    outbox/               hub.outbox (ciphertext waiting for the relay)
    devices.json          paired devices: name, relay device id, member identity per group

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
from privastead.crypto import AddResult, Identity
from privastead.errors import StorageError
from privastead.hub.outbox import Outbox
from privastead.hub.sender import GroupSender
from privastead.protocol.groups import GROUPS, HUB_MEMBER
from privastead.protocol.pairing_messages import GroupGrant


@dataclass(frozen=True)
class DeviceAdded:
    """A device's fresh leaf in one group: the add commit, who joined, the device's grant."""

    outbox_seq: int  # where the add commit sits in the outbox
    result: AddResult
    joined: frozenset[bytes]  # member identities new after the add (one, for a sane package)
    grant: GroupGrant


@dataclass
class HubGroup:
    camera: str
    group: str
    group_id: bytes
    mailbox: str
    identity: Identity
    sender: GroupSender

    @property
    def key(self) -> str:
        return f"{self.camera}/{self.group}"

    # Commits go through the sender, which records them in the same atomic state write.

    def add(self, key_package: bytes) -> AddResult:
        def op(app_data: bytes) -> AddResult:
            return self.identity.add_members(self.group_id, [key_package], app_data=app_data)

        return self.sender.commit(op, lambda r: r.commit)

    def add_device(self, key_package: bytes, stale: str | None = None) -> DeviceAdded:
        """Add a device's KeyPackage, first removing ``stale`` (its old leaf's member identity,
        hex) if that is still a member: pairing, re-pairing and re-adding all do this."""
        before = {m.identity for m in self.identity.members(self.group_id)}
        if stale is not None and bytes.fromhex(stale) in before:
            self.remove(bytes.fromhex(stale))
            before.discard(bytes.fromhex(stale))
        first_seq = self.sender.next_app_seq
        outbox_seq = self.sender.next_seq
        result = self.add(key_package)
        after = {m.identity for m in self.identity.members(self.group_id)}
        grant = GroupGrant(
            group=self.group,
            mailbox=self.mailbox,
            hub_signature_key=self.identity.signature_key,
            welcome=result.welcome,
            first_seq=first_seq,
        )
        return DeviceAdded(outbox_seq, result, frozenset(after - before), grant)

    def remove(self, member: bytes) -> bytes:
        def op(app_data: bytes) -> bytes:
            return self.identity.remove_members(self.group_id, [member], app_data=app_data)

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

    def __init__(self, data_dir: Path, outbox: Outbox, cameras: Sequence[str]) -> None:
        self.data_dir = data_dir
        self.outbox = outbox
        (data_dir / "mls").mkdir(mode=0o700, parents=True, exist_ok=True)
        self._manifest_path = data_dir / "groups.json"
        self._manifest = _read_json(self._manifest_path)
        self._groups: dict[str, HubGroup] = {}
        try:
            for camera in cameras:
                for group in GROUPS:
                    self._groups[f"{camera}/{group}"] = self._open(camera, group)
        except BaseException:
            self.close()
            raise

    def _open(self, camera: str, group: str) -> HubGroup:
        key = f"{camera}/{group}"
        entry = self._manifest.get(key)
        if entry is None:
            path = self.data_dir / "mls" / f"{camera}-{group}.mls"
            if path.exists():  # created, but the crash came before the manifest entry
                path.unlink()
            identity = Identity.create(path, HUB_MEMBER)
            group_id = identity.create_group()
            entry = {"group_id": group_id.hex(), "mailbox": secrets.token_hex(16)}
            entry["state"] = path.name
            self._manifest[key] = entry
            _write_json(self._manifest_path, self._manifest)
        else:
            identity = Identity.open(self.data_dir / "mls" / entry["state"])
            group_id = bytes.fromhex(entry["group_id"])
        mailbox = str(entry["mailbox"])
        sender = GroupSender(identity, group_id, self.outbox.mailbox(mailbox))
        return HubGroup(camera, group, group_id, mailbox, identity, sender)

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
            if not group.identity.closed:
                group.identity.close()


class DeviceRegistry:
    """``devices.json``: who is paired, so that ``devices list|remove`` can act on them."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "devices.json"
        self._data = _read_json(self.path)

    def add(
        self,
        device_id: str,
        name: str,
        members: dict[str, str],
        *,
        paired_at: float,
        relay_device: str,
    ) -> None:
        """``members``: ``"<camera>/<group>"`` -> the device's member identity (hex);
        ``relay_device``: its device id at the relay (to revoke its token)."""
        self._data[device_id] = {
            "name": name,
            "members": members,
            "paired_at": paired_at,
            "relay_device": relay_device,
        }
        _write_json(self.path, self._data)

    def set_members(self, device_id: str, members: dict[str, str]) -> None:
        """After a re-add: the device's new member identities."""
        if device_id in self._data:
            self._data[device_id]["members"] = members
            _write_json(self.path, self._data)

    def replace(self, device_id: str, members: dict[str, str], *, relay_device: str) -> None:
        """After ``pair --replace``: the same device record with fresh leaves and relay token."""
        record = self._data.get(device_id)
        if isinstance(record, dict):
            record["members"] = members
            record["relay_device"] = relay_device
            _write_json(self.path, self._data)

    def remove(self, device_id: str) -> None:
        self._data.pop(device_id, None)
        _write_json(self.path, self._data)

    def get(self, device_id: str) -> dict[str, Any] | None:
        value = self._data.get(device_id)
        return dict(value) if isinstance(value, dict) else None

    def all(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self._data.items()}


__all__ = ["GROUPS", "HUB_MEMBER", "DeviceRegistry", "HubGroup", "HubGroups"]
