"""The hub's handling of ``ReAddRequest`` (hub/control/reader.py): authenticated by the MLS sender's
leaf (index and signature key), never by credential text.

Real MLS groups (hub and client identities) and a real ``devices.json``; no relay is needed
because the re-add only commits and queues its answer in the outbox. The hostile cases are the
ones a departing device would try: a KeyPackage that claims the hub's or another device's
credential (so that a registry keyed by credential text would keep tracking its old leaf), a
request sent in another device's name, and a request while its removal runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from privastead.crypto import Identity
from privastead.hub.control.reader import ControlReader
from privastead.hub.delivery.outbox import Outbox
from privastead.hub.state.groups import HubGroups, unknown_members
from privastead.hub.state.registry import Device, DeviceRegistry, DeviceStatus, Leaf
from privastead.protocol.codec import decode_message
from privastead.protocol.pairing_messages import ReAddAccept, ReAddRequest
from privastead.relay.client import RelayClient

DEVICE_A = "aa" * 16
DEVICE_B = "bb" * 16


def _setup(tmp: Path):  # type: ignore[no-untyped-def]
    outbox = Outbox(tmp / "outbox", quota_bytes=1 << 24)
    groups = HubGroups(tmp, outbox, ["cam"])
    registry = DeviceRegistry(tmp)
    clients: dict[str, dict[str, Identity]] = {}
    for device in (DEVICE_A, DEVICE_B):
        leaves, idents = {}, {}
        for name in ("events", "control"):
            group = groups.get("cam", name)
            ident = Identity.create(tmp / f"{device}-{name}.mls", f"{device}-{name}".encode())
            added = group.add_device(ident.key_package())
            ident.join(added.result.welcome, inviter_signature_key=group.identity.signature_key)
            # Everyone already in the group processes the add commit.
            for other in clients.values():
                other[name].process(group.group_id, added.result.commit)
            assert added.leaf.signature_key == ident.signature_key
            leaves[group.key] = added.leaf
            idents[name] = ident
        clients[device] = idents
        registry.add(Device(device, device[:2], 0.0, "r", leaves))
    reader = ControlReader(groups, outbox, RelayClient("http://127.0.0.1:9", "t"))
    return groups, reader, clients


def _request(groups: HubGroups, sender: Identity, request: ReAddRequest) -> int:
    """The request as the hub receives it: the sender's leaf index."""
    control = groups.get("cam", "control")
    body = sender.encrypt(control.group_id, request.encode())
    return control.identity.process(control.group_id, body).sender_index


async def test_readd_binds_the_one_new_leaf_and_answers_in_control(tmp_path: Path) -> None:
    groups, reader, clients = _setup(tmp_path)
    events, control = groups.get("cam", "events"), groups.get("cam", "control")
    try:
        old = DeviceRegistry(tmp_path).get(DEVICE_B)
        assert old is not None
        fresh = Identity.create(tmp_path / "fresh.mls", b"fresh-b-events")
        request = ReAddRequest(DEVICE_B, "cam", {"events": fresh.key_package()}, "test")
        reader._readd(control, _request(groups, clients[DEVICE_B]["control"], request), request)
        assert reader.readded == 1
        keys = {m.signature_key for m in events.members()}
        assert fresh.signature_key in keys
        assert old.leaves["cam/events"].signature_key not in keys  # the stale leaf is gone
        assert clients[DEVICE_A]["events"].signature_key in keys  # A untouched
        record = DeviceRegistry(tmp_path).get(DEVICE_B)
        assert record is not None
        new = record.leaves["cam/events"]
        assert new.signature_key == fresh.signature_key
        assert new.find(events.members()) == new.index
        assert record.leaves["cam/control"] == old.leaves["cam/control"]
        assert unknown_members(groups, DeviceRegistry(tmp_path)) == {}
        # The answer is the last message queued for the control mailbox; A can read it too.
        queue = groups.outbox.mailbox(control.mailbox)
        last = queue.pending()[-1]
        answer = decode_message(
            clients[DEVICE_A]["control"].process(control.group_id, last.read()).data
        )
        assert isinstance(answer, ReAddAccept) and answer.device_id == DEVICE_B
        (grant,) = answer.camera.groups
        fresh.join(grant.welcome, inviter_signature_key=grant.hub_signature_key)
        fresh.close()
    finally:
        groups.close()
        await reader.relay.close()


async def test_readd_claimed_by_another_member_is_refused(tmp_path: Path) -> None:
    groups, reader, clients = _setup(tmp_path)
    events, control = groups.get("cam", "events"), groups.get("cam", "control")
    try:
        epoch = events.identity.epoch(events.group_id)
        fresh = Identity.create(tmp_path / "evil.mls", b"evil")
        # A (a member of control, but not B's leaf) asks to replace B's events leaf.
        request = ReAddRequest(DEVICE_B, "cam", {"events": fresh.key_package()}, "")
        sender = _request(groups, clients[DEVICE_A]["control"], request)
        reader._readd(control, sender, request)
        # Nor is a request accepted outside the control group.
        reader._readd(events, sender, request)
        assert reader.readded == 0
        assert events.identity.epoch(events.group_id) == epoch
        assert fresh.signature_key not in {m.signature_key for m in events.members()}
        fresh.close()
    finally:
        groups.close()
        await reader.relay.close()


@pytest.mark.parametrize("claimed", ["hub", "other device", "own old leaf"])
async def test_readd_with_a_key_package_claiming_a_members_credential_adds_nothing(
    tmp_path: Path, claimed: str
) -> None:
    """The attack a departing device tries: its fresh events KeyPackage names another member,
    so that a registry keyed by names would keep tracking a leaf that is gone. The core refuses
    the Add; B keeps exactly its old leaf, and a removal later finds it."""
    groups, reader, clients = _setup(tmp_path)
    events, control = groups.get("cam", "events"), groups.get("cam", "control")
    try:
        name = {
            "hub": b"hub",
            "other device": f"{DEVICE_A}-events".encode(),
            "own old leaf": f"{DEVICE_B}-events".encode(),
        }[claimed]
        before = DeviceRegistry(tmp_path).get(DEVICE_B)
        evil = Identity.create(tmp_path / "evil.mls", name)
        request = ReAddRequest(DEVICE_B, "cam", {"events": evil.key_package()}, "")
        reader._readd(control, _request(groups, clients[DEVICE_B]["control"], request), request)
        keys = {m.signature_key for m in events.members()}
        record = DeviceRegistry(tmp_path).get(DEVICE_B)
        assert record is not None and before is not None
        if claimed == "own old leaf":
            # Its old leaf goes first (a separate commit), so the name is free again: this is
            # an ordinary re-add, and the registry follows the new leaf by its key.
            assert reader.readded == 1
            assert record.leaves["cam/events"].signature_key == evil.signature_key
        else:
            # Refused by the core. The stale leaf went first (its own commit), so B is out of
            # events until it asks again with a KeyPackage of its own; nothing of it is left
            # that the registry does not know.
            assert reader.readded == 0
            assert evil.signature_key not in keys
            assert record.leaves["cam/events"].find(events.members()) is None
            assert before.leaves["cam/events"].signature_key not in keys
        # Either way every leaf in the group belongs to a registered device.
        assert unknown_members(groups, DeviceRegistry(tmp_path)) == {}
        evil.close()
    finally:
        groups.close()
        await reader.relay.close()


async def test_no_readd_for_a_device_being_removed(tmp_path: Path) -> None:
    groups, reader, clients = _setup(tmp_path)
    events, control = groups.get("cam", "events"), groups.get("cam", "control")
    try:
        DeviceRegistry(tmp_path).set_status(DEVICE_B, DeviceStatus.REMOVING)
        fresh = Identity.create(tmp_path / "fresh.mls", b"fresh")
        request = ReAddRequest(DEVICE_B, "cam", {"events": fresh.key_package()}, "")
        reader._readd(control, _request(groups, clients[DEVICE_B]["control"], request), request)
        assert reader.readded == 0
        assert fresh.signature_key not in {m.signature_key for m in events.members()}
        fresh.close()
    finally:
        groups.close()
        await reader.relay.close()


async def test_an_add_that_creates_other_than_one_leaf_is_undone(tmp_path: Path) -> None:
    """``add_device`` reads the new leaf from the member lists; if the add commit created two
    (here: a core that adds a second KeyPackage behind the caller's back), both are removed
    again and the caller gets ``PolicyError``, so no leaf is bound wrongly or left behind."""
    from privastead.errors import PolicyError

    groups, reader, _clients = _setup(tmp_path)
    events = groups.get("cam", "events")
    try:
        extra = Identity.create(tmp_path / "extra.mls", b"extra")
        wanted = Identity.create(tmp_path / "wanted.mls", b"wanted")
        real = events.identity

        class Sneaky:
            def __getattr__(self, name: str) -> object:
                return getattr(real, name)

            def add_members(self, gid: bytes, kps: list[bytes], **kw: object) -> object:
                return real.add_members(gid, [*kps, extra.key_package()], **kw)  # type: ignore[arg-type]

        events.identity = Sneaky()  # type: ignore[assignment]
        before = {m.signature_key for m in events.members()}
        epoch = real.epoch(events.group_id)
        with pytest.raises(PolicyError, match="2 leaves"):
            events.add_device(wanted.key_package())
        assert {m.signature_key for m in events.members()} == before
        assert real.epoch(events.group_id) == epoch + 2  # the add, then its undoing
        events.identity = real
        extra.close()
        wanted.close()
    finally:
        groups.close()
        await reader.relay.close()


def test_a_version_1_registry_is_converted_by_leaf_key(tmp_path: Path) -> None:
    """Old ``devices.json`` named leaves by credential; opening the groups converts it. A name
    that matches one member binds that leaf; one that matches none binds nothing."""
    import json

    outbox = Outbox(tmp_path / "outbox", quota_bytes=1 << 24)
    groups = HubGroups(tmp_path, outbox, ["cam"])
    events = groups.get("cam", "events")
    phone = Identity.create(tmp_path / "phone.mls", b"phone-events")
    events.add(phone.key_package())
    groups.close()
    old = {
        DEVICE_A: {
            "name": "phone",
            "paired_at": 1.0,
            "relay_device": "r1",
            "members": {"cam/events": b"phone-events".hex(), "cam/live": b"gone".hex()},
        }
    }
    (tmp_path / "devices.json").write_text(json.dumps(old))
    groups = HubGroups(tmp_path, outbox, ["cam"])
    try:
        device = DeviceRegistry(tmp_path).get(DEVICE_A)
        assert device is not None
        assert (device.name, device.relay_device, device.status) == (
            "phone",
            "r1",
            DeviceStatus.PAIRED,
        )
        assert device.leaves == {"cam/events": Leaf(1, phone.signature_key)}
        assert unknown_members(groups, DeviceRegistry(tmp_path)) == {}
    finally:
        groups.close()
        phone.close()
