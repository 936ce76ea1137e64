"""The events worker sends what waits for a group in batches (``delivery.batch``): fragments
queued while it was busy go out with one durable MLS write, app seqs stay consecutive in queue
order, a clip's self-update commit and its end cut a batch where they must, and the bounds (by
count and by bytes) hold, with other jobs of the group running between two batches.

Real parts: the hub's MLS groups (Rust core and state files), its outbox on disk, the clip
journal; the sender is wrapped only to see what it encrypts, and the durable writes are counted
where they happen (the core's calls, each one state write; ``os.fsync`` for the outbox and the
journal)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_clip_delivery import CAMERA, EVENT, Setup, pieces

from privastead.hub.delivery.batch import BatchLimits
from privastead.hub.delivery.outbox import EntryKind
from privastead.hub.recording.clips import EventNotice
from privastead.protocol.messages import ClipFragment, Notification

OTHER_EVENT = "abcdef0123456789abcdef0123456789"


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path, queue_bytes=1 << 24)
    yield s
    s.close()


class Counted:
    """The events group's MLS calls, each one state write of the core: the sender's
    encryptions (wrapped here) and its commits (one outbox entry each)."""

    def __init__(self, setup: Setup) -> None:
        self.calls: list[tuple[str, int]] = []
        self._setup = setup
        sender: Any = setup.events.sender
        self._cipher = sender._cipher
        sender._cipher = self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cipher, name)

    def encrypt(self, *args: Any, **kwargs: Any) -> bytes:
        self.calls.append(("encrypt", 1))
        return self._cipher.encrypt(*args, **kwargs)  # type: ignore[no-any-return]

    def encrypt_batch(self, group_id: bytes, plaintexts: list[bytes], **kwargs: Any) -> Any:
        self.calls.append(("encrypt_batch", len(plaintexts)))
        return self._cipher.encrypt_batch(group_id, plaintexts, **kwargs)

    def writes(self) -> list[tuple[str, int]]:
        """Encryptions and commits in outbox order (a commit is ``("commit", 1)``)."""
        calls = iter(self.calls)
        out: list[tuple[str, int]] = []
        left = 0
        for entry in self._setup.events.sender._queue.pending():
            if entry.kind is EntryKind.COMMIT:
                out.append(("commit", 1))
            elif left == 0:
                out.append(next(calls))
                left = out[-1][1] - 1
            else:
                left -= 1
        assert next(calls, None) is None
        return out


def notice(event: str = EVENT) -> EventNotice:
    return EventNotice(CAMERA, event, 1.7e9, 0.8, ((0.1, 0.2, 0.3, 0.4),))


def queue_clip(setup: Setup, event: str, clip: list[bytes], *, end: bool = True) -> None:
    for index, piece in enumerate(clip):
        setup.delivery.on_fragment(CAMERA, event, index, piece, index == 0)
    if end:
        setup.delivery.on_clip_end(CAMERA, event, setup.part)


def test_fragments_queued_while_the_worker_was_busy_take_one_durable_mls_write(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = Counted(setup)
    fsyncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd))[1])
    clip = pieces(17, 2000)
    release = setup.hold_worker()
    queue_clip(setup, EVENT, clip)
    release.set()
    setup.events.worker.drain()

    assert core.writes() == [("commit", 1), ("encrypt_batch", len(clip))]
    assert setup.batches == [len(clip)]
    sent = setup.fragments()
    assert [f.index for f in sent] == list(range(len(clip)))
    assert [f.final for f in sent] == [False] * (len(clip) - 1) + [True]
    # Python's own fsyncs: the journal (open, then one write for the batch), the commit's
    # outbox entry, and per fragment its entry file, plus one directory fsync for all of them;
    # sent one by one each fragment also cost a journal write and a directory fsync.
    assert len(fsyncs) == 2 + 2 + 2 + len(clip) + 1


def test_app_seqs_follow_the_queue_and_a_new_clip_cuts_the_batch(setup: Setup) -> None:
    core = Counted(setup)
    first, second = pieces(5, 500), pieces(4, 700)
    release = setup.hold_worker()
    setup.delivery.on_event(notice())
    queue_clip(setup, EVENT, first, end=False)
    setup.delivery.on_event(notice(OTHER_EVENT))
    setup.delivery.on_event(notice(EVENT))  # the first event's notice again, with thumbnail
    setup.delivery.on_clip_end(CAMERA, EVENT, setup.part)
    queue_clip(setup, OTHER_EVENT, second, end=False)
    release.set()
    setup.events.worker.drain()

    # The notification goes before the first clip's commit; the first clip's fragments and
    # the next notifications share a batch, cut by the clip's end (its plaintext may go only
    # once the batch is durable), then the second clip's commit.
    assert core.writes() == [
        ("encrypt_batch", 1),
        ("commit", 1),
        ("encrypt_batch", len(first) + 2),
        ("commit", 1),
        ("encrypt_batch", len(second) - 1),  # the last one is held for ``final``
    ]
    assert [type(m).__name__ for m in setup.sent] == (
        ["Notification"]
        + ["ClipFragment"] * (len(first) - 1)
        + ["Notification"] * 2
        + ["ClipFragment"] * len(second)  # the first clip's last (final), the second's three
    )
    assert [getattr(m, "seq", None) for m in setup.sent] == list(range(len(setup.sent)))
    entries = setup.events.sender._queue.pending()
    app = [e for e in entries if e.kind is not EntryKind.COMMIT]
    assert [e.app_seq for e in app] == list(range(len(setup.sent)))  # outbox order = app seqs
    assert [e.seq for e in entries] == sorted(e.seq for e in entries)
    fragments = setup.fragments()
    assert [f.data for f in fragments] == first + second[:-1]
    assert [f.index for f in fragments] == [*range(len(first)), 0, 1, 2]
    notes = [m for m in setup.sent if isinstance(m, Notification)]
    assert [n.event_id for n in notes] == [EVENT, OTHER_EVENT, EVENT]


def test_a_batch_is_bounded_by_count_and_other_jobs_run_between_batches(setup: Setup) -> None:
    setup.delivery.batch_limits = BatchLimits(messages=4)
    clip = pieces(13, 100)
    release = setup.hold_worker()
    queue_clip(setup, EVENT, clip)
    seen_by_other_job: list[int] = []
    setup.events.worker.submit(lambda: seen_by_other_job.append(len(setup.fragments())))
    release.set()
    setup.events.worker.drain()  # waits for the deferred batches too
    assert setup.batches == [4, 4, 4, 1]
    assert seen_by_other_job == [4]  # a heartbeat or commit waits one batch, not the clip
    assert [f.index for f in setup.fragments()] == list(range(len(clip)))
    assert [m.seq for m in setup.fragments()] == list(range(len(clip)))


def test_a_batch_is_bounded_by_bytes_and_a_larger_message_goes_alone(setup: Setup) -> None:
    setup.delivery.batch_limits = BatchLimits(bytes=2500)
    clip = pieces(6, 1000)
    clip.insert(3, pieces(2, 4000)[1])  # one fragment over the limit on its own
    release = setup.hold_worker()
    queue_clip(setup, EVENT, clip)
    release.set()
    setup.events.worker.drain()
    sizes = [len(f.data) for f in setup.fragments()]
    assert sizes == [len(p) for p in clip]
    large = len(clip[3])
    batches, start = [], 0
    for count in setup.batches:
        batches.append(sizes[start : start + count])
        start += count
    assert [large] in batches  # over the limit on its own: it went alone
    assert all(sum(b) <= 2500 for b in batches if b != [large])
    small = len(clip[1])
    assert batches == [[len(clip[0]), small, small], [large], [small, small], [small]]
    assert setup.delivery.batch_stats.messages == len(clip)


def test_a_fragment_queued_alone_is_sent_without_waiting_for_more(setup: Setup) -> None:
    clip = pieces(3, 300)
    for index, piece in enumerate(clip):
        setup.delivery.on_fragment(CAMERA, EVENT, index, piece, index == 0)
        setup.events.worker.drain()  # nothing else waits: the fragment is not held back
    assert [f.index for f in setup.fragments()] == [0, 1]  # the last is held for ``final``
    assert isinstance(setup.sent[-1], ClipFragment)


def test_a_message_that_cannot_be_built_fails_alone(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    """A bad notification among queued fragments (its thumbnail is not a JPEG) fails its own
    call, logged and counted; what was staged before it and everything queued after it still
    goes out, in the same batch, with consecutive app seqs."""
    clip = pieces(7, 300)
    release = setup.hold_worker()
    for index, piece in enumerate(clip):
        setup.delivery.on_fragment(CAMERA, EVENT, index, piece, index == 0)
        if index == 3:
            bad = EventNotice(CAMERA, EVENT, 1.7e9, 0.8, (), thumbnail=b"not a jpeg")
            setup.delivery.on_event(bad)
    setup.delivery.on_event(notice())
    setup.delivery.on_clip_end(CAMERA, EVENT, setup.part)
    release.set()
    setup.events.worker.drain()
    assert [f.index for f in setup.fragments()] == list(range(len(clip)))
    assert [getattr(m, "seq", None) for m in setup.sent] == list(range(len(clip) + 1))
    assert setup.delivery.sent_notifications == 1
    assert setup.batches == [len(clip) + 1]
    assert setup.delivery.failed_calls == 1
    assert "a queued delivery call failed" in caplog.text


def test_a_closing_worker_still_sends_every_queued_batch(setup: Setup) -> None:
    """At shutdown the worker takes no new job: the drain goes on in place instead of
    deferring, so every queued fragment still goes out before the thread stops."""
    setup.delivery.batch_limits = BatchLimits(messages=3)
    clip = pieces(10, 100)
    release = setup.hold_worker()
    queue_clip(setup, EVENT, clip)
    closer = threading.Thread(target=setup.events.worker.close)
    closer.start()
    for _ in range(6000):  # until close() has begun (it then waits for the held job)
        if setup.events.worker.closing:
            break
        closer.join(0.01)
    assert setup.events.worker.closing
    release.set()
    closer.join(60)
    assert not closer.is_alive()
    assert [f.index for f in setup.fragments()] == list(range(len(clip)))
    assert setup.batches == [3, 3, 3, 1]
