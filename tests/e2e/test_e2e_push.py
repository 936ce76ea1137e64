"""`privastead-app push`: a device registers its own wake-up targets, and an event at the hub
wakes it through FCM and a webhook with ciphertext only.

Real processes on loopback: relay, camsim, `privastead-hub run`, `privastead-app pair|push`.
**The FCM endpoint is a stand-in** (``support/fcm_standin.py``, in this process): Google's
OAuth and FCM servers cannot be reached from here, so the relay's firebase-admin is pointed
at a local server that speaks the FCM v1 API. The webhook receiver is a plain local HTTP
server, as a UnifiedPush distributor would be.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from e2e_harness import PLAINTEXT_MARKERS, Home, app_cmd, run, running_home, sync_until

from privastead.client.sync import Syncer
from support.fcm_standin import GoogleStandIn, service_account, target

pytestmark = pytest.mark.slow

FCM_TOKEN = "phone-fcm-registration-token-7f3a9c"


class Webhook:
    """A local UnifiedPush-style endpoint that records what it is sent."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        app = web.Application()
        app.router.add_post("/up/{id}", self.post)
        self.server = TestServer(app, host="127.0.0.1")

    async def post(self, request: web.Request) -> web.Response:
        self.received.append(await request.read())
        return web.Response(status=201)


@pytest.fixture
async def pushed_home(tmp_path: Path) -> AsyncIterator[tuple[Home, GoogleStandIn, Webhook]]:
    google, hook = GoogleStandIn(), Webhook()
    await google.server.start_server()
    await hook.server.start_server()
    creds = tmp_path / "fcm-service-account.json"
    service_account(creds, str(google.server.make_url("/token")))
    relay_config = (
        "[push]\n"
        f'fcm_credentials_file = "{creds}"\n'
        # A plain string: make_url() would percent-encode the "{project}" placeholder.
        f'fcm_endpoint = "http://127.0.0.1:{google.server.port}/v1/projects/{{project}}/messages:send"\n'
        "webhook_allow_http = true\n"
        'webhook_allow_networks = ["127.0.0.0/8"]\n'  # the local webhook receiver
        "retry_delay_seconds = 0.1\n"
    )
    try:
        with running_home(tmp_path, relay_config=relay_config) as home:
            yield home, google, hook
    finally:
        await google.server.close()
        await hook.server.close()


async def _until(done: Callable[[], bool], limit: float) -> bool:
    """Poll ``done`` while this loop serves the stand-ins (so no blocking waits here)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if done():
            return True
        await asyncio.sleep(0.2)
    return done()


async def _app(*args: str) -> str:
    out = await asyncio.to_thread(run, app_cmd(*args))
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


async def test_an_event_wakes_the_registered_targets_with_ciphertext_only(
    pushed_home: tuple[Home, GoogleStandIn, Webhook],
) -> None:
    home, google, hook = pushed_home
    phone = home.root / "phone"
    home.pair(phone, "phone")
    data = ("--data-dir", str(phone))
    status = await _app("push", "status", *data)
    assert "fcm: none" in status and "webhook: none" in status

    url = str(hook.server.make_url("/up/phone-secret-endpoint"))
    shown = await _app("push", "register", "--fcm", FCM_TOKEN, "--webhook", url, *data)
    assert f"token ends in {FCM_TOKEN[-6:]}" in shown
    assert "phone-secret-endpoint" not in shown  # the endpoint's secret path is not printed
    assert FCM_TOKEN not in await _app("push", "status", *data)

    home.start_hub()
    try:
        woke = await _until(lambda: bool(google.sends) and bool(hook.received), limit=120)
        assert woke, (
            f"{len(google.sends)} fcm and {len(hook.received)} webhook pushes\n"
            + (home.root / "relay" / "relay.log").read_text()[-2000:]
            + home.hub_log.read_text()[-2000:]
        )
    finally:
        home.stop_hub()

    message = google.sends[0]["message"]
    assert target(message) == FCM_TOKEN
    assert "notification" not in message and set(message["data"]) == {"body"}  # data-only
    fcm_payload = base64.b64decode(message["data"]["body"])
    assert fcm_payload in hook.received  # the same opaque bytes on both channels

    # What the device then decrypts from the relay: the payload holds none of it in clear.
    event_ids: list[str] = []

    def got_events(syncers: list[Syncer]) -> bool:
        event_ids[:] = [r.event_id for r in syncers[0].events.events()]
        return bool(event_ids)

    await sync_until([phone], got_events, limit=30)
    assert event_ids, "the phone decrypted no notification"
    in_clear: list[bytes] = [*PLAINTEXT_MARKERS, b"door", FCM_TOKEN.encode()]
    for event_id in event_ids:
        in_clear += [event_id.encode(), bytes.fromhex(event_id)]
    for payload in [fcm_payload, *hook.received]:
        assert 0 < len(payload) <= 4096
        for plain in in_clear:
            assert plain not in payload, plain

    await _app("push", "unregister", *data)
    status = await _app("push", "status", *data)
    assert "fcm: none" in status and "webhook: none" in status
