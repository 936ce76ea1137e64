"""kill -9 of the hub while a batch of clip fragments is between its durable writes and its
relay uploads: after the restart's recovery (the sender's and the clip journal's, as
``Delivery.prepare`` runs them) every message reaches the client exactly once, in order, with
consecutive app seqs, and the clip is ended.

Real parts: a relay process on loopback, the hub's MLS groups (Rust core and its state files),
outbox, clip journal and recorder file in a child process that SIGKILLs itself at the chosen
point, and a client device decrypting what the relay holds. The crash points: after the
batch's journal write (nothing encrypted), after its one MLS state write with 0 or some of
its outbox entries written, and with the whole batch in the outbox but not uploaded."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "relay"))
sys.path.insert(0, str(Path(__file__).parent))

from batch_crash_child import CAMERA, EVENT, FRAGMENTS, pieces
from relay_harness import RelayProcess, make_process

from privastead.clock import SystemClock
from privastead.crypto import Identity
from privastead.errors import CryptoError
from privastead.hub.delivery.clip_journal import ClipJournal, end_interrupted_clips
from privastead.hub.delivery.delivery import send_now
from privastead.hub.delivery.outbox import Outbox
from privastead.hub.delivery.uploader import Uploader
from privastead.hub.state.groups import HubGroups
from privastead.protocol.codec import Message, decode_message
from privastead.protocol.messages import ClipEnd, ClipFragment, Notification
from privastead.relay.client import RelayClient

pytestmark = pytest.mark.slow

CHILD = Path(__file__).with_name("batch_crash_child.py")


@dataclass
class Home:
    root: Path
    relay: RelayProcess
    phone: Identity
    phone_relay: RelayClient
    cursor: int
    mailbox: str  # the events group's
    group_id: bytes


@pytest.fixture
async def home(tmp_path: Path) -> AsyncIterator[Home]:
    relay = make_process(tmp_path / "relay")
    hub = RelayClient(relay.url, relay.owner_token)
    phone_relay: RelayClient | None = None
    phone: Identity | None = None
    try:
        outbox = Outbox(tmp_path / "outbox", quota_bytes=1 << 26)
        groups = HubGroups(tmp_path, outbox, [CAMERA])
        events = groups.get(CAMERA, "events")
        for group in groups:
            await hub.create_mailbox(group.mailbox)
            await hub.register(group.mailbox)
        device = await hub.create_device()
        phone_relay = RelayClient(relay.url, device.token)
        await phone_relay.register(events.mailbox)
        phone = Identity.create(tmp_path / "phone-events.mls", b"phone")
        added = events.add_device(phone.key_package())
        phone.join(added.result.welcome, inviter_signature_key=events.identity.signature_key)
        await Uploader(outbox, hub, clock=SystemClock()).drain(events.mailbox)
        cursor = (await phone_relay.list_messages(events.mailbox)).last_seq  # past its add
        groups.close()  # the hub process opens them now
        yield Home(tmp_path, relay, phone, phone_relay, cursor, events.mailbox, events.group_id)
    finally:
        if phone is not None:
            phone.close()
        if phone_relay is not None:
            await phone_relay.close()
        await hub.close()
        relay.kill9()


def run_child(root: Path, point: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, str(CHILD), str(root), point],
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    return proc.stdout.decode().split()


async def restart_and_upload(home: Home) -> None:
    """What a restarted hub does before its cameras run: recover, end cut clips, upload."""
    outbox = Outbox(home.root / "outbox", quota_bytes=1 << 26)
    groups = HubGroups(home.root, outbox, [CAMERA])
    journal = ClipJournal(home.root / "open-clips", home.root / "clips")
    hub = RelayClient(home.relay.url, home.relay.owner_token)
    try:
        for group in groups:
            replay = functools.partial(journal.replay, group.camera)
            group.sender.recover(replay if group.group == "events" else lambda _seq: None)
        end_interrupted_clips(journal, groups, send_now)
        uploader = Uploader(outbox, hub, clock=SystemClock())
        for group in groups:
            await uploader.drain(group.mailbox)
    finally:
        await hub.close()
        groups.close()


async def received(home: Home) -> list[Message]:
    page = await home.phone_relay.list_messages(home.mailbox, after=home.cursor)
    got: list[Message] = []
    for info in page.messages:
        body = await home.phone_relay.body_of(home.mailbox, info)
        try:
            r = home.phone.process(home.group_id, body)
        except CryptoError as e:
            raise AssertionError(f"relay message {info.seq} did not decrypt: {e}") from None
        if r.kind == "application":
            got.append(decode_message(r.data))
    return got


@pytest.mark.parametrize("point", ["journal", "append-0", "append-3", "durable"])
async def test_kill_9_inside_a_batch_delivers_every_message_once_in_order(
    home: Home, point: str
) -> None:
    out = run_child(home.root, point)
    batches = [int(n) for tag, n in zip(out[::2], out[1::2], strict=True) if tag == "batch"]
    assert batches[-1] == FRAGMENTS - 1, out  # the queued fragments went as one batch
    await restart_and_upload(home)
    messages = await received(home)

    seqs = [getattr(m, "seq", None) for m in messages]
    assert seqs == list(range(len(messages))), seqs  # consecutive: nothing lost or doubled
    assert isinstance(messages[0], Notification) and messages[0].event_id == EVENT
    fragments = [m for m in messages if isinstance(m, ClipFragment)]
    assert [f.index for f in fragments] == list(range(FRAGMENTS))  # each once, in order
    assert [f.data for f in fragments] == pieces()
    assert len({f.clip_id for f in fragments}) == 1
    assert isinstance(messages[-1], ClipEnd)  # the clip a crash cut is ended for the client
    assert messages[-1].fragments == FRAGMENTS
    assert len(messages) == FRAGMENTS + 2
    assert not list((home.root / "open-clips").iterdir())  # the journal is settled
