"""TTL and account quota, on an injected FakeClock (in-process relay)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import aiohttp
import pytest
from relay_harness import OPERATOR_TOKEN, InProcess, mailbox_id, start_inprocess

from privastead.clock import FakeClock
from privastead.errors import RelayRejectedError
from privastead.relay.app import sweep
from privastead.relay.config import Limits, RelayConfig


def blob_files(relay: InProcess) -> list[Path]:
    root = relay.state.config.data_dir / "blobs"
    return [f for d in root.iterdir() if d.name != "tmp" for f in d.iterdir()]


async def test_ttl_hides_then_sweeps_messages(inproc: InProcess) -> None:
    short, default = mailbox_id(), mailbox_id()
    async with inproc.client() as c:
        await c.create_mailbox(short, ttl_seconds=60)
        await c.create_mailbox(default)
        await c.upload(short, b"a" * 100, "s1")
        await c.upload(short, os.urandom(100_000), "s2")  # a blob
        await c.upload(default, b"kept", "d1")
        inproc.clock.advance(30)
        assert (await c.mailbox_info(short)).count == 2
        inproc.clock.advance(31)
        # Past the TTL: invisible at once, even before the sweeper runs ...
        assert (await c.list_messages(short)).messages == ()
        with pytest.raises(RelayRejectedError):
            await c.fetch(short, 2)
        assert len(blob_files(inproc)) == 1
        # ... and gone from disk after it.
        assert await sweep(inproc.state) == 2
        assert blob_files(inproc) == []
        assert [m.body for m in (await c.list_messages(default)).messages] == [b"kept"]
        # Sequence numbers never restart: a gap tells the client something expired.
        assert (await c.upload(short, b"new", "s3")).seq == 3
        inproc.clock.advance(7 * 24 * 3600)
        assert await sweep(inproc.state) == 2
        assert inproc.state.metrics.value("relay_messages_expired_total") == 4


async def test_quota_evicts_oldest_and_reports_it(tmp_path: Path) -> None:
    # Bodies over 16 KiB as files, so that eviction is seen to delete them too.
    limits = dataclasses.replace(Limits(), account_quota_bytes=100_000, inline_max=16 * 1024)
    relay = await start_inprocess(tmp_path, FakeClock(), RelayConfig(limits=limits))
    try:
        a, b = mailbox_id(), mailbox_id()
        async with relay.client() as c:
            await c.create_mailbox(a)
            await c.create_mailbox(b)
            first = os.urandom(30_000)
            assert (await c.upload(a, first, "a1")).evicted == ()
            assert (await c.upload(b, os.urandom(30_000), "b1")).evicted == ()
            assert (await c.upload(a, os.urandom(30_000), "a2")).evicted == ()
            result = await c.upload(b, os.urandom(30_000), "b2")
            # 120 kB > 100 kB: the oldest of the account (a's seq 1) made room, and we are told.
            assert [(e.mailbox, e.seq) for e in result.evicted] == [(a, 1)]
            assert [m.seq for m in (await c.list_messages(a)).messages] == [2]
            result = await c.upload(a, os.urandom(65_000), "a3")
            assert [(e.mailbox, e.seq) for e in result.evicted] == [(b, 1), (a, 2)]
            assert len(blob_files(relay)) == 2
            with pytest.raises(RelayRejectedError) as err:
                await c.upload(a, os.urandom(100_001), "huge")
            assert (err.value.status, err.value.code) == (413, "quota_exceeded")
            # A retry of an evicted upload is still a duplicate, not stored twice.
            again = await c.upload(a, first, "a1")
            assert again.duplicate and again.seq == 1
        async with (
            aiohttp.ClientSession() as s,
            s.get(
                relay.url + "/metrics", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}
            ) as r,
        ):
            text = await r.text()
        assert "relay_messages_evicted_total 3" in text
        assert "relay_mailbox_messages 2" in text
    finally:
        await relay.server.close()


async def test_restricted_token_expires(inproc: InProcess) -> None:
    box = mailbox_id()
    async with inproc.client() as c:
        await c.create_mailbox(box)
        token = await c.create_restricted_token([box], ttl_seconds=300)
    async with inproc.client(token.token) as r:
        await r.upload(box, b"key package", "kp")
        inproc.clock.advance(301)
        with pytest.raises(RelayRejectedError) as err:
            await r.upload(box, b"key package", "kp2")
        assert err.value.status == 401


async def test_metrics_need_the_operator_token(inproc: InProcess) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(inproc.url + "/metrics") as r:
            assert r.status == 401
        async with s.get(
            inproc.url + "/metrics", headers={"Authorization": f"Bearer {inproc.owner_token}"}
        ) as r:
            assert r.status == 401  # an account token is not the operator token
        async with s.get(
            inproc.url + "/metrics", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        ) as r:
            assert r.status == 200
            text = await r.text()
    assert 'relay_requests_total{method="GET",route="/metrics",status="401"} 2' in text
    assert inproc.owner_token not in text


async def test_hub_reset_deletes_a_mailbox_with_its_blobs(inproc: InProcess) -> None:
    box = mailbox_id()
    async with inproc.client() as c:
        await c.create_mailbox(box)
        sub = await c.subscribe([box])
        assert (await sub.next_event())["type"] == "subscribed"
        await c.upload(box, os.urandom(100_000), "clip")
        assert (await sub.next_event())["type"] == "message"
        assert len(blob_files(inproc)) == 1
        await c.delete_mailbox(box)
        assert await sub.next_event() == {"type": "deleted", "mailbox": box}
        assert blob_files(inproc) == []
        with pytest.raises(RelayRejectedError) as err:
            await c.list_messages(box)
        assert err.value.code == "mailbox_not_found"
        await sub.close()


async def test_push_payload_limits(inproc: InProcess) -> None:
    box = mailbox_id()
    async with inproc.client() as c:
        await c.create_mailbox(box)
        with pytest.raises(RelayRejectedError) as err:
            await c.upload(box, b"x", "p1", push=os.urandom(4097))
        assert (err.value.status, err.value.code) == (413, "push_too_large")
        assert (await c.upload(box, b"x", "p2", push=os.urandom(4096))).seq == 1
        assert (await c.mailbox_info(box)).count == 1


async def test_blob_download_on_the_stdlib_loop(inproc: InProcess) -> None:
    """In-process tests run on the stdlib loop: this exercises the zero-copy sendfile path
    (the process tests run uvloop, which takes the pread path)."""
    box = mailbox_id()
    data = os.urandom(3 * 1024 * 1024 + 5)
    async with inproc.client() as c:
        await c.create_mailbox(box)
        seq = (await c.upload(box, data, "big")).seq
        assert await c.fetch(box, seq) == data
