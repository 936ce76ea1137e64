from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from privastead.errors import StorageError
from privastead.hub.delivery.outbox import EntryKind, MailboxQueue, Outbox
from privastead.hub.delivery.sender import GroupSender
from privastead.protocol.codec import Message, decode_message
from privastead.protocol.messages import ClipFragment, Heartbeat, Notification

MB = "0123456789abcdef0123456789abcdef"
GID = b"group-1"
EVENT = "e" * 32
CLIP = "c" * 32


@dataclass(frozen=True)
class Handshake:
    seq: int
    messages: tuple[bytes, ...]


class FakeCipher:
    """Models the core's contract: each call persists state and app_data atomically before it
    returns; ``last_handshake`` survives a restart. "Ciphertext" is the plaintext, tagged."""

    def __init__(self) -> None:
        self.app_data = b""
        self.epoch = 0
        self.counter = 0
        self.last_handshake = Handshake(0, ())

    def encrypt(
        self, group_id: bytes, plaintext: bytes, aad: bytes = b"", *, app_data: bytes | None = None
    ) -> bytes:
        assert group_id == GID
        self.counter += 1
        if app_data is not None:
            self.app_data = app_data
        return b"CT%d|%d|" % (self.epoch, self.counter) + plaintext

    def self_update(self, group_id: bytes, *, app_data: bytes | None = None) -> bytes:
        self.epoch += 1
        commit = b"COMMIT->%d" % self.epoch
        self.last_handshake = Handshake(self.last_handshake.seq + 1, (commit,))
        if app_data is not None:
            self.app_data = app_data
        return commit


class CrashingQueue:
    """A queue whose next append "crashes" the process (raises), like kill -9 would."""

    def __init__(self, queue: MailboxQueue) -> None:
        self._queue = queue
        self.mailbox = queue.mailbox

    def append(self, *args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("crash before the outbox write")


def note(app_seq: int, thumb: bytes = b"") -> Notification:
    return Notification("front", EVENT, 1_700_000_000.0, 0.9, (), app_seq, thumb)


def plaintexts(queue: MailboxQueue) -> list[tuple[int, EntryKind, Message | bytes]]:
    result: list[tuple[int, EntryKind, Message | bytes]] = []
    for entry in queue.pending():
        data = entry.read()
        if entry.kind is EntryKind.COMMIT:
            result.append((entry.seq, entry.kind, data))
        else:
            result.append((entry.seq, entry.kind, decode_message(data.split(b"|", 2)[2])))
    return result


def test_messages_and_commits_share_the_outbox_seq_but_not_the_app_seq(tmp_path: Path) -> None:
    cipher = FakeCipher()
    queue = Outbox(tmp_path, quota_bytes=10**6).mailbox(MB)
    sender = GroupSender(cipher, GID, queue)
    assert sender.send(note).app_seq == 0
    sender.commit(lambda app: cipher.self_update(GID, app_data=app), lambda c: c)
    frag = lambda s: ClipFragment(CLIP, EVENT, 0, True, True, s, b"init")  # noqa: E731
    assert sender.send(frag).app_seq == 1
    assert sender.send(lambda s: Heartbeat(1.0, s, "v", {}, {}, {})).app_seq == 2
    entries = plaintexts(queue)
    assert [(s, k) for s, k, _ in entries] == [
        (0, EntryKind.NOTIFICATION),
        (1, EntryKind.COMMIT),
        (2, EntryKind.CLIP_FRAGMENT),
        (3, EntryKind.HEARTBEAT),
    ]
    assert [m.seq for _, _, m in entries if not isinstance(m, bytes)] == [0, 1, 2]
    pending = queue.pending()
    assert pending[2].clip_id == CLIP
    assert pending[0].push_payload == pending[0].read()  # a small notification rides the push
    assert sender.next_seq == 4 and sender.next_app_seq == 3
    # A restart reads the counters back from the MLS app data.
    again = GroupSender(cipher, GID, queue)
    assert again.next_seq == 4 and again.next_app_seq == 3


def test_large_notifications_are_not_pushed(tmp_path: Path) -> None:
    queue = Outbox(tmp_path, quota_bytes=10**6).mailbox(MB)
    GroupSender(FakeCipher(), GID, queue).send(lambda s: note(s, b"\xff\xd8" + bytes(5000)))
    assert queue.pending()[0].push_payload is None


def test_crash_after_encrypt_rebuilds_the_message_from_the_plaintext(tmp_path: Path) -> None:
    cipher = FakeCipher()
    outbox = Outbox(tmp_path, quota_bytes=10**6)
    sender = GroupSender(cipher, GID, outbox.mailbox(MB))
    sender.send(note)
    crashing = GroupSender(cipher, GID, CrashingQueue(outbox.mailbox(MB)))  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt):
        crashing.send(note)
    # Restart: the state says seq 1 (app seq 1) was produced; the outbox does not have it.
    queue = Outbox(tmp_path, quota_bytes=10**6).mailbox(MB)
    restarted = GroupSender(cipher, GID, queue)
    asked: list[int] = []

    def replay(app_seq: int) -> Message | None:
        asked.append(app_seq)
        return note(app_seq)

    report = restarted.recover(replay)
    assert report.rebuilt == (1,) and report.lost == () and asked == [1]
    assert [(s, m.seq) for s, _, m in plaintexts(queue) if not isinstance(m, bytes)] == [
        (0, 0),
        (1, 1),
    ]
    assert restarted.recover(replay).rebuilt == ()  # nothing left to do
    assert restarted.send(note).app_seq == 2


def test_crash_after_commit_requeues_the_commit_from_the_core(tmp_path: Path) -> None:
    cipher = FakeCipher()
    outbox = Outbox(tmp_path, quota_bytes=10**6)
    GroupSender(cipher, GID, outbox.mailbox(MB)).send(note)
    crashing = GroupSender(cipher, GID, CrashingQueue(outbox.mailbox(MB)))  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt):
        crashing.commit(lambda app: cipher.self_update(GID, app_data=app), lambda c: c)
    queue = Outbox(tmp_path, quota_bytes=10**6).mailbox(MB)
    restarted = GroupSender(cipher, GID, queue)
    report = restarted.recover(lambda s: pytest.fail("a commit needs no plaintext"))
    assert report.rebuilt == (1,)
    assert queue.pending()[1].kind is EntryKind.COMMIT
    assert queue.pending()[1].read() == b"COMMIT->1"  # the very commit the core merged


def test_a_message_whose_plaintext_is_gone_is_skipped_and_reported(tmp_path: Path) -> None:
    cipher = FakeCipher()
    outbox = Outbox(tmp_path, quota_bytes=10**6)
    crashing = GroupSender(cipher, GID, CrashingQueue(outbox.mailbox(MB)))  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt):
        crashing.send(note)
    queue = Outbox(tmp_path, quota_bytes=10**6).mailbox(MB)
    report = GroupSender(cipher, GID, queue).recover(lambda s: None)
    assert report.lost == (0,) and report.rebuilt == ()
    assert queue.recover(0) == ()  # recorded: not reported again


def test_foreign_app_data_is_refused(tmp_path: Path) -> None:
    cipher = FakeCipher()
    cipher.app_data = b"something else"
    with pytest.raises(StorageError, match="not a sender state"):
        GroupSender(cipher, GID, Outbox(tmp_path, quota_bytes=100).mailbox(MB))


def test_a_refused_fragment_is_reported_to_the_caller(tmp_path: Path) -> None:
    queue = Outbox(tmp_path, quota_bytes=100).mailbox(MB)
    sender = GroupSender(FakeCipher(), GID, queue)
    sent = sender.send(lambda s: ClipFragment(CLIP, EVENT, 0, False, True, s, bytes(500)))
    assert not sent.accepted and sent.dropped[0].clip_id == CLIP
    assert queue.pending() == [] and queue.recover(sender.next_seq - 1) == ()
