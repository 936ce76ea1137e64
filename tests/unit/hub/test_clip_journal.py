"""The journal of open clips: after a crash mid-recording, a restarted hub sends what clients
are still owed (the held fragment and any later piece on disk), then ends the clip, and leaves
no plaintext behind."""

from __future__ import annotations

import json
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from privastead.hub.delivery.clip_journal import ClipJournal, end_interrupted_clips
from privastead.hub.delivery.sender import Sent
from privastead.protocol.codec import Message
from privastead.protocol.messages import ClipEnd, ClipFragment

CAMERA = "door"
EVENT = "00000000000000001234abcd5678ef90"
RECORDER_CLIP = "1234abcd5678ef90"
CLIP = "c" * 32


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def pieces(count: int) -> list[bytes]:
    """An init segment and ``count - 1`` fragments, shaped like fMP4 (what BoxSplitter cuts)."""
    init = box(b"ftyp", b"isom") + box(b"moov", b"movie")
    return [init] + [
        box(b"moof", b"m%d" % i) + box(b"mdat", bytes([i]) * 50) for i in range(1, count)
    ]


@dataclass
class FakeSender:
    next_app_seq: int = 0


@dataclass
class FakeGroup:
    camera: str = CAMERA
    sender: FakeSender = field(default_factory=FakeSender)


@dataclass
class FakeGroups:
    group: FakeGroup = field(default_factory=FakeGroup)
    sent: list[Message] = field(default_factory=list)

    def get(self, camera: str, name: str) -> FakeGroup:
        assert (camera, name) == (CAMERA, "events")
        return self.group

    def send(self, group: FakeGroup, build: Callable[[int], Message]) -> Sent:
        message = build(group.sender.next_app_seq)
        group.sender.next_app_seq += 1
        self.sent.append(message)
        return Sent(group.sender.next_app_seq - 1, True)


class Recording:
    """The recorder's part file and a live delivery journalling what it sends."""

    def __init__(self, tmp_path: Path, keep: bool = False) -> None:
        self.clips = tmp_path / "clips"
        (self.clips / "2026-01-01").mkdir(parents=True)
        self.part = self.clips / "2026-01-01" / f"{CAMERA}-120000-{RECORDER_CLIP[:8]}.mp4.part"
        self.journal_dir = tmp_path / "open-clips"
        self.journal = ClipJournal(self.journal_dir, self.clips, keep_plaintext=keep)
        self.groups = FakeGroups()
        self.pieces = pieces(6)

    def record(self, count: int) -> None:
        self.part.write_bytes(b"".join(self.pieces[:count]))

    def start(self) -> None:
        self.record(1)
        self.journal.open(CAMERA, CLIP, EVENT, RECORDER_CLIP, self.pieces[0])

    def send(self, index: int, *, encrypt: bool = True) -> None:
        seq = self.groups.group.sender.next_app_seq
        self.journal.sending(CAMERA, CLIP, index, seq, len(self.pieces[index]))
        if encrypt:
            data = self.pieces[index]
            self.groups.send(
                self.groups.group,
                lambda s: ClipFragment(CLIP, EVENT, index, False, index == 0, s, data),
            )

    def restart(self) -> list[Message]:
        journal = ClipJournal(
            self.journal_dir, self.clips, keep_plaintext=self.journal.keep_plaintext
        )
        before = len(self.groups.sent)
        end_interrupted_clips(journal, self.groups, self.groups.send)  # type: ignore[arg-type]
        return self.groups.sent[before:]


def fragments_of(messages: list[Message]) -> list[tuple[int, bytes]]:
    return [(m.index, m.data) for m in messages if isinstance(m, ClipFragment)]


def test_the_held_fragment_and_later_pieces_are_sent_then_the_clip_is_ended(
    tmp_path: Path,
) -> None:
    rec = Recording(tmp_path)
    rec.start()
    rec.record(4)  # pieces 0..3 on disk: 0 and 1 sent, 2 held, 3 just written
    rec.send(0)
    rec.send(1)
    journal_file = next(rec.journal_dir.iterdir())
    assert stat.S_IMODE(journal_file.stat().st_mode) == 0o600
    owed = rec.restart()
    assert fragments_of(owed) == [(2, rec.pieces[2]), (3, rec.pieces[3])]
    assert not any(m.final for m in owed if isinstance(m, ClipFragment))
    end = owed[-1]
    assert isinstance(end, ClipEnd) and end.fragments == 4 and end.reason == "hub_restarted"
    assert end.clip_id == CLIP and end.event_id == EVENT
    assert not rec.part.exists() and list(rec.clips.rglob("*.mp4*")) == []  # no plaintext
    assert list(rec.journal_dir.iterdir()) == []
    assert rec.restart() == []  # settled: a second restart owes nothing


def test_a_fragment_journalled_but_not_encrypted_is_sent_once(tmp_path: Path) -> None:
    rec = Recording(tmp_path)
    rec.start()
    rec.record(3)
    rec.send(0)
    rec.send(1, encrypt=False)  # killed between the journal write and the encryption
    owed = rec.restart()
    assert [i for i, _ in fragments_of(owed)] == [1, 2]
    assert isinstance(owed[-1], ClipEnd) and owed[-1].fragments == 3


def test_a_torn_last_piece_is_left_out(tmp_path: Path) -> None:
    rec = Recording(tmp_path)
    rec.start()
    rec.record(3)
    with rec.part.open("ab") as f:
        f.write(rec.pieces[3][:20])  # the recorder was killed mid-write
    rec.send(0)
    owed = rec.restart()
    assert [i for i, _ in fragments_of(owed)] == [1, 2]
    assert isinstance(owed[-1], ClipEnd) and owed[-1].fragments == 3


def test_a_finished_recording_goes_out_whole_with_its_final_fragment(tmp_path: Path) -> None:
    rec = Recording(tmp_path, keep=True)
    rec.start()
    rec.record(5)
    rec.send(0)
    rec.send(1)
    rec.part.replace(rec.part.with_suffix(""))  # the recorder closed the clip, then the crash
    owed = rec.restart()
    frags = [m for m in owed if isinstance(m, ClipFragment)]
    assert [(f.index, f.final) for f in frags] == [(2, False), (3, False), (4, True)]
    assert not any(isinstance(m, ClipEnd) for m in owed)
    assert rec.part.with_suffix("").read_bytes() == b"".join(rec.pieces[:5])  # plaintext kept


def test_kept_plaintext_becomes_a_playable_mp4(tmp_path: Path) -> None:
    rec = Recording(tmp_path, keep=True)
    rec.start()
    rec.record(3)
    rec.send(0)
    rec.restart()
    assert rec.part.with_suffix("").read_bytes() == b"".join(rec.pieces[:3])
    assert not rec.part.exists()


def test_replay_rebuilds_the_journalled_fragment_for_the_sender(tmp_path: Path) -> None:
    rec = Recording(tmp_path)
    rec.start()
    rec.record(3)
    rec.send(0)
    rec.send(1)
    journal = ClipJournal(rec.journal_dir, rec.clips)
    again = journal.replay(CAMERA, 1)
    assert isinstance(again, ClipFragment) and (again.index, again.data) == (1, rec.pieces[1])
    assert again.seq == 1 and not again.final
    assert journal.replay(CAMERA, 0) is None  # only the message being sent can be missing
    assert journal.replay("garden", 1) is None


def test_nothing_is_sent_for_a_clip_with_no_fragment_out_and_no_frame(tmp_path: Path) -> None:
    rec = Recording(tmp_path)
    rec.start()  # killed before the first fragment went out; only the init is on disk
    assert rec.restart() == []
    assert not rec.part.exists() and list(rec.journal_dir.iterdir()) == []


def test_orphaned_plaintext_is_deleted_unless_kept(tmp_path: Path) -> None:
    rec = Recording(tmp_path)
    rec.record(2)  # a recording whose init never reached the delivery
    rec.restart()
    assert not rec.part.exists()
    kept = Recording(tmp_path / "kept", keep=True)
    kept.record(2)
    kept.restart()
    assert kept.part.exists()


@pytest.mark.parametrize("final", [True, False])
def test_a_clip_whose_last_message_went_out_is_only_cleaned_up(tmp_path: Path, final: bool) -> None:
    rec = Recording(tmp_path)
    rec.start()
    rec.record(2)
    rec.send(0)
    seq = rec.groups.group.sender.next_app_seq
    if final:
        rec.journal.sending(CAMERA, CLIP, 1, seq, len(rec.pieces[1]), final=True)
    else:
        rec.journal.sending(CAMERA, CLIP, 2, seq, 0, end=True)
    rec.groups.group.sender.next_app_seq += 1  # ... and was encrypted
    assert rec.restart() == []
    assert not rec.part.exists()


@pytest.mark.parametrize("encrypted", [False, True])
def test_a_journal_of_an_older_hub_with_one_message_in_flight_is_read(
    tmp_path: Path, encrypted: bool
) -> None:
    """Journals written before batches hold ``sending`` as one object (or null): a hub
    upgraded across a crash still resumes those clips where they stopped."""
    rec = Recording(tmp_path)
    rec.start()
    rec.record(4)
    rec.send(0)
    rec.send(1, encrypt=encrypted)
    path = next(rec.journal_dir.iterdir())
    record = json.loads(path.read_bytes())
    (record["sending"],) = record["sending"]  # the older form: the one object
    path.write_bytes(json.dumps(record).encode())
    owed = rec.restart()
    first = 2 if encrypted else 1
    assert fragments_of(owed) == [(i, rec.pieces[i]) for i in range(first, 4)]
    assert isinstance(owed[-1], ClipEnd) and owed[-1].fragments == 4


def test_a_batch_in_flight_resumes_at_its_first_message_unless_it_was_encrypted(
    tmp_path: Path,
) -> None:
    """One journal write names every message of a batch; a batch is encrypted all or
    nothing, so a restart resumes at its first message (not encrypted) or after its last."""
    for encrypted in (False, True):
        rec = Recording(tmp_path / str(encrypted))
        rec.start()
        rec.record(5)
        rec.send(0)
        seq = rec.groups.group.sender.next_app_seq
        for i in (1, 2, 3):
            rec.journal.stage(CAMERA, CLIP, i, seq + i - 1, len(rec.pieces[i]))
        rec.journal.write(CAMERA, CLIP)
        if encrypted:
            for i in (1, 2, 3):
                data = rec.pieces[i]
                rec.groups.send(
                    rec.groups.group,
                    lambda s, i=i, data=data: ClipFragment(CLIP, EVENT, i, False, False, s, data),
                )
            assert rec.journal.replay(CAMERA, seq + 1) is not None  # any message of it
        owed = rec.restart()
        first = 4 if encrypted else 1
        assert fragments_of(owed) == [(i, rec.pieces[i]) for i in range(first, 5)]
        assert isinstance(owed[-1], ClipEnd) and owed[-1].fragments == 5
