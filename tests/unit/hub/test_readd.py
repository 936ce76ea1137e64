"""The hub's handling of ``ReAddRequest`` (hub/control.py): authenticated by the MLS sender.

Real MLS groups (hub and client identities) and a real ``devices.json``; no relay is needed
because the re-add only commits and queues its answer in the outbox.
"""

from __future__ import annotations

from pathlib import Path

from privastead.crypto import Identity
from privastead.hub.control import ControlReader
from privastead.hub.groups import DeviceRegistry, HubGroups
from privastead.hub.outbox import Outbox
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
        members, idents = {}, {}
        for name in ("events", "control"):
            group = groups.get("cam", name)
            ident = Identity.create(tmp / f"{device}-{name}.mls", f"{device}-{name}".encode())
            result = group.add(ident.key_package())
            ident.join(result.welcome, inviter_signature_key=group.identity.signature_key)
            # Everyone already in the group processes the add commit.
            for other in clients.values():
                other[name].process(group.group_id, result.commit)
            members[group.key] = f"{device}-{name}".encode().hex()
            idents[name] = ident
        clients[device] = idents
        registry.add(device, device[:2], members, paired_at=0.0, relay_device="r")
    reader = ControlReader(groups, outbox, RelayClient("http://127.0.0.1:9", "t"))
    return groups, reader, clients


async def test_readd_replaces_only_that_devices_leaf_and_answers_in_control(tmp_path: Path) -> None:
    groups, reader, clients = _setup(tmp_path)
    events, control = groups.get("cam", "events"), groups.get("cam", "control")
    try:
        fresh = Identity.create(tmp_path / "fresh.mls", b"fresh-b-events")
        request = ReAddRequest(DEVICE_B, "cam", {"events": fresh.key_package()}, "test")
        body = clients[DEVICE_B]["control"].encrypt(control.group_id, request.encode())
        received = control.identity.process(control.group_id, body)
        reader._readd(control, received.sender, request)
        assert reader.readded == 1
        names = {m.identity for m in events.identity.members(events.group_id)}
        assert b"fresh-b-events" in names and f"{DEVICE_B}-events".encode() not in names
        assert f"{DEVICE_A}-events".encode() in names  # A untouched
        record = DeviceRegistry(tmp_path).get(DEVICE_B)
        assert record is not None
        assert record["members"]["cam/events"] == b"fresh-b-events".hex()
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
        body = clients[DEVICE_A]["control"].encrypt(control.group_id, request.encode())
        received = control.identity.process(control.group_id, body)
        reader._readd(control, received.sender, request)
        # Nor is a request accepted outside the control group.
        reader._readd(events, received.sender, request)
        assert reader.readded == 0
        assert events.identity.epoch(events.group_id) == epoch
        names = {m.identity for m in events.identity.members(events.group_id)}
        assert b"evil" not in names and f"{DEVICE_B}-events".encode() in names
        fresh.close()
    finally:
        groups.close()
        await reader.relay.close()
