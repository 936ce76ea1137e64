"""Faults of a relay cluster as deployed: three relay processes behind HAProxy on PostgreSQL
and a three-node Garage. A relay killed with SIGKILL in the middle of receiving a clip loses
nothing acknowledged and the client's retry (same message id) lands exactly once through
another process; a PostgreSQL restart under running relays is ridden out (pooled connections
replaced, the wake-up bus reconnected)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from privastead import compat
from privastead.devcluster.postgres import PostgresServer
from privastead.errors import RelayUnavailableError
from privastead.relay.api import HEADER_MESSAGE_ID
from privastead.relay.client import RelayClient
from support.haproxy import RelayCluster, start_relay_cluster
from support.relay_storage import storage_for

pytestmark = pytest.mark.garage


async def _holder(cluster: RelayCluster) -> int:
    """The relay process HAProxy sent the request in progress to (its runtime API)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        servers = await asyncio.to_thread(cluster.balancer.streams_on, "relay_any")
        if len(servers) == 1:
            return int(servers[0].removeprefix("relay"))
        await asyncio.sleep(0.05)
    raise AssertionError("no relay holds the upload")


async def _slow(body: bytes, chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(body), chunk):
        yield body[i : i + chunk]
        await asyncio.sleep(0.05)


async def _retrying(what: Callable[[], object], within: float = 30.0) -> object:
    """What a client does: retry a failed request (same message id) until it succeeds."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await what()  # type: ignore[misc]
        except (RelayUnavailableError, aiohttp.ClientError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def test_a_relay_killed_mid_upload_loses_nothing_and_the_retry_lands_once(
    relay_cluster: RelayCluster,
) -> None:
    box = os.urandom(16).hex()
    clip = os.urandom(3 * 1024 * 1024)
    async with RelayClient(relay_cluster.url, relay_cluster.owner_token) as hub:
        await hub.create_mailbox(box)
        first = (await hub.upload(box, b"before", "m0")).seq
        headers = {
            "Authorization": f"Bearer {relay_cluster.owner_token}",
            HEADER_MESSAGE_ID: "clip-1",
            "Content-Type": "application/octet-stream",
        }
        url = f"{relay_cluster.url}/v1/mailboxes/{box}/messages"
        async with aiohttp.ClientSession() as http:

            async def post() -> int | None:
                try:
                    async with http.post(url, data=_slow(clip), headers=headers) as r:
                        return r.status
                except aiohttp.ClientError:
                    return None  # the connection was cut

            sending = asyncio.create_task(post())
            holder = await _holder(relay_cluster)
            relay_cluster.relays[holder - 1].kill9()  # mid-body: nothing stored yet
            status = await sending
        assert status is None or status >= 500, status  # never acknowledged
        # The client retries with the same message id: another process stores it.
        result = await _retrying(lambda: hub.upload(box, clip, "clip-1"))
        again = await hub.upload(box, clip, "clip-1")
        assert again.duplicate and again.seq == result.seq == first + 1  # type: ignore[attr-defined]
        page = await hub.list_messages(box)
        assert [m.seq for m in page.messages] == [first, first + 1]  # once, nothing lost
        assert await hub.fetch(box, first + 1) == clip
        # One object in the store: the killed process never sent its half-received body on.
        assert len(await relay_cluster.storage.blob_names(Path())) == 1


@pytest.fixture
def cluster_on_own_postgresql(
    request: pytest.FixtureRequest,
    postgres_factory: Callable[[], PostgresServer],
    tmp_path: Path,
) -> Iterator[tuple[PostgresServer, RelayCluster]]:
    """Two relays behind HAProxy on a PostgreSQL server of this test's own (to restart)."""
    server = postgres_factory()
    with storage_for("postgresql", request, server) as storage:
        cluster = start_relay_cluster(tmp_path, storage, count=2)
        try:
            yield server, cluster
        finally:
            cluster.stop()


async def test_a_postgresql_restart_is_ridden_out(
    cluster_on_own_postgresql: tuple[PostgresServer, RelayCluster],
) -> None:
    server, cluster = cluster_on_own_postgresql
    a, b = (RelayClient(r.url, cluster.owner_token) for r in cluster.relays)
    async with a, b:
        box = os.urandom(16).hex()
        await a.create_mailbox(box)
        await a.upload(box, b"before", "m1")
        await asyncio.to_thread(server.restart)
        # Uploads through one process are served again (a request that met the restart got
        # 503 and is retried by the client, as here).
        await _retrying(lambda: a.upload(box, b"after", "m2"))
        # The bus reconnected: a long-poll on the other process wakes for a new message.
        poll = asyncio.create_task(b.list_messages(box, after=2, wait=20))
        await asyncio.sleep(0.5)
        await _retrying(lambda: a.upload(box, b"woken", "m3"))
        page = await asyncio.wait_for(poll, 20)
        assert [m.body for m in page.messages] == [b"woken"]
        listed = await a.list_messages(box)
        assert [m.body for m in listed.messages] == [b"before", b"after", b"woken"]


async def _answer_in_outage(
    session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, str]:
    """A request to a relay while PostgreSQL is down: its status and JSON error code. It
    must be answered (the bound is far above the pool's retries and connect timeout)."""
    async with (
        compat.timeout(30),  # a hang fails the test here
        session.request(method, url, **kwargs) as r,
    ):
        return r.status, (await r.json())["error"]["code"]


async def test_postgresql_down_and_back_under_uploads_and_a_subscriber(
    cluster_on_own_postgresql: tuple[PostgresServer, RelayCluster],
) -> None:
    """A client uploads without pause through one relay and another listens on the other
    (a WebSocket subscription and long-polls) while PostgreSQL stops and starts again.
    During the outage every request is answered with a JSON 503, never a 500 or a hang;
    afterwards both processes serve again unaided, every acknowledged upload is there once
    and the subscriber is woken by new messages again."""
    server, cluster = cluster_on_own_postgresql
    one, two = cluster.relays
    box = os.urandom(16).hex()
    acked: dict[str, int] = {}
    outage = asyncio.Event()
    stop = asyncio.Event()

    async with RelayClient(one.url, cluster.owner_token) as up:
        await up.create_mailbox(box)

        async def uploader() -> None:
            n = 0
            while not stop.is_set():
                mid = f"m{n:04d}"
                try:  # the same id until acknowledged, as the hub's outbox does
                    acked[mid] = (await up.upload(box, mid.encode(), mid)).seq
                    n += 1
                except RelayUnavailableError:
                    outage.set()
                    await asyncio.sleep(0.2)
                await asyncio.sleep(0.02)

        async with RelayClient(two.url, cluster.owner_token) as listener:
            sub = await listener.subscribe([box])
            assert (await sub.next_event())["type"] == "subscribed"
            uploading = asyncio.create_task(uploader())
            await asyncio.sleep(1.0)
            await asyncio.to_thread(server.stop)
            headers = {"Authorization": f"Bearer {cluster.owner_token}"}
            async with aiohttp.ClientSession(headers=headers) as s:
                await asyncio.sleep(2.5)  # past the token cache: authentication needs the database
                for relay in (one, two):
                    base = f"{relay.url}/v1/mailboxes/{box}/messages"
                    assert await _answer_in_outage(
                        s, "POST", base, data=b"x", headers={HEADER_MESSAGE_ID: "outage"}
                    ) == (503, "storage_unavailable")
                    assert await _answer_in_outage(s, "GET", base + "?after=0&wait=5") == (
                        503,
                        "storage_unavailable",
                    )
            await asyncio.wait_for(outage.wait(), 30)  # the uploader met the outage too
            await asyncio.to_thread(server.start)
            # The uploader goes on by itself; new messages wake the subscriber on the other
            # process (after a resync: the bus reconnected).
            last = max(acked.values(), default=0)
            woken = None
            async with compat.timeout(30):
                while woken is None:
                    event = await sub.next_event()
                    if event["type"] == "message" and event["seq"] > last:
                        woken = event["seq"]
            stop.set()
            await uploading
            listed: dict[str, int] = {}
            while True:
                page = await listener.list_messages(box, after=max(listed.values(), default=0))
                if not page.messages:
                    break
                listed.update((bytes(m.body or b"").decode(), m.seq) for m in page.messages)
            assert listed == acked  # each acknowledged upload once, at its seq
            assert len(acked) > 10
            await sub.close()
    logs = "".join((r.logs / f"relay{r.index}.log").read_text() for r in cluster.relays)
    assert "unexpected failure" not in logs  # no request got a 500
