from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from privastead import compat
from privastead.clock import FakeClock
from privastead.errors import RelayRejectedError, RelayUnavailableError
from privastead.hub.delivery.outbox import EntryKind, Outbox
from privastead.hub.delivery.uploader import Backoff, Uploader
from privastead.protocol.messages import message_id

MB = "0123456789abcdef0123456789abcdef"
MB2 = "fedcba9876543210fedcba9876543210"


class RecordingClock(FakeClock):
    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await super().sleep(seconds)


class FakeRelay:
    """Stores messages by id (idempotent like the real relay); fails on a script."""

    def __init__(self, failures: list[BaseException | None] | None = None) -> None:
        self.failures = list(failures or [])
        self.stored: dict[str, list[tuple[str, bytes, bytes | None]]] = {}
        self.ids: set[str] = set()
        self.calls = 0
        self.lose_response_after_store = 0
        self.changed = asyncio.Event()

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        async with compat.timeout(30):
            while not condition():
                self.changed.clear()
                await self.changed.wait()

    async def upload(
        self, mailbox: str, body: bytes, message_id: str, *, push: bytes | None = None
    ) -> int:
        push_payload = push
        self.calls += 1
        if self.failures:
            failure = self.failures.pop(0)
            if failure is not None:
                raise failure
        if message_id not in self.ids:
            self.ids.add(message_id)
            self.stored.setdefault(mailbox, []).append((message_id, body, push_payload))
            self.changed.set()
        if self.lose_response_after_store:
            self.lose_response_after_store -= 1
            raise RelayUnavailableError("connection reset after the relay stored it")
        return len(self.stored[mailbox])


def filled_outbox(path: Path, count: int = 5, mailbox: str = MB) -> Outbox:
    outbox = Outbox(path, quota_bytes=10**6)
    q = outbox.mailbox(mailbox)
    for seq in range(count):
        q.append(seq, f"ct{seq}".encode(), kind=EntryKind.NOTIFICATION, push_payload=b"p%d" % seq)
    return outbox


async def test_drain_uploads_in_order_with_stable_ids(tmp_path: Path) -> None:
    outbox = filled_outbox(tmp_path)
    relay = FakeRelay()
    uploader = Uploader(outbox, relay, clock=FakeClock())
    assert await uploader.drain(MB) == 5
    assert relay.stored[MB] == [
        (message_id(MB, s), f"ct{s}".encode(), b"p%d" % s) for s in range(5)
    ]
    assert outbox.mailbox(MB).pending() == []
    assert uploader.stats.uploaded == 5 and uploader.stats.retries == 0


async def test_failures_are_retried_with_growing_jittered_backoff(tmp_path: Path) -> None:
    outbox = filled_outbox(tmp_path, 2)
    failures: list[BaseException | None] = [
        RelayUnavailableError("down"),
        TimeoutError(),
        ConnectionResetError(),
        RelayRejectedError("slow down", 429, "rate_limited"),
        RelayUnavailableError("down"),
    ]
    relay = FakeRelay(failures)
    clock = RecordingClock()
    backoff = Backoff(initial=1.0, maximum=8.0, jitter=0.5)
    uploader = Uploader(outbox, relay, clock=clock, backoff=backoff, rng=random.Random(7))
    assert await uploader.drain(MB) == 2
    assert [m for m, _, _ in relay.stored[MB]] == [message_id(MB, 0), message_id(MB, 1)]
    assert len(clock.sleeps) == 5 and uploader.stats.retries == 5
    for attempt, delay in enumerate(clock.sleeps):
        cap = min(8.0, 2.0**attempt)
        assert cap * 0.5 <= delay <= cap
    assert len(set(clock.sleeps)) == 5  # jitter: no two waits alike


async def test_a_lost_response_does_not_duplicate(tmp_path: Path) -> None:
    outbox = filled_outbox(tmp_path, 3)
    relay = FakeRelay()
    relay.lose_response_after_store = 2
    uploader = Uploader(outbox, relay, clock=FakeClock())
    await uploader.drain(MB)
    assert [b for _, b, _ in relay.stored[MB]] == [b"ct0", b"ct1", b"ct2"]
    assert relay.calls == 5


async def test_restart_after_upload_before_mark_reuploads_the_same_id(tmp_path: Path) -> None:
    outbox = filled_outbox(tmp_path, 1)
    relay = FakeRelay()
    entry = outbox.mailbox(MB).pending()[0]
    await relay.upload(MB, entry.read(), message_id(MB, entry.seq))  # then "crash"
    reopened = Outbox(tmp_path, quota_bytes=10**6)
    await Uploader(reopened, relay, clock=FakeClock()).drain(MB)
    assert len(relay.stored[MB]) == 1 and reopened.mailbox(MB).pending() == []


async def test_permanent_rejection_discards_after_retries(tmp_path: Path) -> None:
    outbox = filled_outbox(tmp_path, 2)
    rejected = RelayRejectedError("too large", 413, "too_large")
    relay = FakeRelay([rejected, rejected, rejected])
    uploader = Uploader(outbox, relay, clock=FakeClock(), max_rejections=3)
    assert await uploader.drain(MB) == 1
    assert [b for _, b, _ in relay.stored[MB]] == [b"ct1"]
    assert uploader.stats.discarded == 1
    assert outbox.mailbox(MB).recover(1) == ()  # discarded is not a crash gap


async def test_auth_errors_never_discard(tmp_path: Path) -> None:
    outbox = filled_outbox(tmp_path, 1)
    relay = FakeRelay([RelayRejectedError("bad token", 401, "unauthorized")] * 10)
    uploader = Uploader(outbox, relay, clock=FakeClock(), max_rejections=2)
    assert await uploader.drain(MB) == 1
    assert uploader.stats.discarded == 0 and uploader.stats.retries == 10


async def test_run_uploads_appends_from_another_thread_across_mailboxes(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, quota_bytes=10**6)
    relay = FakeRelay()
    uploader = Uploader(outbox, relay, clock=FakeClock(), idle_poll=30.0)
    task = asyncio.create_task(uploader.run())

    def write() -> None:
        for seq in range(10):
            for mb in (MB, MB2):
                outbox.mailbox(mb).append(seq, b"m%d" % seq, kind=EntryKind.HEARTBEAT)

    await asyncio.to_thread(write)
    await relay.wait_until(lambda: sum(len(v) for v in relay.stored.values()) == 20)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for mb in (MB, MB2):
        assert [b for _, b, _ in relay.stored[mb]] == [b"m%d" % s for s in range(10)]


async def test_one_failing_mailbox_does_not_block_another(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, quota_bytes=10**6)

    class HalfDown(FakeRelay):
        async def upload(
            self, mailbox: str, body: bytes, message_id: str, *, push: bytes | None = None
        ) -> int:
            if mailbox == MB:
                await asyncio.sleep(0.001)
                raise RelayUnavailableError("this mailbox's shard is down")
            return await super().upload(mailbox, body, message_id, push=push)

    outbox.mailbox(MB).append(0, b"stuck", kind=EntryKind.COMMIT)
    outbox.mailbox(MB2).append(0, b"flows", kind=EntryKind.COMMIT)
    relay = HalfDown()
    uploader = Uploader(outbox, relay, clock=FakeClock())
    task = asyncio.create_task(uploader.run())
    await relay.wait_until(lambda: MB2 in relay.stored)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [e.seq for e in outbox.mailbox(MB).pending()] == [0]
