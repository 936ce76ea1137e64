"""A client's data directory: its pairing with one hub, MLS state per group, clips, events.

device.json      hub name, relay url, device id, safety code, per camera and group:
                 mailbox, group id, state file
relay-token      the device's own relay token (0600), from PairAccept
mls/<camera>-<group>.mls   one Identity per group (protocol.md: unlinkable credentials)
sync/<camera>-<group>.json relay cursor and sequence tracker of that group
clips/ events.db thumbnails/   client.clipstore, client.eventlog, thumbnails
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privastead.atomic_file import write_atomic
from privastead.errors import ConfigError, StorageError


@dataclass(frozen=True)
class GroupEntry:
    camera: str
    group: str
    mailbox: str
    group_id: bytes
    state: str
    first_seq: int

    @property
    def key(self) -> str:
        return f"{self.camera}/{self.group}"


@dataclass(frozen=True)
class DeviceInfo:
    hub_name: str
    relay_url: str
    device_id: str
    device_name: str
    safety_code: str
    groups: tuple[GroupEntry, ...]

    def cameras(self) -> list[str]:
        return sorted({g.camera for g in self.groups})

    def to_json(self) -> dict[str, Any]:
        return {
            "hub_name": self.hub_name,
            "relay_url": self.relay_url,
            "device_id": self.device_id,
            "device_name": self.device_name,
            "safety_code": self.safety_code,
            "groups": [
                {
                    "camera": g.camera,
                    "group": g.group,
                    "mailbox": g.mailbox,
                    "group_id": g.group_id.hex(),
                    "state": g.state,
                    "first_seq": g.first_seq,
                }
                for g in self.groups
            ],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DeviceInfo:
        groups = tuple(
            GroupEntry(
                camera=g["camera"],
                group=g["group"],
                mailbox=g["mailbox"],
                group_id=bytes.fromhex(g["group_id"]),
                state=g["state"],
                first_seq=int(g["first_seq"]),
            )
            for g in d["groups"]
        )
        return cls(
            hub_name=d["hub_name"],
            relay_url=d["relay_url"],
            device_id=d["device_id"],
            device_name=d["device_name"],
            safety_code=d["safety_code"],
            groups=groups,
        )


class DataDir:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def mls(self) -> Path:
        return self.root / "mls"

    @property
    def sync(self) -> Path:
        return self.root / "sync"

    @property
    def clips(self) -> Path:
        return self.root / "clips"

    @property
    def events_db(self) -> Path:
        return self.root / "events.db"

    @property
    def thumbnails(self) -> Path:
        return self.root / "thumbnails"

    def paired(self) -> bool:
        return (self.root / "device.json").exists()

    @property
    def relay_url_file(self) -> Path:
        """The relay a short code is typed for, asked once and remembered (no secret)."""
        return self.root / "relay-url"

    def remembered_relay_url(self) -> str | None:
        try:
            return self.relay_url_file.read_text().strip() or None
        except FileNotFoundError:
            return None

    def remember_relay_url(self, url: str) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self.relay_url_file, url.encode())

    def prepare(self) -> None:
        for d in (self.root, self.mls, self.sync):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)

    def save(self, info: DeviceInfo, token: str) -> None:
        write_atomic(self.root / "relay-token", token.encode())
        write_atomic(self.root / "device.json", json.dumps(info.to_json(), indent=1).encode())

    def load(self) -> DeviceInfo:
        path = self.root / "device.json"
        if not path.exists():
            raise ConfigError(
                f"{self.root} is not paired with a hub: run `privastead-app pair CODE` first"
            )
        try:
            return DeviceInfo.from_json(json.loads(path.read_bytes()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise StorageError(f"cannot read {path}: {e}") from None

    def token(self) -> str:
        return (self.root / "relay-token").read_text().strip()

    def sync_state(self, entry: GroupEntry) -> dict[str, Any]:
        path = self.sync / f"{entry.camera}-{entry.group}.json"
        if not path.exists():
            return {}
        data = json.loads(path.read_bytes())
        return dict(data) if isinstance(data, dict) else {}

    def save_sync_state(self, entry: GroupEntry, state: dict[str, Any]) -> None:
        path = self.sync / f"{entry.camera}-{entry.group}.json"
        write_atomic(path, json.dumps(state, sort_keys=True).encode())

    def sync_state_raw(self, name: str) -> dict[str, Any]:
        path = self.sync / f"{name}.json"
        if not path.exists():
            return {}
        data = json.loads(path.read_bytes())
        return dict(data) if isinstance(data, dict) else {}

    def save_sync_state_raw(self, name: str, state: dict[str, Any]) -> None:
        self.sync.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self.sync / f"{name}.json", json.dumps(state, sort_keys=True).encode())


__all__ = ["DataDir", "DeviceInfo", "GroupEntry"]
