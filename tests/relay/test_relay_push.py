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
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from relay_harness import InProcess, mailbox_id, start_inprocess, wait_until

from privastead.clock import FakeClock
from privastead.relay.config import PushConfig, RelayConfig
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
