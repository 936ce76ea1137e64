from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from privastead.client.clipstore import ClipStore
from privastead.client.eventlog import ClipState, EventLog
from privastead.client.health import HealthMonitor, HubHealth
from privastead.client.receiver import GroupReceiver
from privastead.client.sink import LocalSink
from privastead.clock import FakeClock
from privastead.errors import (
    DecryptionError,
    DuplicateMessageError,
    StaleMessageError,
    StorageError,
    WrongEpochError,
)
from privastead.protocol.codec import Message
from privastead.protocol.messages import ClipFragment, Heartbeat, Notification, ResendRequest
from privastead.protocol.seq import SeqTracker

GID = b"events-group"
EVENT = "e" * 32
CLIP = "c" * 32
HUB, OTHER_DEVICE = 0, 3


@dataclass(frozen=True)
class Received:
    kind: str
    data: bytes
    sender_index: int
    commit: None = None


class FakeCore:
    """Wire format of this fake: ("app", sender, plaintext) tuples by id, or an error to raise."""

    def __init__(self) -> None:
        self.wire: dict[bytes, Received | Exception] = {}

    def send(self, message: Message, sender: int = HUB) -> bytes:
        body = b"m%d" % len(self.wire)
        self.wire[body] = Received("application", message.encode(), sender)
        return body

    def special(self, outcome: Received | Exception) -> bytes:
        body = b"s%d" % len(self.wire)
        self.wire[body] = outcome
        return body

    def process(
        self, group_id: bytes, message: bytes, *, app_data: bytes | None = None
    ) -> Received:
        assert group_id == GID
        outcome = self.wire[message]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def committer(self, group_id: bytes) -> int:
        return HUB


@pytest.fixture
def setup(tmp_path: Path, clock: FakeClock):  # type: ignore[no-untyped-def]
    core = FakeCore()
    events = EventLog(tmp_path / "events.db", clock=clock)
    clips = ClipStore(tmp_path / "clips")
    heartbeats: list[Heartbeat] = []
    sink = LocalSink(clips, events, tmp_path / "thumbs", lambda cam, hb: heartbeats.append(hb))
    health = HealthMonitor(clock, desync_after_failures=2)
    receiver = GroupReceiver(
        core, GID, camera="front", group="events", tracker=SeqTracker(), health=health, sink=sink
    )
    yield core, receiver, events, clips, health, heartbeats
    events.close()


def note(seq: int, thumb: bytes = b"\xff\xd8thumb") -> Notification:
    return Notification("front", EVENT, 1_700_000_000.0, 0.7, (), seq, thumb)


def frag(index: int, seq: int, last: int = 1) -> ClipFragment:
    return ClipFragment(CLIP, EVENT, index, index == last, index == 0, seq, b"frag%d" % index)


def test_notification_and_clip_are_stored_then_acknowledged(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    core, receiver, events, clips, _health, _ = setup
    out = receiver.handle(core.send(note(0)))
    assert out.ack and out.note == "stored" and out.missing == ()
    record = events.get(EVENT)
    assert record is not None and record.thumbnail_path is not None
    assert record.thumbnail_path.read_bytes() == b"\xff\xd8thumb"
    assert receiver.handle(core.send(frag(0, 1))).ack
    assert events.get(EVENT).clip_state is ClipState.PARTIAL  # type: ignore[union-attr]
    receiver.handle(core.send(frag(1, 2)))
    record = events.get(EVENT)
    assert record is not None and record.clip_state is ClipState.COMPLETE
    assert (
        record.clip_path == clips.clip_path(CLIP) and record.clip_path.read_bytes() == b"frag0frag1"
    )


def test_gaps_are_reported_and_duplicates_dropped(setup) -> None:  # type: ignore[no-untyped-def]
    core, receiver, *_ = setup
    receiver.handle(core.send(note(0)))
    out = receiver.handle(core.send(note(3)))
    assert out.ack and out.missing == ((1, 2),)
    replay = receiver.handle(core.send(note(3)))  # the same seq again, freshly encrypted
    assert replay.ack and replay.note == "duplicate sequence number"
    assert receiver.tracker.missing() == ((1, 2),)


def test_only_the_hub_may_send_application_messages(setup) -> None:  # type: ignore[no-untyped-def]
    core, receiver, events, *_ = setup
    forged = note(0)
    out = receiver.handle(core.send(forged, sender=OTHER_DEVICE))
    assert out.ack and out.note == "from another device: not for us"
    assert events.get(EVENT) is None
    assert receiver.tracker.next_seq == 0


def test_messages_of_the_wrong_group_are_refused(setup) -> None:  # type: ignore[no-untyped-def]
    core, receiver, *_ = setup
    assert receiver.handle(core.send(Heartbeat(1.0, 0, "v", {}, {}, {}))).note == "wrong group"
    assert (
        receiver.handle(core.send(ResendRequest("front", "events", ((1, 2),)))).note
        == "wrong group"
    )


def test_crypto_outcomes_decide_the_ack(setup) -> None:  # type: ignore[no-untyped-def]
    core, receiver, _events, _clips, health, _ = setup
    future = receiver.handle(core.special(WrongEpochError("later epoch")))
    assert not future.ack
    assert receiver.handle(core.special(DuplicateMessageError("dup"))).ack
    assert receiver.handle(core.special(StaleMessageError("old"))).ack
    assert receiver.handle(core.special(Received("commit", b"", HUB))).note == "commit applied"
    assert receiver.handle(core.special(DecryptionError())).note == "undecryptable"
    assert health.report().state is HubHealth.OK
    receiver.handle(core.special(DecryptionError()))
    assert health.report().state is HubHealth.DESYNC
    receiver.handle(core.send(note(0)))
    assert health.report().state is HubHealth.OK


def test_spliced_fragment_is_refused_and_storage_failure_is_not_acknowledged(setup) -> None:  # type: ignore[no-untyped-def]
    core, receiver, *_ = setup
    receiver.handle(core.send(frag(0, 0, last=3)))
    spliced = ClipFragment(CLIP, "f" * 32, 1, False, False, 1, b"evil")
    assert receiver.handle(core.send(spliced)).note == "refused"

    class FullDisk:
        def deliver(self, camera: str, message: Message) -> None:
            raise StorageError("disk full")

    receiver._sink = FullDisk()
    with pytest.raises(StorageError):
        receiver.handle(core.send(frag(1, 2, last=3)))
    assert not receiver.tracker.seen(2)  # will be stored when the relay redelivers it


def test_heartbeats_go_to_the_callback(tmp_path: Path, clock: FakeClock) -> None:
    core = FakeCore()
    beats: list[tuple[str, Heartbeat]] = []
    with EventLog(tmp_path / "e.db", clock=clock) as events:
        sink = LocalSink(
            ClipStore(tmp_path / "c"), events, tmp_path / "t", lambda c, hb: beats.append((c, hb))
        )
        receiver = GroupReceiver(
            core,
            GID,
            camera="front",
            group="control",
            tracker=SeqTracker(),
            health=HealthMonitor(clock),
            sink=sink,
        )
        beat = Heartbeat(1.0, 0, "v", {}, {}, {})
        assert receiver.handle(core.send(beat)).note == "stored"
    assert beats == [("front", beat)]
