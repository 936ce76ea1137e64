"""The uploader's questions to the outbox (asked on the hub's event loop) never wait for a
writer's disk: while one group's worker is stuck in the middle of a durable append (its fsync
held here), ``first_pending``, ``contains``, ``mailbox`` and ``mailboxes`` of every mailbox
still answer, and the stuck append lands whole once its disk returns."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from privastead.hub.delivery import outbox as outbox_module
from privastead.hub.delivery.outbox import EntryKind, Outbox

MB = "0123456789abcdef0123456789abcdef"
MB2 = "fedcba9876543210fedcba9876543210"


def test_readers_answer_while_a_writer_is_stuck_in_its_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = Outbox(tmp_path, quota_bytes=1 << 20)
    queue, other = outbox.mailbox(MB), outbox.mailbox(MB2)
    queue.append(0, b"first", kind=EntryKind.NOTIFICATION)
    other.append(0, b"other", kind=EntryKind.NOTIFICATION)

    inside, disk_back = threading.Event(), threading.Event()
    real_write = outbox_module.write_atomic

    def stuck_write(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
        if threading.current_thread().name == "writer":
            inside.set()
            disk_back.wait()
        real_write(path, data, sync_dir=sync_dir)

    monkeypatch.setattr(outbox_module, "write_atomic", stuck_write)
    writer = threading.Thread(
        target=queue.append,
        args=(1, b"second"),
        kwargs={"kind": EntryKind.NOTIFICATION},
        name="writer",
    )
    writer.start()
    assert inside.wait(30)

    answers: dict[str, object] = {}

    def ask() -> None:  # what the uploader does on the loop
        answers["mailboxes"] = outbox.mailboxes()
        answers["mailbox"] = outbox.mailbox(MB2) is other
        answers["first"] = queue.first_pending()
        answers["first_other"] = other.first_pending()
        answers["contains"] = queue.contains(1)

    reader = threading.Thread(target=ask)
    reader.start()
    reader.join(30)  # a liveness bound, generous: the readers must not wait for disk_back
    answered = not reader.is_alive()
    disk_back.set()
    writer.join()
    reader.join()
    assert answered, "the outbox's readers waited for another writer's disk"
    assert answers["mailboxes"] == sorted([MB, MB2])
    assert answers["mailbox"] is True
    first = answers["first"]
    assert first is not None and first.seq == 0  # type: ignore[attr-defined]
    assert answers["contains"] is False  # not durable yet: not visible
    assert queue.contains(1)  # durable now
    assert [e.seq for e in queue.pending()] == [0, 1]
