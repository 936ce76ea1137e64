"""The hub's control reader (hub/control/reader.py) against a real relay process, with real MLS
clients:
client update proposals are folded into commits (post-compromise security: a copy of a
client's state taken before its update opens nothing afterwards), resend requests are
answered within a per-device budget and with ``ResendGone`` for what the hub no longer holds,
and clock probes reach the heartbeats. The hub's objects run in this process; the clients
talk to the relay with their own device tokens, as `privastead-app` does."""

from __future__ import annotations

import secrets
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "relay"))

from relay_harness import RelayProcess, make_process

from privastead.clock import FakeClock, SystemClock
from privastead.crypto import Identity
from privastead.errors import CryptoError
from privastead.hub.control.reader import ControlReader
from privastead.hub.delivery.outbox import Outbox
from privastead.hub.delivery.uploader import Uploader
from privastead.hub.state.groups import HubGroup, HubGroups
from privastead.protocol.codec import Message, decode_message
from privastead.protocol.health_messages import ClockProbe, ResendGone
from privastead.protocol.messages import Heartbeat, ResendRequest
from privastead.relay.client import RelayClient

pytestmark = pytest.mark.slow


@dataclass
class Phone:
    """One client device: an identity per group and its own relay token."""

    idents: dict[str, Identity]
    relay: RelayClient
    cursors: dict[str, int]

    async def read(self, group: HubGroup) -> list[object]:
        """Process everything new in ``group``'s mailbox; the decoded application messages."""
        got: list[object] = []
        page = await self.relay.list_messages(group.mailbox, after=self.cursors[group.group])
        for info in page.messages:
            self.cursors[group.group] = info.seq
            body = await self.relay.body_of(group.mailbox, info)
            try:
                r = self.idents[group.group].process(group.group_id, body)
            except CryptoError:
                continue  # its own upload, or another client's request
            if r.kind == "application":
                got.append(decode_message(r.data))
        return got


@dataclass
class Home:
    relay: RelayProcess
    groups: HubGroups
    outbox: Outbox
    hub_relay: RelayClient
    uploader: Uploader
    reader: ControlReader
    phones: list[Phone]

    def group(self, name: str) -> HubGroup:
        return self.groups.get("cam", name)

    async def drain(self) -> None:
        for group in self.groups:
            await self.uploader.drain(group.mailbox)


@pytest.fixture
async def home(tmp_path: Path) -> AsyncIterator[Home]:
    relay = make_process(tmp_path / "relay")
    outbox = Outbox(tmp_path / "outbox", quota_bytes=1 << 26, sent_retention_bytes=1 << 20)
    groups = HubGroups(tmp_path, outbox, ["cam"])
    hub_relay = RelayClient(relay.url, relay.owner_token)
    phones: list[Phone] = []
    try:
        for group in groups:
            await hub_relay.create_mailbox(group.mailbox)
            await hub_relay.register(group.mailbox)
        for n in range(2):
            device = await hub_relay.create_device()
            client = RelayClient(relay.url, device.token)
            idents = {}
            for group in groups:
                await client.register(group.mailbox)
                ident = Identity.create(tmp_path / f"p{n}-{group.group}.mls", f"p{n}".encode())
                added = group.add_device(ident.key_package())
                ident.join(added.result.welcome, inviter_signature_key=group.identity.signature_key)
                for other in phones:
                    other.idents[group.group].process(group.group_id, added.result.commit)
                idents[group.group] = ident
            phones.append(Phone(idents, client, {g.group: 0 for g in groups}))
        uploader = Uploader(outbox, hub_relay, clock=SystemClock())
        reader = ControlReader(groups, outbox, hub_relay, clock=FakeClock())
        h = Home(relay, groups, outbox, hub_relay, uploader, reader, phones)
        await h.drain()
        for phone in phones:  # past their own adds
            for group in groups:
                page = await phone.relay.list_messages(group.mailbox)
                phone.cursors[group.group] = page.last_seq
        yield h
    finally:
        for phone in phones:
            await phone.relay.close()
            for ident in phone.idents.values():
                ident.close()
        await hub_relay.close()
        groups.close()
        relay.kill9()


async def _ask(phone: Phone, control: HubGroup, message: Message) -> None:
    """``phone`` sends ``message`` in the control group, as `privastead-app` does."""
    body = phone.idents["control"].encrypt(control.group_id, message.encode())
    await phone.relay.upload(control.mailbox, body, secrets.token_hex(16))


def _beat(seq: int) -> Heartbeat:
    return Heartbeat(1.0, seq, "test", {}, {}, {})


async def test_a_client_update_is_folded_and_locks_out_a_stolen_copy_of_its_state(
    home: Home, tmp_path: Path
) -> None:
    victim, other = home.phones
    for name in ("control", "events"):
        group = home.group(name)
        state = tmp_path / f"p0-{name}.mls"
        victim.idents[name].close()
        stolen = tmp_path / f"stolen-{name}.mls"
        shutil.copy2(state, stolen)  # a thief copies the victim's state
        victim.idents[name] = Identity.open(state)
        before = group.identity.epoch(group.group_id)
        proposal = victim.idents[name].propose_update(group.group_id)
        await victim.relay.upload(group.mailbox, proposal, secrets.token_hex(16))
        assert await home.reader.poll() >= 1
        assert home.reader.proposals_folded >= 1
        assert group.identity.epoch(group.group_id) == before + 1  # the commit folding it
        group.sender.send(_beat)
        await home.drain()
        for phone in home.phones:  # both follow the commit and read the next message
            assert any(isinstance(m, Heartbeat) for m in await phone.read(group)), name
        # The stolen copy follows the commit too (it holds the old leaf key and sees the same
        # mailbox), but the commit encrypted the new path secrets to the victim's new leaf:
        # nothing sent after it opens.
        with Identity.open(stolen) as thief:
            opened = 0
            page = await home.hub_relay.list_messages(group.mailbox)
            for info in page.messages:
                body = await home.hub_relay.body_of(group.mailbox, info)
                try:
                    r = thief.process(group.group_id, body)
                except CryptoError:
                    continue
                opened += r.kind == "application" and r.epoch > before
            assert opened == 0, name
    assert other.idents["control"].epoch(home.group("control").group_id) == (
        home.group("control").identity.epoch(home.group("control").group_id)
    )


async def test_a_proposal_is_folded_before_anything_else_is_encrypted_in_its_group(
    home: Home,
) -> None:
    """A clip fragment queued on the events group's worker while the hub reads a client's
    update proposal must find the proposal folded already: MLS refuses to encrypt while a
    proposal is pending (it once failed a fragment under load, cutting the clip)."""
    phone = home.phones[0]
    group = home.group("events")
    proposal = phone.idents["events"].propose_update(group.group_id)
    await phone.relay.upload(group.mailbox, proposal, secrets.token_hex(16))
    relay = home.reader.relay
    ack = relay.ack
    sent: list[object] = []

    async def ack_after_sending(mailbox: str, cursor: int) -> None:
        # Between reading a page and acknowledging it the worker runs whatever else is queued.
        sent.append(await group.worker.call(group.sender.send, _beat))
        await ack(mailbox, cursor)

    relay.ack = ack_after_sending  # type: ignore[method-assign]
    try:
        assert await home.reader.poll() >= 1
    finally:
        relay.ack = ack  # type: ignore[method-assign]
    assert sent and home.reader.proposals_folded >= 1


async def test_resends_are_budgeted_per_device_and_gone_seqs_are_told(home: Home) -> None:
    events, control = home.group("events"), home.group("control")
    for _ in range(4):
        events.sender.send(_beat)  # (any app message will do for the archive)
    await home.drain()
    asker = home.phones[0]
    await asker.read(events)
    home.reader.budget.capacity = 3  # a tiny budget, to see it hold
    home.reader.budget._buckets.clear()
    home.reader.budget.rate = 0.0
    request = ResendRequest("cam", "events", ((0, 3),))
    await asker.relay.upload(
        control.mailbox,
        asker.idents["control"].encrypt(control.group_id, request.encode()),
        "1" * 32,
    )
    await home.reader.poll()
    assert home.reader.resent == 3 and home.reader.resends_refused == 1
    # Another device has its own budget.
    other = home.phones[1]
    await other.relay.upload(
        control.mailbox,
        other.idents["control"].encrypt(control.group_id, request.encode()),
        "2" * 32,
    )
    await home.reader.poll()
    assert home.reader.resent == 6
    # What the archive no longer holds is answered as gone, not left hanging.
    queue = home.outbox.mailbox(events.mailbox)
    for app_seq in range(0, 3):
        found = queue.archived_app(app_seq)
        assert found is not None
        (queue._dir / "sent" / f"{found[0]:020d}.msg").unlink()  # as retention would
    home.reader.budget.capacity, home.reader.budget.rate = 100, 1.0
    home.reader.budget._buckets.clear()
    await _ask(asker, control, ResendRequest("cam", "events", ((0, 9),)))
    await home.reader.poll()
    await home.drain()
    answers = [m for m in await asker.read(control) if isinstance(m, ResendGone)]
    assert answers and answers[-1].group == "events"
    gone = {s for a, b in answers[-1].ranges for s in range(a, b + 1)}
    assert {0, 1, 2} <= gone and not gone & {4, 5, 6, 7, 8, 9}  # never names unsent seqs


async def test_a_clock_probe_reaches_the_heartbeats(home: Home) -> None:
    control = home.group("control")
    probes: list[tuple[str, str]] = []
    home.reader.on_probe = lambda camera, nonce: probes.append((camera, nonce))
    phone = home.phones[0]
    await _ask(phone, control, ClockProbe("cam", "cd" * 16))
    await home.reader.poll()
    assert probes == [("cam", "cd" * 16)]
