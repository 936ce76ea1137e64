"""HAProxy in front of three real relay processes: requests spread over them, live channels
meet on one process whichever way their parties connect, and a relay killed with SIGKILL is
routed around (its live sessions move to another process when their parties reconnect)."""

from __future__ import annotations

import asyncio
import os
import re
import urllib.request

import aiohttp
import pytest

from privastead.devcluster.haproxy import config_text
from support.haproxy import OPERATOR_TOKEN, RelayCluster


def websockets_of(url: str) -> int:
    """How many WebSockets one relay process holds (its own /metrics, not through HAProxy)."""
    request = urllib.request.Request(
        url + "/metrics", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as r:
        text = r.read().decode()
    match = re.search(r"^relay_websockets (\d+)", text, re.M)
    assert match, text
    return int(match.group(1))


def mailbox_requests_of(url: str) -> int:
    """Mailbox requests one relay process served (health checks, also counted, excluded)."""
    request = urllib.request.Request(
        url + "/metrics", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as r:
        text = r.read().decode()
    lines = re.findall(r"^relay_requests_total\{(.*)\} (\S+)$", text, re.M)
    return sum(int(float(value)) for labels, value in lines if "/v1/mailboxes/" in labels)


def headers(cluster: RelayCluster) -> dict[str, str]:
    return {"Authorization": f"Bearer {cluster.owner_token}"}


@pytest.mark.garage  # relays on PostgreSQL + Garage
async def test_any_relay_serves_any_request(relay_cluster: RelayCluster) -> None:
    mailbox = os.urandom(16).hex()
    async with aiohttp.ClientSession(headers=headers(relay_cluster)) as http:
        base = f"{relay_cluster.url}/v1/mailboxes/{mailbox}"
        async with http.put(base) as r:
            assert r.status == 201
        for i in range(30):
            async with http.post(
                base + "/messages",
                data=b"ciphertext %d" % i,
                headers={"Privastead-Message-Id": f"m{i}"},
            ) as r:
                assert r.status == 201, await r.text()
        async with http.get(base + "/messages", params={"limit": "100"}) as r:
            page = await r.json()
    assert [m["seq"] for m in page["messages"]] == list(range(1, 31))
    # Least-connections over idle relays spreads sequential requests: each process served some.
    served = [mailbox_requests_of(relay.url) for relay in relay_cluster.relays]
    assert sum(served) == 32 and all(served), served


async def _live(http: aiohttp.ClientSession, url: str, session: str, frames: int) -> list[bytes]:
    """A publisher and two viewers of one session, each on its own connection."""
    live = f"{url}/v1/live/{session}"
    viewers = [await http.ws_connect(live + "?role=viewer") for _ in range(2)]
    publisher = await http.ws_connect(live + "?role=publisher")
    try:
        for viewer in viewers:  # "waiting", then "publisher_joined"
            while (await viewer.receive_json(timeout=10))["type"] != "publisher_joined":
                pass
        for i in range(frames):
            await publisher.send_bytes(b"frame %d" % i)
        received: list[bytes] = []
        for viewer in viewers:
            got = []
            while len(got) < frames:
                msg = await viewer.receive(timeout=10)
                if msg.type == aiohttp.WSMsgType.BINARY:
                    got.append(msg.data)
            received += got
        return received
    finally:
        for ws in (publisher, *viewers):
            await ws.close()


@pytest.mark.garage  # relays on PostgreSQL + Garage
async def test_live_sessions_meet_on_one_relay_through_the_balancer(
    relay_cluster: RelayCluster,
) -> None:
    async with aiohttp.ClientSession(headers=headers(relay_cluster)) as http:
        for _ in range(4):
            session = os.urandom(16).hex()
            received = await _live(http, relay_cluster.url, session, frames=5)
            assert received == [b"frame %d" % i for i in range(5)] * 2


@pytest.mark.garage  # relays on PostgreSQL + Garage
async def test_a_killed_relay_is_routed_around(relay_cluster: RelayCluster) -> None:
    session = os.urandom(16).hex()
    async with aiohttp.ClientSession(headers=headers(relay_cluster)) as http:
        live = f"{relay_cluster.url}/v1/live/{session}"
        publisher = await http.ws_connect(live + "?role=publisher")
        holder = next(r for r in relay_cluster.relays if websockets_of(r.url) == 1)
        holder.kill9()  # the relay holding the live session dies mid-session
        msg = await publisher.receive(timeout=10)
        while msg.type == aiohttp.WSMsgType.TEXT:  # {"type": "viewers", ...} before the end
            msg = await publisher.receive(timeout=10)
        assert msg.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.ERROR,
        )
        # Plain requests keep working at once: refused connections are retried elsewhere.
        for _ in range(20):
            async with http.get(f"{relay_cluster.url}/v1/me") as r:
                assert r.status == 200
        # Both parties reconnect to the same session id and meet on a surviving relay, once
        # the health checks took the dead one out of the hash.
        name = f"relay{holder.index}"
        await asyncio.to_thread(relay_cluster.balancer.wait_state, "relay_live", name, "DOWN")
        received = await _live(http, relay_cluster.url, session, frames=3)
        assert received == [b"frame %d" % i for i in range(3)] * 2
        survivors = [r for r in relay_cluster.relays if r is not holder]
        assert sum(websockets_of(r.url) for r in survivors) == 0  # all closed again
        holder.start()
        await asyncio.to_thread(relay_cluster.balancer.wait_state, "relay_live", name, "UP")


def test_config_routes_live_by_consistent_hash_and_binds_loopback() -> None:
    text = config_text(8000, [8001, 8002], s3_port=9000, garage=[(9001, 9101), (9002, 9102)])
    live = text[text.index("backend relay_live") :]
    assert "balance uri path-only" in live and "hash-type consistent" in live
    assert re.findall(r"bind (\S+)", text) == ["127.0.0.1:8000", "127.0.0.1:9000"]
    assert "server garage1 127.0.0.1:9002 check port 9102" in text
