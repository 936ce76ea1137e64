"""Stateful property test: the outbox against a simple model, with reopens in between."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from privastead.hub.delivery.outbox import EntryKind, Outbox

MB = "0123456789abcdef0123456789abcdef"
QUOTA = 2000
CLIPS = ["a" * 32, "b" * 32, "c" * 32, "d" * 32]


class OutboxModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="outbox-model-"))
        self.outbox = Outbox(self.root, quota_bytes=QUOTA)
        self.next_seq = 0
        self.model: dict[int, tuple[bytes, str | None]] = {}  # what must still be pending
        self.uploaded: list[int] = []

    def teardown(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def queue(self):  # type: ignore[no-untyped-def]
        return self.outbox.mailbox(MB)

    @rule(size=st.integers(1, 120))
    def append_small(self, size: int) -> None:
        data = bytes([self.next_seq % 256]) * size
        result = self.queue.append(self.next_seq, data, kind=EntryKind.NOTIFICATION)
        assert result.accepted  # never refused
        self.model[self.next_seq] = (data, None)
        self._forget_dropped(result.dropped)
        self.next_seq += 1

    @rule(size=st.integers(1, 900), clip=st.sampled_from(CLIPS))
    def append_fragment(self, size: int, clip: str) -> None:
        data = bytes([self.next_seq % 256]) * size
        result = self.queue.append(self.next_seq, data, kind=EntryKind.CLIP_FRAGMENT, clip_id=clip)
        if result.accepted:
            self.model[self.next_seq] = (data, clip)
        self._forget_dropped(result.dropped)
        self.next_seq += 1

    def _forget_dropped(self, dropped) -> None:  # type: ignore[no-untyped-def]
        for drop in dropped:
            for seq in drop.seqs:
                kept = self.model.pop(seq, None)
                assert kept is None or kept[1] == drop.clip_id  # only clip fragments are dropped

    @precondition(lambda self: bool(self.model))
    @rule()
    def upload_first(self) -> None:
        entry = self.queue.first_pending()
        assert entry is not None and entry.seq == min(self.model)
        assert entry.read() == self.model[entry.seq][0]
        self.queue.mark_uploaded(entry.seq)
        del self.model[entry.seq]
        self.uploaded.append(entry.seq)

    @rule()
    def reopen(self) -> None:
        self.outbox = Outbox(self.root, quota_bytes=QUOTA)

    @invariant()
    def pending_matches_the_model(self) -> None:
        pending = self.queue.pending()
        assert [e.seq for e in pending] == sorted(self.model)
        assert self.queue.recover(self.next_seq - 1) == ()  # drops and uploads are not gaps
        clip_bytes = sum(e.size for e in pending if e.clip_id is not None)
        small_bytes = sum(e.size for e in pending if e.clip_id is None)
        assert clip_bytes == 0 or clip_bytes + small_bytes <= QUOTA  # clips yield to quota


TestOutboxModel = OutboxModel.TestCase
TestOutboxModel.settings = settings(max_examples=20, stateful_step_count=25, deadline=None)
