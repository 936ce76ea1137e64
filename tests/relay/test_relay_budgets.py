"""Per-account and per-token budgets, against a real relay process with small shares: one
household (or one of its tokens) that takes all it can gets its own share and is refused
past it (429, before any work), while another household keeps being served."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import aiohttp
import psutil
import pytest
import requests
from relay_harness import (
    OPERATOR_TOKEN,
    RelayProcess,
    mailbox_id,
    make_process,
    run_cli,
    slow_upload,
)

from privastead.errors import RelayRejectedError
from privastead.relay.client import RelayClient

MiB = 1024 * 1024
CONFIG = """
[budgets]
sockets_per_account = 4
sockets_per_token = 3
waits_per_account = 2
waits_per_token = 2
bodies_per_account = 2
bodies_per_token = 2
live_sessions_per_account = 2
live_viewer_queue_bytes = 1048576
live_account_queue_bytes = 2097152
"""


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RelayProcess, str]]:
    relay = make_process(tmp_path_factory.mktemp("budgets"), CONFIG)
    neighbour = run_cli("accounts", "add", "neighbour", data_dir=relay.data_dir)
    try:
        yield relay, neighbour.strip().splitlines()[-1]
    finally:
        relay.kill9()


def _gauge(relay: RelayProcess, name: str) -> float:
    text = requests.get(
        relay.url + "/metrics", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}, timeout=10
    ).text
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name)))


def _code(err: pytest.ExceptionInfo[RelayRejectedError]) -> tuple[int, str]:
    return err.value.status, err.value.code


async def _neighbour_is_served(relay: RelayProcess, token: str) -> None:
    """The other household: a socket, a long-poll answered by an upload, a live viewer."""
    box = mailbox_id()
    async with RelayClient(relay.url, token) as n:
        await n.create_mailbox(box)
        sub = await n.subscribe([box])
        assert (await sub.next_event())["type"] == "subscribed"
        poll = asyncio.create_task(n.list_messages(box, wait=10))
        await asyncio.sleep(0.2)
        await n.upload(box, b"hello", "h")
        assert len((await asyncio.wait_for(poll, 10)).messages) == 1
        assert (await asyncio.wait_for(sub.next_event(), 10))["seq"] == 1
        viewer = await n.live(mailbox_id())
        assert json.loads((await viewer.receive()).data) == {"type": "waiting"}
        await viewer.close()
        await sub.close()


async def test_sockets_per_token_and_per_account(homes: tuple[RelayProcess, str]) -> None:
    relay, neighbour = homes
    async with relay.client() as owner:
        phone = await owner.create_device("phone")
    async with relay.client(phone.token) as p, relay.client() as o:
        mine = [await p.subscribe([]) for _ in range(3)]
        with pytest.raises(RelayRejectedError) as err:
            await p.subscribe([])  # the token's share
        assert err.value.status == 429
        mine.append(await o.subscribe([]))  # another token of the account: its 4th
        with pytest.raises(RelayRejectedError) as err:
            await o.live(mailbox_id())  # the account's share (live sockets count too)
        assert err.value.status == 429
        await _neighbour_is_served(relay, neighbour)
        await mine.pop().close()
        await asyncio.sleep(0.3)
        mine.append(await o.subscribe([]))  # a closed socket gives its slot back
        for sub in mine:
            await sub.close()


async def test_long_polls_per_account(homes: tuple[RelayProcess, str]) -> None:
    relay, neighbour = homes
    box = mailbox_id()
    async with relay.client() as o:
        await o.create_mailbox(box)
        polls = [asyncio.create_task(o.list_messages(box, wait=30)) for _ in range(2)]
        await asyncio.sleep(0.3)
        with pytest.raises(RelayRejectedError) as err:
            await o.list_messages(box, wait=30)
        assert _code(err) == (429, "too_many_waits")
        assert (await o.list_messages(box)).messages == ()  # a plain listing is not a wait
        await _neighbour_is_served(relay, neighbour)
        await o.upload(box, b"x", "x")
        for poll in polls:
            assert len((await asyncio.wait_for(poll, 10)).messages) == 1


async def test_bodies_in_flight_per_account(homes: tuple[RelayProcess, str]) -> None:
    relay, neighbour = homes
    box = mailbox_id()
    async with relay.client() as o:
        await o.create_mailbox(box)
        slow = [slow_upload(relay.port, relay.owner_token, box, f"s{i}") for i in range(2)]
        try:
            await asyncio.sleep(0.3)
            with pytest.raises(RelayRejectedError) as err:
                await o.upload(box, b"one more", "more")
            assert _code(err) == (429, "too_many_uploads")
            with pytest.raises(RelayRejectedError) as err:
                await o.create_device("json bodies too")
            assert _code(err) == (429, "too_many_uploads")
            await _neighbour_is_served(relay, neighbour)
        finally:
            for s in slow:
                s.close()
        await asyncio.sleep(0.3)
        assert (await o.upload(box, b"one more", "more")).seq == 1  # slots given back


async def test_live_sessions_per_account(homes: tuple[RelayProcess, str]) -> None:
    relay, neighbour = homes
    async with relay.client() as o:
        first = await o.live(mailbox_id())
        second = await o.live(mailbox_id(), "publisher")
        with pytest.raises(RelayRejectedError) as err:
            await o.live(mailbox_id())
        assert err.value.status == 429
        await _neighbour_is_served(relay, neighbour)
        await first.close()
        await second.close()


async def test_stalled_viewers_hold_only_their_accounts_bytes(
    homes: tuple[RelayProcess, str],
) -> None:
    """Two sessions, each with a viewer that never reads: the publishers keep sending and
    are told their viewers lag; the relay holds at most the account's share."""
    relay, _ = homes
    assert relay.proc is not None
    rss = psutil.Process(relay.proc.pid).memory_info().rss
    async with relay.client() as o:
        sessions = [mailbox_id(), mailbox_id()]
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as s:
            headers = {"Authorization": f"Bearer {relay.owner_token}"}
            url = relay.url.replace("http", "ws") + "/v1/live/"
            # Viewers that are never read.
            viewers = [
                await s.ws_connect(url + sid + "?role=viewer", headers=headers, max_msg_size=0)
                for sid in sessions
            ]
            lagging = 0
            for sid in sessions:
                pub = await o.live(sid, "publisher")
                held = await _queued(relay)
                await _publish(pub, 80)
                while True:
                    msg = await asyncio.wait_for(pub.receive(), 10)
                    if json.loads(msg.data)["type"] == "lagging":
                        lagging += 1
                        break
                # Frames are dropped as soon as a burst outruns the viewer's queue, while the
                # socket buffers between the relay and the viewer (the kernel sizes them:
                # megabytes on some machines) may still take what was queued. So the
                # publisher goes on until those are full and the relay holds frames itself.
                for _ in range(50):
                    await asyncio.sleep(0.1)
                    if await _queued(relay) > held:
                        break
                    await _publish(pub, 8)
                await pub.close()
            assert lagging == 2
            queued = await _queued(relay)
            assert 0 < queued <= 2 * MiB  # live_account_queue_bytes
            grown = psutil.Process(relay.proc.pid).memory_info().rss - rss
            assert grown < 40 * MiB, f"the relay grew by {grown / MiB:.0f} MiB"
            for v in viewers:
                await v.close()


async def _queued(relay: RelayProcess) -> float:
    """Bytes of live frames the relay holds for viewers, all sessions."""
    return await asyncio.to_thread(_gauge, relay, "relay_live_queued_bytes")


async def _publish(pub: aiohttp.ClientWebSocketResponse, frames: int) -> None:
    frame = b"\x00" * (256 * 1024)
    for _ in range(frames):
        await pub.send_bytes(frame)
