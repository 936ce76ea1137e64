"""Wake-up pushes: FCM through firebase-admin against a local stand-in for Google, and a
UnifiedPush-style webhook against a local receiver.

Google's real endpoints (oauth2.googleapis.com, fcm.googleapis.com) cannot be reached from
this machine, so the stand-in (``support/fcm_standin.py``) plays both: it hands out an OAuth
token for the signed JWT of our throw-away service account, then accepts FCM v1
``messages:send`` calls.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import ipaddress
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web
from aiohttp.test_utils import TestServer
from relay_harness import (
    OPERATOR_TOKEN,
    InProcess,
    mailbox_id,
    make_process,
    start_inprocess,
    wait_until,
)

from privastead.clock import FakeClock
from privastead.errors import RelayRejectedError
from privastead.relay import accounts
from privastead.relay.config import PushConfig, RelayConfig
from privastead.relay.webhook import TargetPolicy
from support.fcm_standin import GoogleStandIn, service_account
from support.fcm_standin import target as _target


@pytest.fixture
async def google() -> Any:
    stand_in = GoogleStandIn()
    await stand_in.server.start_server()
    yield stand_in
    await stand_in.server.close()


async def _relay(tmp_path: Path, google: GoogleStandIn) -> InProcess:
    creds = tmp_path / "fcm.json"
    service_account(creds, str(google.server.make_url("/token")))
    push = PushConfig(
        fcm_credentials_file=creds,
        fcm_endpoint=(
            f"http://127.0.0.1:{google.server.port}/v1/projects/{{project}}/messages:send"
        ),
        webhook_allow_http=True,
        webhook_allow_networks=("127.0.0.0/8",),  # the local receivers
        retries=3,
        retry_delay_seconds=0.01,
    )
    return await start_inprocess(
        tmp_path, FakeClock(), dataclasses.replace(RelayConfig(), push=push)
    )


async def test_fcm_data_only_push_with_retry(tmp_path: Path, google: GoogleStandIn) -> None:
    relay = await _relay(tmp_path, google)
    try:
        box = mailbox_id()
        async with relay.client() as hub:
            await hub.create_mailbox(box)
            phone = await hub.create_device("phone")
            async with relay.client(phone.token) as p:
                await p.register(box)
                await p.set_push(fcm_token="phone-fcm-token")
            google.fail_next = 1  # the first send is refused (quota): retried by the relay
            ciphertext = bytes(range(200))
            result = await hub.upload(box, b"clip bytes", "e1", push=ciphertext)
            assert result.seq == 1  # the upload did not wait for Google
            await wait_until(lambda: len(google.sends) == 1)
            message = google.sends[0]["message"]
            assert _target(message) == "phone-fcm-token"
            assert base64.b64decode(message["data"]["body"]) == ciphertext
            assert "notification" not in message  # data-only: nothing for Google to show
            assert set(message["data"]) == {"body"}
            assert google.auth_headers == ["Bearer stand-in-access-token"]
            await hub.upload(box, b"more", "e2", push=b"")  # an empty wake-up
            await wait_until(lambda: len(google.sends) == 2)
            assert google.sends[1]["message"].get("data", {}) == {}
            await hub.upload(box, b"quiet", "e3")  # no push header: no push
            await asyncio.sleep(0.3)
            assert len(google.sends) == 2
        m = relay.state.metrics
        assert m.value("relay_push_total", channel="fcm", outcome="sent") == 2
        assert m.value("relay_push_total", channel="fcm", outcome="retried") == 1
    finally:
        await relay.server.close()


async def test_fcm_unregistered_token_is_not_retried(tmp_path: Path, google: GoogleStandIn) -> None:
    relay = await _relay(tmp_path, google)
    try:
        box = mailbox_id()
        async with relay.client() as hub:
            await hub.create_mailbox(box)
            dev = await hub.create_device()
            async with relay.client(dev.token) as d:
                await d.register(box)
                await d.set_push(fcm_token="gone-device")
            await hub.upload(box, b"x", "x", push=b"p")
            m = relay.state.metrics
            await wait_until(
                lambda: m.value("relay_push_total", channel="fcm", outcome="rejected") == 1
            )
            assert m.value("relay_push_total", channel="fcm", outcome="retried") == 0
    finally:
        await relay.server.close()


async def test_webhook_push_with_retry(tmp_path: Path, google: GoogleStandIn) -> None:
    received: list[tuple[str, bytes]] = []
    failures = {"left": 1}

    async def endpoint(request: web.Request) -> web.Response:
        if failures["left"]:
            failures["left"] -= 1
            return web.Response(status=502)
        received.append((request.headers["Content-Type"], await request.read()))
        return web.Response(status=201)

    app = web.Application()
    app.router.add_post("/up/{id}", endpoint)
    receiver = TestServer(app, host="127.0.0.1")
    await receiver.start_server()
    relay = await _relay(tmp_path, google)
    try:
        box = mailbox_id()
        async with relay.client() as hub:
            await hub.create_mailbox(box)
            laptop = await hub.create_device("laptop")
            async with relay.client(laptop.token) as lap:
                await lap.register(box)
                await lap.set_push(webhook_url=str(receiver.make_url("/up/abc")))
                # The uploader is not woken by its own message.
                await lap.upload(box, b"from the laptop", "own", push=b"ignored")
            await hub.upload(box, b"event", "ev", push=b"\x01opaque\x02")
            await wait_until(lambda: len(received) == 1)
            assert received == [("application/octet-stream", b"\x01opaque\x02")]
            m = relay.state.metrics
            assert m.value("relay_push_total", channel="webhook", outcome="retried") == 1
            assert m.value("relay_push_total", channel="webhook", outcome="sent") == 1
            assert google.sends == []  # the laptop registered no FCM token
    finally:
        await relay.server.close()
        await receiver.close()


async def test_webhook_must_be_https_by_default(inproc: InProcess) -> None:
    from privastead.errors import RelayRejectedError

    async with inproc.client() as c:
        with pytest.raises(RelayRejectedError) as err:
            await c.set_push(webhook_url="http://10.0.0.1/hook")
        assert err.value.code == "bad_webhook_url"
        await c.set_push(webhook_url="https://push.example.org/up/1")


async def test_a_device_reads_back_its_own_push_targets(inproc: InProcess) -> None:
    async with inproc.client() as owner:
        phone = await owner.create_device("phone")
        laptop = await owner.create_device("laptop")
    async with inproc.client(phone.token) as p, inproc.client(laptop.token) as lap:
        assert await p.get_push() == {
            "device_id": phone.device_id,
            "fcm_token_hint": None,
            "webhook_url": None,
        }
        await p.set_push(fcm_token="fcm-registration-token-0123456789")
        await lap.set_push(webhook_url="https://push.example.org/up/laptop")
        mine = await p.get_push()
        # The token is not echoed whole: a leaked device token does not hand out the address.
        assert mine["fcm_token_hint"] == "456789" and mine["webhook_url"] is None
        assert (await lap.get_push())["webhook_url"] == "https://push.example.org/up/laptop"
        assert (await lap.get_push())["fcm_token_hint"] is None  # each device its own
        await p.set_push(fcm_token=None, webhook_url=None)  # unregister
        assert (await p.get_push())["fcm_token_hint"] is None


async def _receiver(received: list[bytes]) -> TestServer:
    async def endpoint(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(status=201)

    app = web.Application()
    app.router.add_post("/{tail:.*}", endpoint)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


PRIVATE_TARGETS = [
    "http://127.0.0.1:{port}/up",
    "http://[::1]:{port}/up",
    "http://[::ffff:127.0.0.1]:{port}/up",
    "http://[::ffff:7f00:1]:{port}/up",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/up",
    "http://100.64.0.1/up",
    "http://[fd00::1]/up",
    "http://[fe80::1]/up",
    "http://[2002:7f00:1::1]/up",
    "http://[64:ff9b::a00:1]/up",
    "http://0.0.0.0:{port}/up",
]


async def test_webhooks_never_reach_private_addresses(tmp_path: Path) -> None:
    """A real relay, plain HTTP allowed but no private network: literal private addresses
    are refused at registration, a name that resolves to loopback at send time."""
    received: list[bytes] = []
    receiver = await _receiver(received)
    relay = await asyncio.to_thread(
        make_process,
        tmp_path,
        "[push]\nwebhook_allow_http = true\nretries = 0\n",
    )
    try:
        box = mailbox_id()
        async with relay.client() as hub:
            await hub.create_mailbox(box)
            phone = await hub.create_device("phone")
        async with relay.client(phone.token) as p:
            await p.register(box)
            for url in PRIVATE_TARGETS:
                with pytest.raises(RelayRejectedError) as err:
                    await p.set_push(webhook_url=url.format(port=receiver.port))
                assert err.value.code == "bad_webhook_url", url
            # A name is accepted, then resolved when a push goes out: loopback, refused.
            await p.set_push(webhook_url=f"http://localhost:{receiver.port}/up")
        async with relay.client() as hub:
            await hub.upload(box, b"event", "ev", push=b"wake")

        def outcome() -> str:
            text = requests.get(
                relay.url + "/metrics",
                headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
                timeout=10,
            ).text
            return "\n".join(line for line in text.splitlines() if 'channel="webhook"' in line)

        deadline = asyncio.get_running_loop().time() + 10
        while "failed" not in await asyncio.to_thread(outcome):
            assert asyncio.get_running_loop().time() < deadline, "the push never ended"
            await asyncio.sleep(0.1)
        assert "sent" not in await asyncio.to_thread(outcome)
        assert received == []
    finally:
        relay.kill9()
        await receiver.close()


def test_public_address_policy() -> None:
    policy = TargetPolicy(("192.168.7.0/24",))
    public = ["8.8.8.8", "2606:4700::1111", "192.168.7.9", "::ffff:192.168.7.9"]
    private = [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "198.18.0.1",
        "::1",
        "::",
        "fc00::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "2002:7f00:1::1",
        "64:ff9b::7f00:1",
        "2001:db8::1",
    ]
    for address in public:
        assert policy.permits(ipaddress.ip_address(address)), address
    for address in private:
        assert not policy.permits(ipaddress.ip_address(address)), address


async def test_a_silent_webhook_does_not_delay_other_households(tmp_path: Path) -> None:
    """Account A's webhook accepts TCP and never answers; A floods pushes. Account B's
    wake-up still goes out at once: A holds only its own share of the push slots."""
    silent_connections: list[asyncio.StreamWriter] = []

    async def accept_and_hang(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        silent_connections.append(w)

    silent = await asyncio.start_server(accept_and_hang, "127.0.0.1", 0)
    silent_port = silent.sockets[0].getsockname()[1]
    received: list[bytes] = []
    receiver = await _receiver(received)
    push = PushConfig(
        webhook_allow_http=True,
        webhook_allow_networks=("127.0.0.0/8",),
        retries=0,
        timeout_seconds=30,
    )
    relay = await start_inprocess(
        tmp_path, FakeClock(), dataclasses.replace(RelayConfig(), push=push)
    )
    try:
        now = relay.clock.time()
        other_owner = await relay.state.db.run(
            lambda c: (
                accounts.add_account(c, "neighbour", now),
                accounts.issue_token(c, "neighbour", "owner", now),
            )[1]
        )
        homes = {}
        for name, token, url in (
            ("a", relay.owner_token, f"http://127.0.0.1:{silent_port}/up"),
            ("b", other_owner.token, str(receiver.make_url("/up"))),
        ):
            box = mailbox_id()
            async with relay.client(token) as hub:
                await hub.create_mailbox(box)
                phone = await hub.create_device("phone")
                async with relay.client(phone.token) as p:
                    await p.register(box)
                    await p.set_push(webhook_url=url)
            homes[name] = (token, box)
        token, box = homes["a"]
        async with relay.client(token) as hub_a:
            for i in range(50):
                await hub_a.upload(box, b"x", f"a{i}", push=b"a")
        await wait_until(lambda: len(silent_connections) == push.per_account_concurrency)
        token, box = homes["b"]
        async with relay.client(token) as hub_b:
            await hub_b.upload(box, b"y", "b", push=b"for b")
        await wait_until(lambda: received == [b"for b"], within=5)
        assert len(silent_connections) == push.per_account_concurrency  # never more
        dropped = relay.state.metrics.value("relay_push_total", channel="any", outcome="dropped")
        assert dropped == 50 - push.per_account_concurrency - push.per_account_queue
    finally:
        for w in silent_connections:
            w.close()
        silent.close()
        await relay.server.close()
        await receiver.close()
