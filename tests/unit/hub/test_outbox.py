from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from privastead.errors import StorageError
from privastead.hub.delivery.outbox import EntryKind, Outbox

MB = "0123456789abcdef0123456789abcdef"
MB2 = "fedcba9876543210fedcba9876543210"
CLIP_A = "a" * 32
CLIP_B = "b" * 32
CLIP_C = "c" * 32


def body(seq: int, size: int = 100) -> bytes:
    return (f"ciphertext {seq} ".encode() * size)[:size]


def test_append_is_durable_ordered_and_private(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox", quota_bytes=10**6)
    q = outbox.mailbox(MB)
    for seq in (0, 1, 2):
        q.append(
            seq, body(seq), kind=EntryKind.NOTIFICATION, push_payload=b"push" if seq == 1 else None
        )
    reopened = Outbox(tmp_path / "outbox", quota_bytes=10**6).mailbox(MB)
    entries = reopened.pending()
    assert [e.seq for e in entries] == [0, 1, 2]
    assert [e.read() for e in entries] == [body(0), body(1), body(2)]
    assert entries[1].push_payload == b"push" and entries[0].push_payload is None
    assert entries[0].kind is EntryKind.NOTIFICATION
    for entry in entries:
        assert stat.S_IMODE(entry.path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "outbox" / MB).stat().st_mode) == 0o700


def test_mark_uploaded_deletes_in_order_and_survives_reopen(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, quota_bytes=10**6)
    q = outbox.mailbox(MB)
    for seq in range(4):
        q.append(seq, body(seq), kind=EntryKind.COMMIT)
    with pytest.raises(StorageError, match="out of order"):
        q.mark_uploaded(2)
    q.mark_uploaded(0)
    q.mark_uploaded(1)
    assert [e.seq for e in q.pending()] == [2, 3]
    assert not (tmp_path / MB / "00000000000000000000.msg").exists()
    q2 = Outbox(tmp_path, quota_bytes=10**6).mailbox(MB)
    assert q2.uploaded_through == 1 and [e.seq for e in q2.pending()] == [2, 3]
    with pytest.raises(StorageError, match="already queued or sent"):
        q2.append(1, b"again", kind=EntryKind.COMMIT)
    with pytest.raises(StorageError, match="already queued"):
        q2.append(3, b"again", kind=EntryKind.COMMIT)


def test_open_removes_leftover_tmp_and_already_uploaded_files(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, quota_bytes=10**6)
    q = outbox.mailbox(MB)
    for seq in range(3):
        q.append(seq, body(seq), kind=EntryKind.HEARTBEAT)
    q.mark_uploaded(0)
    # A crash mid-write leaves a tmp file; a crash after recording an upload leaves the file.
    (tmp_path / MB / "00000000000000000003.msg.tmp").write_bytes(b"partial")
    (tmp_path / MB / "00000000000000000000.msg").write_bytes(
        (tmp_path / MB / "00000000000000000001.msg").read_bytes()
    )
    q2 = Outbox(tmp_path, quota_bytes=10**6).mailbox(MB)
    assert [e.seq for e in q2.pending()] == [1, 2]
    assert sorted(p.name for p in (tmp_path / MB).iterdir()) == [
        "00000000000000000001.msg",
        "00000000000000000002.msg",
        "state.json",
    ]


def test_recover_reports_what_was_encrypted_but_never_queued(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, quota_bytes=10**6)
    q = outbox.mailbox(MB)
    for seq in (0, 1, 2, 4):
        q.append(seq, body(seq), kind=EntryKind.NOTIFICATION)
    q.mark_uploaded(0)
    # The MLS state says seqs up to 6 were encrypted; 3, 5 and 6 never reached the outbox.
    assert q.recover(6) == ((3, 3), (5, 6))
    assert q.recover(4) == ((3, 3),)
    q.append(3, body(3), kind=EntryKind.NOTIFICATION)  # re-encrypted: fills the hole
    assert [e.seq for e in q.pending()] == [1, 2, 3, 4]
    assert q.recover(4) == ()


def test_corrupt_entry_is_quarantined_and_detected_on_read(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, quota_bytes=10**6)
    q = outbox.mailbox(MB)
    q.append(0, body(0), kind=EntryKind.COMMIT)
    q.append(1, body(1), kind=EntryKind.COMMIT)
    path1 = tmp_path / MB / "00000000000000000001.msg"
    data = bytearray(path1.read_bytes())
    data[-1] ^= 1
    path1.write_bytes(bytes(data))
    with pytest.raises(StorageError, match="checksum"):
        q.pending()[1].read()
    (tmp_path / MB / "00000000000000000000.msg").write_bytes(b"garbage")
    q2 = Outbox(tmp_path, quota_bytes=10**6).mailbox(MB)
    assert [e.seq for e in q2.pending()] == [1]
    assert (tmp_path / MB / "00000000000000000000.msg.corrupt").exists()
    assert q2.recover(1) == ((0, 0),)


def test_quota_drops_oldest_whole_clips_first_never_notifications(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, quota_bytes=1000)
    ev, ctl = outbox.mailbox(MB), outbox.mailbox(MB2)
    ev.append(0, body(0, 50), kind=EntryKind.COMMIT)
    ev.append(1, body(1, 50), kind=EntryKind.NOTIFICATION)
    for i in range(3):
        ev.append(2 + i, body(2 + i, 100), kind=EntryKind.CLIP_FRAGMENT, clip_id=CLIP_A)
    ctl.append(0, body(0, 50), kind=EntryKind.HEARTBEAT)
    for i in range(3):
        ev.append(5 + i, body(5 + i, 100), kind=EntryKind.CLIP_FRAGMENT, clip_id=CLIP_B)
    assert outbox.status().pending_bytes == 750
    result = ev.append(8, body(8, 400), kind=EntryKind.CLIP_FRAGMENT, clip_id=CLIP_C)
    assert result.accepted
    assert [(d.clip_id, d.seqs, d.bytes) for d in result.dropped] == [(CLIP_A, (2, 3, 4), 300)]
    assert [e.seq for e in ev.pending()] == [0, 1, 5, 6, 7, 8]
    assert [e.seq for e in ctl.pending()] == [0]
    status = outbox.status()
    assert status.pending_bytes == 850 and status.dropped_clips == 1 and status.dropped_bytes == 300
    assert [d.clip_id for d in outbox.take_dropped()] == [CLIP_A]
    assert outbox.take_dropped() == []
    # Dropped seqs are not crash gaps, and survive a reopen as such.
    assert ev.recover(8) == ()
    assert Outbox(tmp_path, quota_bytes=1000).mailbox(MB).recover(8) == ()


def test_a_clip_that_cannot_fit_is_refused_whole_but_small_messages_still_go(
    tmp_path: Path,
) -> None:
    outbox = Outbox(tmp_path, quota_bytes=500)
    q = outbox.mailbox(MB)
    q.append(0, body(0, 200), kind=EntryKind.CLIP_FRAGMENT, clip_id=CLIP_A)
    q.append(1, body(1, 200), kind=EntryKind.CLIP_FRAGMENT, clip_id=CLIP_A)
    result = q.append(2, body(2, 200), kind=EntryKind.CLIP_FRAGMENT, clip_id=CLIP_A)
    assert not result.accepted
    assert {d.seqs for d in result.dropped} == {(0, 1), (2,)}
    assert q.pending() == []
    # The rest of that clip is refused too: no clip with a hole in the middle.
    assert not q.append(3, body(3, 10), kind=EntryKind.CLIP_FRAGMENT, clip_id=CLIP_A).accepted
    # Notifications and commits are always kept, even over quota.
    assert q.append(4, body(4, 600), kind=EntryKind.COMMIT).accepted
    assert q.append(5, body(5, 10), kind=EntryKind.NOTIFICATION).accepted
    assert [e.seq for e in q.pending()] == [4, 5]
    assert q.recover(5) == ()


def test_uploaded_clips_leave_the_age_order(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, quota_bytes=300)
    q = outbox.mailbox(MB)
    q.append(0, body(0, 100), kind=EntryKind.CLIP_FRAGMENT, clip_id=CLIP_A)
    q.mark_uploaded(0)
    q.append(1, body(1, 100), kind=EntryKind.CLIP_FRAGMENT, clip_id=CLIP_B)
    result = q.append(2, body(2, 250), kind=EntryKind.CLIP_FRAGMENT, clip_id=CLIP_C)
    assert [d.clip_id for d in result.dropped] == [CLIP_B]


def test_invalid_arguments(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, quota_bytes=100)
    with pytest.raises(ValueError, match="mailbox"):
        outbox.mailbox("../etc")
    q = outbox.mailbox(MB)
    with pytest.raises(ValueError, match="clip_id"):
        q.append(0, b"x", kind=EntryKind.CLIP_FRAGMENT)
    with pytest.raises(ValueError, match="clip_id"):
        q.append(0, b"x", kind=EntryKind.COMMIT, clip_id=CLIP_A)
    with pytest.raises(ValueError, match="hex"):
        q.append(0, b"x", kind=EntryKind.CLIP_FRAGMENT, clip_id="x")


def test_listeners_hear_appends(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, quota_bytes=1000)
    heard: list[str] = []
    unsubscribe = outbox.subscribe(heard.append)
    outbox.mailbox(MB).append(0, b"x", kind=EntryKind.COMMIT)
    unsubscribe()
    outbox.mailbox(MB).append(1, b"x", kind=EntryKind.COMMIT)
    assert heard == [MB]


def test_one_writer_and_one_uploader_in_threads(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, quota_bytes=10**7)
    q = outbox.mailbox(MB)
    uploaded: list[int] = []
    done = threading.Event()

    def upload() -> None:
        while not (done.is_set() and q.first_pending() is None):
            entry = q.first_pending()
            if entry is None:
                done.wait(0.001)  # do not spin on a shared machine
                continue
            assert entry.read() == body(entry.seq)
            q.mark_uploaded(entry.seq)
            uploaded.append(entry.seq)

    thread = threading.Thread(target=upload)
    thread.start()
    for seq in range(60):
        q.append(seq, body(seq), kind=EntryKind.NOTIFICATION)
    done.set()
    thread.join(timeout=60)
    assert uploaded == list(range(60))
    assert os.listdir(tmp_path / MB) == ["state.json"]


def test_uploaded_messages_are_kept_for_resends_within_a_budget(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, quota_bytes=10**6, sent_retention_bytes=350)
    q = outbox.mailbox(MB)
    for seq in range(4):
        q.append(seq, body(seq), kind=EntryKind.NOTIFICATION)
    q.mark_uploaded(0)
    q.mark_uploaded(1)
    assert q.archived(0) == body(0) and q.archived(1) == body(1)
    assert q.archived(2) is None  # not uploaded yet
    q.mark_uploaded(2)  # three files (~160 bytes each) exceed 350: the oldest goes
    assert q.archived(0) is None and q.archived(2) == body(2)
    reopened = Outbox(tmp_path, quota_bytes=10**6, sent_retention_bytes=350).mailbox(MB)
    assert reopened.archived(1) == body(1) and [e.seq for e in reopened.pending()] == [3]
    reopened.mark_uploaded(3)
    assert reopened.archived(1) is None and reopened.archived(3) == body(3)


def test_without_retention_nothing_is_kept(tmp_path: Path) -> None:
    q = Outbox(tmp_path, quota_bytes=10**6).mailbox(MB)
    q.append(0, body(0), kind=EntryKind.COMMIT)
    q.mark_uploaded(0)
    assert q.archived(0) is None
    assert not (tmp_path / MB / "sent").exists()


def test_archive_is_found_by_app_seq_after_a_restart(tmp_path: Path) -> None:
    """A resend request names the envelope's app seq; the archive answers it from each entry's
    own metadata, so a restarted hub still finds what it sent before (commits have none)."""
    outbox = Outbox(tmp_path, quota_bytes=10**6, sent_retention_bytes=10**6)
    q = outbox.mailbox(MB)
    q.append(0, body(0), kind=EntryKind.COMMIT)
    q.append(1, body(1), kind=EntryKind.NOTIFICATION, app_seq=0)
    q.append(2, body(2), kind=EntryKind.CLIP_FRAGMENT, clip_id=CLIP_A, app_seq=1)
    q.append(3, body(3), kind=EntryKind.NOTIFICATION, app_seq=2)
    for seq in (0, 1, 2):
        q.mark_uploaded(seq)
    assert q.archived_app(1) == (2, body(2))
    assert q.archived_app(2) is None  # queued, not uploaded: it will go out anyway
    reopened = Outbox(tmp_path, quota_bytes=10**6, sent_retention_bytes=10**6).mailbox(MB)
    assert reopened.archived_app(0) == (1, body(1))
    assert reopened.archived_app(1) == (2, body(2))
    assert reopened.archived_app(5) is None
    reopened.mark_uploaded(3)  # uploaded after the restart: indexed as well
    assert reopened.archived_app(2) == (3, body(3))


def test_archive_index_forgets_what_the_budget_evicts(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, quota_bytes=10**6, sent_retention_bytes=400)
    q = outbox.mailbox(MB)
    for seq in range(3):
        q.append(seq, body(seq), kind=EntryKind.NOTIFICATION, app_seq=10 + seq)
        q.mark_uploaded(seq)
    assert q.archived_app(10) is None and q.archived_app(12) == (2, body(2))
    reopened = Outbox(tmp_path, quota_bytes=10**6, sent_retention_bytes=400).mailbox(MB)
    assert reopened.archived_app(10) is None and reopened.archived_app(11) == (1, body(1))
