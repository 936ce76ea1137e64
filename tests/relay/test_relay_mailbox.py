"""Mailbox semantics against a real relay process on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import random
from pathlib import Path

import aiohttp
import pytest
from relay_harness import RelayProcess, mailbox_id, run_cli

from privastead.errors import RelayRejectedError, RelayUnavailableError
from privastead.relay.api import UploadResult
from privastead.relay.client import RelayClient


async def test_ordering_and_exactly_once_under_concurrent_retrying_uploaders(
    any_relay: RelayProcess,
) -> None:
    box = mailbox_id()
    async with any_relay.client() as owner:
        await owner.create_mailbox(box)
        uploaders, per = 8, 25
        bodies = {
            f"u{u}-{i}": os.urandom(random.randint(1, 3000))
            for u in range(uploaders)
            for i in range(per)
        }
        seqs: dict[str, set[int]] = {k: set() for k in bodies}

        async def uploader(u: int) -> None:
            for i in range(per):
                mid = f"u{u}-{i}"
                # Every message is sent 1-3 times, as a client retrying after a lost answer.
                for _ in range(random.randint(1, 3)):
                    result = await owner.upload(box, bodies[mid], mid)
                    seqs[mid].add(result.seq)

        await asyncio.gather(*(uploader(u) for u in range(uploaders)))
        assert all(len(s) == 1 for s in seqs.values()), "a retry got a second seq"
        page = await owner.list_messages(box, limit=1000)
        stored = [m.seq for m in page.messages]
        assert stored == list(range(1, uploaders * per + 1))  # dense, ordered, no duplicates
        by_seq = {next(iter(s)): mid for mid, s in seqs.items()}
        for m in page.messages:
            assert m.body == bodies[by_seq[m.seq]]
        # Per uploader, its messages keep their sending order.
        for u in range(uploaders):
            mine = [next(iter(seqs[f"u{u}-{i}"])) for i in range(per)]
            assert mine == sorted(mine)
        with pytest.raises(RelayRejectedError) as err:
            await owner.upload(box, b"other bytes", "u0-0")
        assert err.value.status == 409 and err.value.code == "message_id_conflict"


async def test_multi_device_ack_and_deletion(any_relay: RelayProcess) -> None:
    box = mailbox_id()
    async with any_relay.client() as owner:
        await owner.create_mailbox(box)
        phone = await owner.create_device("phone")
        laptop = await owner.create_device("laptop")
        async with any_relay.client(phone.token) as p, any_relay.client(laptop.token) as lap:
            before = await any_relay.blob_names()
            assert await p.register(box) == 0
            assert await lap.register(box) == 0
            big = os.urandom(200_000)  # a blob, not inline
            for i in range(5):
                await owner.upload(box, big if i == 1 else f"m{i}".encode(), f"id{i}")
            assert await p.ack(box, 3) == 3
            info = await owner.mailbox_info(box)
            assert info.count == 5  # the laptop has acked nothing yet
            assert await lap.ack(box, 2) == 2
            info = await owner.mailbox_info(box)
            assert info.count == 3 and info.devices == {phone.device_id: 3, laptop.device_id: 2}
            page = await lap.list_messages(box, after=2)
            assert [m.seq for m in page.messages] == [3, 4, 5]
            with pytest.raises(RelayRejectedError) as err:
                await lap.fetch(box, 1)
            assert err.value.status == 404
            assert await any_relay.blob_names() == before  # seq 2 was a blob: it went with it
            # Acks are cumulative and never move back; acks past the end are refused.
            assert await p.ack(box, 1) == 3
            with pytest.raises(RelayRejectedError) as err:
                await p.ack(box, 99)
            assert err.value.code == "ack_beyond_end"
            # Removing the laptop stops it holding messages back.
            await owner.remove_device(laptop.device_id)
            info = await owner.mailbox_info(box)
            assert info.count == 2 and list(info.devices) == [phone.device_id]
            with pytest.raises(RelayRejectedError) as err:
                await lap.list_messages(box)
            assert err.value.status == 401


async def test_blob_round_trip_and_duplicate_blob(any_relay: RelayProcess) -> None:
    box = mailbox_id()
    data = os.urandom(3 * 1024 * 1024 + 17)
    before = await any_relay.blob_names()
    async with any_relay.client() as owner:
        await owner.create_mailbox(box)
        first = await owner.upload(box, data, "clip-1")
        again = await owner.upload(box, data, "clip-1")
        assert again.duplicate and again.seq == first.seq
        assert await owner.fetch(box, first.seq) == data
        # From the object store by a presigned URL where there is one, else through the relay.
        assert await owner.fetch(box, first.seq, direct=True) == data
        assert len(await any_relay.blob_names() - before) == 1  # the retry's copy was removed
        await owner.delete_mailbox(box)
    assert await any_relay.blob_names() == before  # and the mailbox's went with it


async def test_bodies_up_to_inline_max_are_committed_with_their_row(
    any_relay: RelayProcess,
) -> None:
    """Up to ``inline_max`` (64 KiB) a body is stored in the database with its row, made
    durable by the commit (no file or object); a listing carries bodies up to
    ``list_body_max`` (16 KiB) only, so that a page stays small: the others are fetched."""
    box = mailbox_id()
    bodies = [os.urandom(n) for n in (16 * 1024, 16 * 1024 + 1, 64 * 1024, 64 * 1024 + 1)]
    before = await any_relay.blob_names()
    async with any_relay.client() as owner:
        await owner.create_mailbox(box)
        for i, body in enumerate(bodies):
            await owner.upload(box, body, f"m{i}")
        assert len(await any_relay.blob_names() - before) == 1  # only the one over 64 KiB
        page = await owner.list_messages(box)
        assert [m.body for m in page.messages] == [bodies[0], None, None, None]
        assert [m.size for m in page.messages] == [len(b) for b in bodies]
        for m, body in zip(page.messages, bodies, strict=True):
            assert await owner.fetch(box, m.seq) == body
            assert await owner.fetch(box, m.seq, direct=True) == body
        await owner.delete_mailbox(box)
    assert await any_relay.blob_names() == before


async def test_long_poll_delivers_a_new_message(any_relay: RelayProcess) -> None:
    box = mailbox_id()
    async with any_relay.client() as owner, any_relay.client() as reader:
        await owner.create_mailbox(box)
        poll = asyncio.create_task(reader.list_messages(box, after=0, wait=20))
        await asyncio.sleep(0.3)
        assert not poll.done()
        await owner.upload(box, b"wake up", "w1")
        page = await asyncio.wait_for(poll, 10)
        assert [m.body for m in page.messages] == [b"wake up"]
        # A long-poll with nothing new returns empty after its wait.
        empty = await reader.list_messages(box, after=1, wait=1)
        assert empty.messages == () and empty.last_seq == 1


async def test_websocket_delivery(any_relay: RelayProcess) -> None:
    box, other = mailbox_id(), mailbox_id()
    async with any_relay.client() as owner:
        await owner.create_mailbox(box)
        sub = await owner.subscribe([box, other])
        first = await sub.next_event()
        assert first == {"type": "subscribed", "mailboxes": [box], "missing": [other]}
        for i in range(3):
            await owner.upload(box, b"x", f"ws{i}")
        events = [await asyncio.wait_for(sub.next_event(), 10) for _ in range(3)]
        assert events == [{"type": "message", "mailbox": box, "seq": s} for s in (1, 2, 3)]
        await sub.ws.send_json({"type": "ping"})
        assert await sub.next_event() == {"type": "pong"}
        await sub.close()


async def test_websocket_delivery_of_a_batch(any_relay: RelayProcess) -> None:
    """A batch upload wakes a subscriber with many events at once (written together as
    consecutive frames): each arrives whole and in order, with or without compression."""
    boxes = [mailbox_id(), mailbox_id()]
    async with any_relay.client() as owner:
        for box in boxes:
            await owner.create_mailbox(box)
        plain = await owner.subscribe(boxes)
        url = any_relay.url.replace("http", "ws", 1) + "/v1/ws"
        headers = {"Authorization": f"Bearer {any_relay.owner_token}"}
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(url, headers=headers, compress=15) as packed,
        ):
            await packed.send_json({"type": "subscribe", "mailboxes": boxes})
            assert (await plain.next_event())["type"] == "subscribed"
            assert json.loads((await packed.receive(timeout=10)).data)["type"] == "subscribed"
            items = [(boxes[i % 2], b"x" * i, f"batch{i}", None) for i in range(1, 61)]
            results = await owner.upload_many(items)
            expected = [
                {"type": "message", "mailbox": box, "seq": r.seq}
                for (box, *_), r in zip(items, results, strict=True)
                if isinstance(r, UploadResult)
            ]
            assert len(expected) == 60
            got = [await asyncio.wait_for(plain.next_event(), 10) for _ in expected]
            assert got == expected
            got = [json.loads((await packed.receive(timeout=10)).data) for _ in expected]
            assert got == expected
        await plain.close()


async def test_restart_keeps_everything_acknowledged(relay: RelayProcess) -> None:
    box = mailbox_id()
    async with relay.client() as owner:
        await owner.create_mailbox(box)
        for i in range(10):
            await owner.upload(box, os.urandom(20_000 if i % 3 else 100), f"r{i}")
    relay.restart()
    async with relay.client() as owner:
        page = await owner.list_messages(box)
        assert [m.seq for m in page.messages] == list(range(1, 11))
        assert (await owner.upload(box, b"after", "r10")).seq == 11


async def test_kill9_during_uploads_loses_nothing_acknowledged(relay: RelayProcess) -> None:
    box = mailbox_id()
    acknowledged: dict[str, tuple[int, bytes]] = {}
    async with relay.client() as owner:
        await owner.create_mailbox(box)

    async def uploader(u: int) -> None:
        async with RelayClient(relay.url, relay.owner_token) as c:
            for i in range(10_000):
                mid = f"k{u}-{i}"
                # A blob file, a body stored with its row near inline_max, small ones.
                body = os.urandom((100_000, 50_000, 500, 500)[i % 4])
                try:
                    result = await c.upload(box, body, mid)
                except RelayUnavailableError:
                    return
                acknowledged[mid] = (result.seq, body)

    tasks = [asyncio.create_task(uploader(u)) for u in range(4)]
    await asyncio.sleep(1.5)
    relay.kill9()  # in the middle of uploads, some of them blobs being streamed
    await asyncio.gather(*tasks)
    assert len(acknowledged) > 10
    relay.start()
    async with relay.client() as owner:
        page = await owner.list_messages(box, limit=1000)
        seqs = [m.seq for m in page.messages]
        while page.messages and len(page.messages) == 1000:
            page = await owner.list_messages(box, after=seqs[-1], limit=1000)
            seqs += [m.seq for m in page.messages]
        assert seqs == list(range(1, len(seqs) + 1))  # no hole, nothing partial
        for seq, body in acknowledged.values():
            assert await owner.fetch(box, seq) == body
        # At most the uploads in flight at the kill were stored without an answer.
        assert len(seqs) - len(acknowledged) <= 4
    tmp = relay.data_dir / "blobs" / "tmp"
    assert list(tmp.iterdir()) == []  # half-written uploads were cleared at start-up


async def test_graceful_stop_finishes_in_flight_upload(relay: RelayProcess) -> None:
    box = mailbox_id()
    async with relay.client() as owner:
        await owner.create_mailbox(box)
        body = os.urandom(2 * 1024 * 1024)

        async def slow_body() -> object:
            for i in range(0, len(body), 256 * 1024):
                yield body[i : i + 256 * 1024]
                await asyncio.sleep(0.1)

        upload = asyncio.create_task(owner.upload(box, slow_body(), "slow"))
        await asyncio.sleep(0.3)
        assert relay.proc is not None
        relay.proc.terminate()  # SIGTERM while the body is still arriving
        result = await asyncio.wait_for(upload, 20)
        assert result.seq == 1
        assert relay.proc.wait(timeout=30) == 0
        relay.proc = None
    relay.start()
    async with relay.client() as owner:
        assert await owner.fetch(box, 1) == body


async def test_batch_upload_is_exactly_once_per_item(any_relay: RelayProcess) -> None:
    a, b, foreign = mailbox_id(), mailbox_id(), mailbox_id()
    async with any_relay.client() as owner:
        await owner.create_mailbox(a)
        await owner.create_mailbox(b)
        await owner.upload(a, b"single", "s0")
        items = [(a if i % 2 else b, f"m{i}".encode(), f"b{i}", None) for i in range(10)]
        first = await owner.upload_many(items)
        assert [r.seq for r in first] == [1, 2, 2, 3, 3, 4, 4, 5, 5, 6]  # type: ignore[union-attr]
        again = await owner.upload_many(items)  # the whole batch retried
        assert [(r.seq, r.duplicate) for r in again] == [  # type: ignore[union-attr]
            (r.seq, True)
            for r in first  # type: ignore[union-attr]
        ]
        mixed = await owner.upload_many(
            [
                (a, b"new", "b10", None),
                (foreign, b"x", "f", None),  # not a mailbox of ours
                (a, b"changed", "b1", None),  # id reused with other bytes
            ]
        )
        assert mixed[0].seq == 7  # type: ignore[union-attr]
        assert [getattr(r, "code", None) for r in mixed[1:]] == [
            "mailbox_not_found",
            "message_id_conflict",
        ]
        # A malformed item refuses the whole request: nothing of it is stored.
        with pytest.raises(RelayRejectedError) as err:
            await owner.upload_many([(a, b"fine", "b11", None), (b, b"y" * 20_000, "big", None)])
        assert (err.value.status, err.value.code) == (413, "body_too_large")
        page = await owner.list_messages(a)
        assert [m.body for m in page.messages] == [
            b"single",
            b"m1",
            b"m3",
            b"m5",
            b"m7",
            b"m9",
            b"new",
        ]


async def test_logs_hold_no_tokens_and_no_payloads(tmp_path: Path) -> None:
    relay = RelayProcess(
        data_dir=tmp_path / "data", log_level="DEBUG", config_text='log_format = "json"\n'
    )
    relay.owner_token = run_cli("accounts", "add", "home", data_dir=relay.data_dir).split()[-1]
    relay.start()
    try:
        box = mailbox_id()
        secret_body = b"PLAINTEXT-MARKER-" + os.urandom(8).hex().encode()
        async with relay.client() as owner:
            await owner.create_mailbox(box)
            device = await owner.create_device("phone")
            await owner.upload(box, secret_body, "m1", push=b"PUSH-MARKER")
            await owner.upload(box, secret_body * 2000, "m2")  # a blob
        async with relay.client("pst_0123456789abcdef_" + "x" * 43) as bad:
            with pytest.raises(RelayRejectedError):
                await bad.me()
    finally:
        relay.stop()
    log = (tmp_path / "relay.log").read_text()
    assert '"level": "debug"' in log or '"level":"debug"' in log  # JSON lines, debug on
    for secret in (
        relay.owner_token,
        device.token,
        "x" * 43,
        secret_body.decode(),
        "PUSH-MARKER",
        box,
    ):
        assert secret not in log
