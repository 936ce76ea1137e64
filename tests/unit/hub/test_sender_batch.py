"""GroupSender.send_batch: several messages, one durable write of the MLS state, and the same
crash recovery as single sends (every message of the last batch can be rebuilt)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from test_sender import GID, MB, CrashingQueue, FakeCipher, note, plaintexts

from privastead.hub.delivery.outbox import EntryKind, MailboxQueue, Outbox
from privastead.hub.delivery.sender import GroupSender
from privastead.protocol.codec import Message
from privastead.protocol.messages import ClipFragment

EVENT = "e" * 32
CLIP = "c" * 32


class BatchCipher(FakeCipher):
    """FakeCipher whose batch call is one persist, counted."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def encrypt_batch(
        self,
        group_id: bytes,
        plaintexts: Sequence[bytes],
        aad: bytes = b"",
        *,
        app_data: bytes | None = None,
    ) -> list[bytes]:
        self.batches.append(len(plaintexts))
        out = [self.encrypt(group_id, p, aad) for p in plaintexts]
        if app_data is not None:
            self.app_data = app_data
        return out


class CrashAfter:
    """A queue that takes ``n`` appends, then "crashes" (kill -9 between two appends)."""

    def __init__(self, queue: MailboxQueue, n: int) -> None:
        self._queue, self._left = queue, n
        self.mailbox = queue.mailbox

    def append(self, *args: object, **kwargs: object) -> object:
        if self._left == 0:
            raise KeyboardInterrupt("crash between two outbox writes")
        self._left -= 1
        return self._queue.append(*args, **kwargs)  # type: ignore[arg-type]


def fragment(index: int) -> Callable[[int], Message]:
    return lambda seq: ClipFragment(CLIP, EVENT, index, False, index == 0, seq, b"f%d" % index)


def test_a_batch_is_one_encrypt_call_with_consecutive_seqs(tmp_path: Path) -> None:
    cipher = BatchCipher()
    queue = Outbox(tmp_path, quota_bytes=10**6).mailbox(MB)
    sender = GroupSender(cipher, GID, queue)
    sender.send(note)
    sent = sender.send_batch([fragment(i) for i in range(4)])
    assert [s.app_seq for s in sent] == [1, 2, 3, 4] and all(s.accepted for s in sent)
    assert cipher.batches == [4]
    assert sender.send_batch([]) == [] and cipher.batches == [4]
    assert sender.send(note).app_seq == 5
    entries = plaintexts(queue)
    assert [s for s, _, _ in entries] == list(range(6))
    assert [k for _, k, _ in entries][1:5] == [EntryKind.CLIP_FRAGMENT] * 4
    frags = [m for _, _, m in entries if isinstance(m, ClipFragment)]
    assert [(f.index, f.seq) for f in frags] == [(0, 1), (1, 2), (2, 3), (3, 4)]
    again = GroupSender(cipher, GID, queue)  # counters come back from the app data
    assert (again.next_seq, again.next_app_seq) == (6, 6)


@pytest.mark.parametrize("appended", [0, 1, 3])
def test_a_crash_inside_a_batch_rebuilds_every_missing_message(
    tmp_path: Path, appended: int
) -> None:
    cipher = BatchCipher()
    outbox = Outbox(tmp_path, quota_bytes=10**6)
    GroupSender(cipher, GID, outbox.mailbox(MB)).send(note)
    crashing = GroupSender(cipher, GID, CrashAfter(outbox.mailbox(MB), appended))  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt):
        crashing.send_batch([fragment(i) for i in range(4)])
    queue = Outbox(tmp_path, quota_bytes=10**6).mailbox(MB)
    restarted = GroupSender(cipher, GID, queue)
    asked: list[int] = []

    def replay(app_seq: int) -> Message | None:
        asked.append(app_seq)
        return fragment(app_seq - 1)(app_seq)

    report = restarted.recover(replay)
    missing = list(range(1 + appended, 5))
    assert list(report.rebuilt) == missing and report.lost == ()
    assert asked == missing  # app seq == outbox seq here (no commits in between)
    frags = [m for _, _, m in plaintexts(queue) if isinstance(m, ClipFragment)]
    assert [(f.index, f.seq) for f in frags] == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert restarted.send(note).app_seq == 5


def test_a_batch_message_whose_plaintext_is_gone_is_reported_lost(tmp_path: Path) -> None:
    cipher = BatchCipher()
    outbox = Outbox(tmp_path, quota_bytes=10**6)
    crashing = GroupSender(cipher, GID, CrashingQueue(outbox.mailbox(MB)))  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt):
        crashing.send_batch([fragment(i) for i in range(3)])
    queue = Outbox(tmp_path, quota_bytes=10**6).mailbox(MB)
    report = GroupSender(cipher, GID, queue).recover(
        lambda app_seq: None if app_seq == 1 else fragment(app_seq)(app_seq)
    )
    assert report.rebuilt == (0, 2) and report.lost == (1,)
