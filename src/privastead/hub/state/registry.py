"""``devices.json``: who is paired, and which leaf of each group is theirs.

A device's leaf in a group is named by its **leaf index and signature public key**, read from
the group's member list right after the commit that added it (``HubGroup.add_device``), never
by the credential text: a credential says whatever the device's KeyPackage claimed, and a
device could claim another member's. The core keeps both facts stable (a leaf's index never
changes; its signature key cannot, ``membership.rs``) and unique in a group, so the pair names
exactly one leaf for as long as it is a member.

Format (version 2)::

    {"version": 2, "devices": {"<device id>": {
        "name": str, "paired_at": float, "relay_device": str,
        "status": "paired" | "removing" | "removal_incomplete",
        "leaves": {"<camera>/<group>": {"index": int, "signature_key": hex}},
        "incomplete": ["<camera>/<group>" or "relay", ...]}},
     "pending": {"<pending id>": {...}}}

``pending`` (optional; absent means none) holds the devices that proved they know a pairing
code and wait for the owner's confirmation (``state.pending``): no leaf, no token yet. An
expired one is dropped at the next write; readers never see it.

A removal sets ``removing`` before its first commit (the control reader re-adds nobody in that
state) and either deletes the record once the member lists prove the device gone, or leaves it
``removal_incomplete`` with what still holds it.

Version 1 named a leaf by its credential (``"members": {"<camera>/<group>": identity hex}``).
:func:`migrate` converts it when the hub opens its groups: an identity that matches exactly
one member becomes that leaf; none or several bind nothing, so such a leaf shows up as an
"unknown member" (``devices list``) that ``devices remove --unknown`` takes out.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from privastead.atomic_file import write_atomic
from privastead.errors import ConfigError, StorageError
from privastead.hub.state.datadir import HubDataDir, as_data_dir
from privastead.hub.state.pending import Decision, PendingDevice

log = logging.getLogger(__name__)

VERSION = 2


class MemberLike(Protocol):
    @property
    def index(self) -> int: ...

    @property
    def identity(self) -> bytes: ...

    @property
    def signature_key(self) -> bytes: ...


@dataclass(frozen=True)
class Leaf:
    """One leaf of one group: where it sits and the key that signs for it."""

    index: int
    signature_key: bytes

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "signature_key": self.signature_key.hex()}

    @classmethod
    def from_json(cls, value: object, what: str) -> Leaf:
        if not isinstance(value, dict) or set(value) != {"index", "signature_key"}:
            raise StorageError(f"devices.json: {what} must hold index and signature_key")
        index, key = value["index"], value["signature_key"]
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise StorageError(f"devices.json: {what}.index must be a leaf index")
        try:
            raw = bytes.fromhex(key) if isinstance(key, str) else b""
        except ValueError:
            raw = b""
        if not raw:
            raise StorageError(f"devices.json: {what}.signature_key must be hex")
        return cls(index, raw)

    def find(self, members: Iterable[MemberLike]) -> int | None:
        """This leaf's index in ``members`` if it is still a member, else None."""
        for m in members:
            if m.signature_key == self.signature_key:
                return m.index  # keys are unique in a group; the index never moves
        return None


class DeviceStatus(enum.Enum):
    PAIRED = "paired"
    REMOVING = "removing"
    REMOVAL_INCOMPLETE = "removal_incomplete"


@dataclass(frozen=True)
class Device:
    device_id: str
    name: str
    paired_at: float
    relay_device: str
    leaves: dict[str, Leaf] = field(default_factory=dict)
    status: DeviceStatus = DeviceStatus.PAIRED
    incomplete: tuple[str, ...] = ()

    def cameras(self) -> list[str]:
        return sorted({key.split("/", 1)[0] for key in self.leaves})

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "paired_at": self.paired_at,
            "relay_device": self.relay_device,
            "status": self.status.value,
            "leaves": {k: leaf.to_json() for k, leaf in sorted(self.leaves.items())},
            "incomplete": list(self.incomplete),
        }

    @classmethod
    def from_json(cls, device_id: str, value: object) -> Device:
        what = f"device {device_id}"
        keys = {"name", "paired_at", "relay_device", "status", "leaves", "incomplete"}
        if not isinstance(value, dict) or set(value) != keys:
            raise StorageError(f"devices.json: {what} must hold {', '.join(sorted(keys))}")
        leaves = value["leaves"]
        if not isinstance(leaves, dict):
            raise StorageError(f"devices.json: {what}.leaves must be an object")
        try:
            status = DeviceStatus(value["status"])
        except ValueError:
            raise StorageError(f"devices.json: {what}.status {value['status']!r}") from None
        incomplete = value["incomplete"]
        if not isinstance(incomplete, list) or not all(isinstance(k, str) for k in incomplete):
            raise StorageError(f"devices.json: {what}.incomplete must be a list of groups")
        return cls(
            device_id=device_id,
            name=str(value["name"]),
            paired_at=float(value["paired_at"]),
            relay_device=str(value["relay_device"]),
            leaves={str(k): Leaf.from_json(v, f"{what}.leaves.{k}") for k, v in leaves.items()},
            status=status,
            incomplete=tuple(incomplete),
        )


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"version": VERSION, "devices": {}}
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as e:
        raise StorageError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise StorageError(f"{path} is not a JSON object")
    return data


def _is_v1(data: dict[str, Any]) -> bool:
    return "version" not in data


class DeviceRegistry:
    """The paired devices. Every write re-reads the file first: the pairing, the control
    reader (re-adds) and a removal each write it, with awaits in between."""

    def __init__(self, data: HubDataDir | Path) -> None:
        self.path = as_data_dir(data).devices

    def _load(self) -> dict[str, Device]:
        data = _read(self.path)
        if _is_v1(data):
            raise StorageError(
                f"{self.path} is in the format of an older hub: open the hub's groups (any "
                "`privastead-hub` command does) to convert it"
            )
        if data.get("version") != VERSION or not isinstance(data.get("devices"), dict):
            raise StorageError(f"{self.path}: unknown version {data.get('version')!r}")
        return {str(k): Device.from_json(str(k), v) for k, v in data["devices"].items()}

    def _load_pending(self) -> dict[str, PendingDevice]:
        pending = _read(self.path).get("pending", {})
        if not isinstance(pending, dict):
            raise StorageError(f"{self.path}: pending must be an object")
        return {str(k): PendingDevice.from_json(str(k), v) for k, v in pending.items()}

    def _save(
        self, devices: dict[str, Device], pending: dict[str, PendingDevice] | None = None
    ) -> None:
        """Write the file (0600, atomically); ``pending`` None keeps the pending devices."""
        if pending is None:
            pending = self._load_pending() if self.path.exists() else {}
        body: dict[str, Any] = {
            "version": VERSION,
            "devices": {k: d.to_json() for k, d in devices.items()},
        }
        if pending:
            body["pending"] = {k: p.to_json() for k, p in pending.items()}
        write_atomic(self.path, json.dumps(body, indent=1, sort_keys=True).encode())

    def _update(self, device_id: str, change: Callable[[Device], Device]) -> Device | None:
        devices = self._load()
        old = devices.get(device_id)
        if old is None:
            return None
        devices[device_id] = change(old)
        self._save(devices)
        return devices[device_id]

    def add(self, device: Device) -> None:
        devices = self._load()
        devices[device.device_id] = device
        self._save(devices)

    def set_leaf(self, device_id: str, key: str, leaf: Leaf) -> None:
        """After a re-add: the device's new leaf in one group."""
        self._update(device_id, lambda d: replace(d, leaves={**d.leaves, key: leaf}))

    def replace_leaves(self, device_id: str, leaves: dict[str, Leaf], relay_device: str) -> None:
        """After ``pair --replace``: the same record with fresh leaves and relay device."""
        self._update(
            device_id,
            lambda d: replace(
                d, leaves=dict(leaves), relay_device=relay_device, status=DeviceStatus.PAIRED
            ),
        )

    def set_status(
        self, device_id: str, status: DeviceStatus, incomplete: tuple[str, ...] = ()
    ) -> None:
        self._update(device_id, lambda d: replace(d, status=status, incomplete=incomplete))

    def remove(self, device_id: str) -> None:
        devices = self._load()
        if devices.pop(device_id, None) is not None:
            self._save(devices)

    def get(self, device_id: str) -> Device | None:
        return self._load().get(device_id)

    # -- pending devices (confirm before adding) ------------------------------------------

    def pending(self, now: float) -> dict[str, PendingDevice]:
        """The pending devices that have not expired at ``now``."""
        return {k: p for k, p in self._load_pending().items() if not p.expired(now)}

    def _write_pending(
        self, change: Callable[[dict[str, PendingDevice]], None], now: float
    ) -> None:
        pending = {k: p for k, p in self._load_pending().items() if not p.expired(now)}
        change(pending)
        self._save(self._load(), pending)

    def add_pending(self, device: PendingDevice, now: float) -> None:
        self._write_pending(lambda p: p.__setitem__(device.pending_id, device), now)

    def drop_pending(self, pending_id: str, now: float) -> None:
        def change(pending: dict[str, PendingDevice]) -> None:
            pending.pop(pending_id, None)

        self._write_pending(change, now)

    def alert_pending(self, pending_id: str, alert: str, now: float) -> None:
        def change(pending: dict[str, PendingDevice]) -> None:
            old = pending.get(pending_id)
            if old is not None and alert not in old.alerts:
                pending[pending_id] = replace(old, alerts=(*old.alerts, alert))

        self._write_pending(change, now)

    def forget_pending(
        self, now: float, keep: Callable[[PendingDevice], bool] = lambda _p: False
    ) -> list[PendingDevice]:
        """Drop every pending device but those ``keep`` names (their exchange died with the
        process that held it); the dropped ones that had not expired, for the log."""
        pending = self.pending(now)
        kept = {k: p for k, p in pending.items() if keep(p)}
        orphans = [p for k, p in pending.items() if k not in kept]
        if orphans or len(self._load_pending()) != len(kept):
            self._save(self._load(), kept)
        return orphans

    def find_pending(self, wanted: str, now: float) -> PendingDevice:
        """The one pending device with id (or name) ``wanted``; a clear error otherwise."""
        matches = [p for p in self.pending(now).values() if wanted in (p.pending_id, p.name)]
        if len(matches) != 1:
            raise ConfigError(
                f"no pending device {wanted!r}: it may have expired with its code, or been "
                "decided already (see `privastead-hub devices list`)"
                if not matches
                else f"several pending devices are called {wanted!r}: give the id"
            )
        return matches[0]

    def decide(self, wanted: str, approve: bool, now: float) -> PendingDevice:
        """The owner's answer for a pending device (id or name); the decided record."""
        found = self.find_pending(wanted, now)
        if found.decision is not Decision.WAITING:
            raise ConfigError(f"pending device {wanted!r} was already {found.decision.value}")
        decided = replace(found, decision=Decision.APPROVED if approve else Decision.REJECTED)
        self._write_pending(lambda p: p.__setitem__(found.pending_id, decided), now)
        return decided

    def all(self) -> dict[str, Device]:
        return self._load()


def migrate(paths: HubDataDir, members_of: Callable[[str], Sequence[MemberLike] | None]) -> bool:
    """Convert a version-1 ``devices.json`` (``members_of(key)``: the members of an open
    group but the hub's own leaf, None for a group this hub does not hold). True if it
    converted anything."""
    path = paths.devices
    if not path.exists():
        return False
    data = _read(path)
    if not _is_v1(data):
        return False
    devices: dict[str, Device] = {}
    for device_id, record in data.items():
        if not isinstance(record, dict):
            raise StorageError(f"{path}: device {device_id} is not an object")
        leaves: dict[str, Leaf] = {}
        for key, identity_hex in dict(record.get("members", {})).items():
            members = members_of(str(key))
            matches = [m for m in members or [] if m.identity.hex() == str(identity_hex)]
            if len(matches) == 1:
                leaves[str(key)] = Leaf(matches[0].index, matches[0].signature_key)
            else:
                log.warning(
                    "devices.json: device %s has %s leaf named like its record in %s; "
                    "left unbound (see `privastead-hub devices list`)",
                    device_id,
                    "no" if not matches else "more than one",
                    key,
                )
        devices[str(device_id)] = Device(
            device_id=str(device_id),
            name=str(record.get("name", "")),
            paired_at=float(record.get("paired_at", 0.0)),
            relay_device=str(record.get("relay_device", "")),
            leaves=leaves,
        )
    DeviceRegistry(paths)._save(devices)
    log.info("devices.json: converted %d device(s) to leaf index + signature key", len(devices))
    return True


__all__ = [
    "Device",
    "DeviceRegistry",
    "DeviceStatus",
    "Leaf",
    "MemberLike",
    "PendingDevice",
    "migrate",
]
