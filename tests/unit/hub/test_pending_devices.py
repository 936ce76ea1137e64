"""Pending devices in ``devices.json`` (``hub/state/registry.py``, ``hub/state/pending.py``):
held, decided by id or name, expired with their code, kept beside the paired devices, 0600."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from privastead.errors import ConfigError, StorageError
from privastead.hub.state.pending import Decision, PendingDevice
from privastead.hub.state.registry import Device, DeviceRegistry

NOW = 1_000_000.0


def _pending(pending_id: str = "ab" * 16, name: str = "phone", ttl: float = 600) -> PendingDevice:
    return PendingDevice(
        pending_id, name, NOW, NOW + ttl, ("door",), None, "1234 5678", "d461 2729 5f5a 8ffa"
    )


def test_pending_device_is_kept_beside_paired_ones_and_decided(tmp_path: Path) -> None:
    registry = DeviceRegistry(tmp_path)
    registry.add(Device("cd" * 16, "laptop", NOW, "relay-id"))
    registry.add_pending(_pending(), NOW)
    assert stat.S_IMODE(registry.path.stat().st_mode) == 0o600
    # A write to the paired devices keeps the pending ones, and the other way round.
    registry.add(Device("ef" * 16, "tablet", NOW, "relay-id-2"))
    assert set(registry.pending(NOW)) == {"ab" * 16}
    assert set(registry.all()) == {"cd" * 16, "ef" * 16}
    # Decided by name (or id), once.
    decided = registry.decide("phone", True, NOW + 1)
    assert decided.decision is Decision.APPROVED
    assert registry.pending(NOW + 1)["ab" * 16].decision is Decision.APPROVED
    with pytest.raises(ConfigError, match="already approved"):
        registry.decide("ab" * 16, False, NOW + 2)
    with pytest.raises(ConfigError, match="no pending device 'tablet'"):
        registry.decide("tablet", True, NOW + 2)  # a paired device is not pending


def test_pending_device_expires_with_its_code(tmp_path: Path) -> None:
    registry = DeviceRegistry(tmp_path)
    registry.add_pending(_pending(ttl=30), NOW)
    registry.alert_pending("ab" * 16, "SECURITY ALERT: a second device", NOW + 1)
    assert registry.pending(NOW + 29)["ab" * 16].alerts == ("SECURITY ALERT: a second device",)
    assert registry.pending(NOW + 30) == {}
    with pytest.raises(ConfigError, match="expired"):
        registry.decide("phone", True, NOW + 31)
    registry.add_pending(_pending("12" * 16, "other"), NOW + 31)  # a write drops the expired
    assert set(json.loads(registry.path.read_text())["pending"]) == {"12" * 16}


def test_two_pending_devices_of_one_name_need_the_id(tmp_path: Path) -> None:
    registry = DeviceRegistry(tmp_path)
    registry.add_pending(_pending("ab" * 16), NOW)
    registry.add_pending(_pending("12" * 16), NOW)
    with pytest.raises(ConfigError, match="give the id"):
        registry.decide("phone", False, NOW)
    assert registry.decide("12" * 16, False, NOW).decision is Decision.REJECTED


def test_forgetting_orphaned_pending_devices(tmp_path: Path) -> None:
    registry = DeviceRegistry(tmp_path)
    registry.add(Device("cd" * 16, "laptop", NOW, "relay-id"))
    registry.add_pending(_pending(), NOW)
    assert [p.name for p in registry.forget_pending(NOW + 1)] == ["phone"]
    assert registry.pending(NOW + 1) == {} and "pending" not in registry.path.read_text()
    assert set(registry.all()) == {"cd" * 16}


def test_a_damaged_pending_record_is_a_storage_error(tmp_path: Path) -> None:
    registry = DeviceRegistry(tmp_path)
    registry.add_pending(_pending(), NOW)
    data = json.loads(registry.path.read_text())
    data["pending"]["ab" * 16]["decision"] = "maybe"
    registry.path.write_text(json.dumps(data))
    with pytest.raises(StorageError, match="pending device"):
        registry.pending(NOW)
