"""The bounded queue of a camera's clip fragments (``ClipDelivery``): while the events worker
is held up, the bytes queued in memory never pass the budget, and every fragment still goes
out, in order, byte for byte, with the last one ``final`` (the ones over the budget are read
back from the recording). A fragment whose bytes vanished from the recording cuts the clip
there, logged and counted, and nothing is sent out of order.

Real parts: the hub's MLS groups (Rust core), its outbox on disk, the clip journal and a
recorder's ``.mp4.part`` file; the sender is wrapped only to read what it encrypts."""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from privastead.hub.delivery.clip_delivery import ClipDelivery
from privastead.hub.delivery.clip_journal import ClipJournal
from privastead.hub.delivery.outbox import Outbox
from privastead.hub.delivery.sender import Sent
from privastead.hub.state.groups import HubGroup, HubGroups
from privastead.protocol.codec import Message
from privastead.protocol.messages import ClipFragment

CAMERA = "porch"
EVENT = "1234abcd5678ef901234abcd5678ef90"


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def pieces(count: int, size: int) -> list[bytes]:
    """An init segment and ``count - 1`` fMP4-shaped fragments of about ``size`` bytes."""
    init = box(b"ftyp", b"isom") + box(b"moov", b"movie")
    return [init] + [
        box(b"moof", b"m%d" % i) + box(b"mdat", bytes([i]) * size) for i in range(1, count)
    ]


class Setup:
    def __init__(self, root: Path, queue_bytes: int) -> None:
        self.outbox = Outbox(root / "outbox", quota_bytes=1 << 26)
        self.groups = HubGroups(root, self.outbox, [CAMERA])
        self.clips = root / "clips"
        day = self.clips / "2026-01-01"
        day.mkdir(parents=True)
        self.part = day / f"{CAMERA}-120000-{EVENT[:8]}.mp4.part"
        self.journal = ClipJournal(root / "open-clips", self.clips)
        self.delivery = ClipDelivery(self.groups, self.journal, queue_bytes=queue_bytes)
        self.events: HubGroup = self.groups.get(CAMERA, "events")
        self.sent: list[Message] = []
        self.batches: list[int] = []  # messages per send_batch call
        send_batch = self.events.sender.send_batch

        def spy(builds: Sequence[Callable[[int], Message]]) -> list[Sent]:
            def recorded(build: Callable[[int], Message]) -> Callable[[int], Message]:
                def built(seq: int) -> Message:
                    message = build(seq)
                    self.sent.append(message)
                    return message

                return built

            self.batches.append(len(builds))
            return send_batch([recorded(b) for b in builds])

        self.events.sender.send_batch = spy  # type: ignore[method-assign]

    def record(self, piece: bytes) -> None:
        """What the recorder does: append (and flush) the piece, then hand it over."""
        with self.part.open("ab") as f:
            f.write(piece)

    def hold_worker(self) -> threading.Event:
        release = threading.Event()
        self.events.worker.submit(release.wait)
        return release

    def fragments(self) -> list[ClipFragment]:
        return [m for m in self.sent if isinstance(m, ClipFragment)]

    def close(self) -> None:
        self.groups.close()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path, queue_bytes=3000)
    yield s
    s.close()


def test_a_held_up_worker_keeps_the_budget_and_every_fragment_goes_out_in_order(
    setup: Setup,
) -> None:
    clip = pieces(12, 1000)
    release = setup.hold_worker()
    budget = setup.delivery.budget(CAMERA)
    for index, piece in enumerate(clip):
        setup.record(piece)
        setup.delivery.on_fragment(CAMERA, EVENT, index, piece, index == 0)
        assert budget.used <= budget.limit
    assert setup.delivery.spilled_fragments > 0  # the queue was full: bytes left the heap
    final_path = setup.part.with_name(setup.part.name.removesuffix(".part"))
    setup.part.replace(final_path)  # the recorder finished the file meanwhile
    setup.delivery.on_clip_end(CAMERA, EVENT, final_path)
    release.set()
    setup.events.worker.drain()
    sent = setup.fragments()
    assert [f.index for f in sent] == list(range(len(clip)))
    assert [f.data for f in sent] == clip
    assert [f.final for f in sent] == [False] * (len(clip) - 1) + [True]
    assert len({f.clip_id for f in sent}) == 1
    assert budget.used == 0
    assert setup.delivery.unreadable_fragments == 0
    assert not final_path.exists()  # every ciphertext durable: the plaintext is gone
    assert not list(setup.journal.directory.iterdir())


def test_under_the_budget_nothing_is_read_back(tmp_path: Path) -> None:
    s = Setup(tmp_path, queue_bytes=1 << 20)
    try:
        clip = pieces(5, 500)
        for index, piece in enumerate(clip):
            s.delivery.on_fragment(CAMERA, EVENT, index, piece, index == 0)  # no file at all
        s.delivery.on_clip_end(CAMERA, EVENT, s.part)
        s.events.worker.drain()
        assert [f.data for f in s.fragments()] == clip
        assert s.delivery.spilled_fragments == 0
    finally:
        s.close()


def test_a_spilled_fragment_missing_from_the_recording_cuts_the_clip_loudly(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    clip = pieces(8, 1000)
    release = setup.hold_worker()
    for index, piece in enumerate(clip):
        setup.record(piece)
        setup.delivery.on_fragment(CAMERA, EVENT, index, piece, index == 0)
    spilled = setup.delivery.spilled_fragments
    assert spilled > 0
    with setup.part.open("r+b") as f:  # the recording lost its tail (a disk error, a cleanup)
        f.truncate(sum(map(len, clip[:4])))
    setup.delivery.on_clip_end(CAMERA, EVENT, setup.part)
    release.set()
    setup.events.worker.drain()
    sent = setup.fragments()
    indexes = [f.index for f in sent]
    assert indexes == list(range(len(indexes)))  # a prefix, in order, no gap
    assert [f.data for f in sent] == clip[: len(sent)]
    assert not any(f.final for f in sent)  # never claims to be whole
    assert setup.delivery.unreadable_fragments == 1
    assert "no longer in the recording" in caplog.text
    assert setup.part.exists()  # not sent whole: the plaintext stays for the owner
