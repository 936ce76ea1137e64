"""Two real relay processes on one PostgreSQL and one Garage bucket, as behind a load balancer:
whatever one process is asked, the other answers the same. Wake-ups (WebSocket and long-poll),
blobs, nameplates, revocations and the throttle of failed logins all cross processes; the
throttle test would pass every failure on one process alone (see its comment)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from relay_harness import RelayProcess, mailbox_id, make_process

from privastead.errors import DeviceRemovedError, RelayRejectedError
from privastead.relay.client import RelayClient
from support.relay_storage import storage_for

pytestmark = pytest.mark.garage
FREE_FAILURES = 4
# Behind a load balancer (here: the test itself) on 127.0.0.1, X-Forwarded-For names the client.
CONFIG = (
    "[limits]\nidle_timeout = 5.0\n"
    f'[auth]\nmax_failures = {FREE_FAILURES}\ntrusted_proxies = ["127.0.0.1/32"]\n'
)


@pytest.fixture(scope="module")
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RelayProcess, RelayProcess]]:
    with storage_for("postgresql", request) as storage:
        a = make_process(tmp_path_factory.mktemp("a"), CONFIG + storage.toml, storage.env)
        a.storage = storage
        b = RelayProcess(
            data_dir=tmp_path_factory.mktemp("b") / "data",
            config_text=a.config_text,
            env=storage.env,
            owner_token=a.owner_token,  # one account, one database
            storage=storage,
        )
        try:
            b.start()
            yield a, b
        finally:
            a.kill9()
            b.kill9()


async def test_wakeups_and_blobs_cross_processes(pair: tuple[RelayProcess, RelayProcess]) -> None:
    a, b = pair
    box = mailbox_id()
    clip = os.urandom(2 * 1024 * 1024 + 5)
    async with a.client() as hub, b.client() as viewer:
        await hub.create_mailbox(box)
        phone = await hub.create_device("phone")
        sub = await viewer.subscribe([box])
        assert (await sub.next_event())["type"] == "subscribed"
        poll = asyncio.create_task(viewer.list_messages(box, after=0, wait=20))
        await asyncio.sleep(0.3)  # the long-poll is waiting on b
        assert not poll.done()
        await hub.upload(box, b"event", "e1")  # stored through a
        page = await asyncio.wait_for(poll, 10)
        assert [m.body for m in page.messages] == [b"event"]
        assert await asyncio.wait_for(sub.next_event(), 10) == {
            "type": "message",
            "mailbox": box,
            "seq": 1,
        }
        # A clip uploaded through a streams back byte for byte through b.
        before = await a.blob_names()
        seq = (await hub.upload(box, clip, "clip-1")).seq
        assert await viewer.fetch(box, seq) == clip
        assert len(await a.blob_names() - before) == 1
        # The only registered device acknowledges through b: the object is deleted.
        async with b.client(phone.token) as p:
            assert await p.register(box) == 0
            assert await p.ack(box, seq) == seq
        assert await a.blob_names() == before
        await sub.ws.close()


async def test_a_nameplate_allocated_on_one_is_claimed_once_on_the_other(
    pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = pair
    pairing = mailbox_id()
    async with a.client() as hub:
        await hub.create_mailbox(pairing)
        plate = await hub.allocate_nameplate(pairing, ttl_seconds=300)
    async with RelayClient(b.url, "") as device:
        claim = await device.claim_nameplate(plate.nameplate)
    assert claim.mailbox == pairing
    async with RelayClient(a.url, "") as other:
        with pytest.raises(RelayRejectedError) as again:
            await other.claim_nameplate(plate.nameplate)
    assert again.value.code == "no_such_nameplate"
    async with RelayClient(a.url, claim.token) as device:  # the token works on either process
        await device.upload(pairing, b"pake", "p1")


async def test_a_device_removed_on_one_is_closed_on_the_other(
    pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = pair
    box = mailbox_id()
    async with a.client() as hub:
        await hub.create_mailbox(box)
        phone = await hub.create_device("phone")
        async with b.client(phone.token) as p:
            await p.register(box)
            sub = await p.subscribe([box])
            assert (await sub.next_event())["type"] == "subscribed"
            try:
                await hub.remove_device(phone.device_id)  # through a
                with pytest.raises(DeviceRemovedError):  # b polls the tombstones, closes it
                    await asyncio.wait_for(sub.next_event(), 10)
            finally:
                await sub.ws.close()


async def _me(url: str, token: str, client: str = "203.0.113.7") -> int:
    headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": client}
    async with aiohttp.ClientSession() as s, s.get(url + "/v1/me", headers=headers) as r:
        assert "error" in await r.json() or r.status == 200
        return r.status


async def test_failed_logins_are_counted_once_for_both_processes(
    pair: tuple[RelayProcess, RelayProcess],
) -> None:
    """Bad tokens alternate between the processes. Counted per process, each would see only
    half of them and answer 401 to all 2 * FREE_FAILURES; counted together, the failure
    after FREE_FAILURES is refused (429) on either, and the household's token still works.
    The client is an address of its own (forwarded), so other tests' failures do not count."""
    a, b = pair
    statuses = [
        await _me((a, b)[i % 2].url, "pst_0000000000000000_" + "A" * 43)
        for i in range(2 * FREE_FAILURES)
    ]
    assert statuses[:FREE_FAILURES] == [401] * FREE_FAILURES
    assert statuses[FREE_FAILURES:] == [429] * FREE_FAILURES
    assert await _me(a.url, a.owner_token) == 200
    assert await _me(b.url, b.owner_token) == 200


def test_a_relay_without_its_bucket_says_which_setting(
    pair: tuple[RelayProcess, RelayProcess], tmp_path: Path
) -> None:
    """Bad input at start: a clear error naming the setting, not a traceback."""
    a, _ = pair
    wrong = a.config_text.replace('bucket = "', 'bucket = "missing-')
    relay = RelayProcess(data_dir=tmp_path / "data", config_text=wrong, env=a.env)
    with pytest.raises(RuntimeError) as err:
        relay.start()
    message = str(err.value)
    assert "[storage.s3]" in message and "missing-" in message and "bucket exists" in message
    assert "Traceback" not in message


async def test_presigned_downloads_are_authorised_by_the_relay_only(
    pair: tuple[RelayProcess, RelayProcess],
) -> None:
    """The relay hands a URL only to a token that may read the message; the URL opens that
    ciphertext without any token, is not cached, and stops working once the message is gone."""
    a, b = pair
    box, elsewhere = mailbox_id(), mailbox_id()
    clip = os.urandom(600_000)
    async with a.client() as hub:
        await hub.create_mailbox(box)
        await hub.create_mailbox(elsewhere)
        stranger = await hub.create_restricted_token([elsewhere], ttl_seconds=300)
        phone = await hub.create_device("phone")
        seq = (await hub.upload(box, clip, "clip-1")).seq
        small = (await hub.upload(box, b"inline", "small")).seq
    path = f"/v1/mailboxes/{box}/messages/{seq}"
    async with aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bearer {a.owner_token}"}
        async with http.get(b.url + path + "?presign=1", headers=auth) as r:
            assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
            answer = await r.json()
        assert answer["size"] == len(clip)
        async with http.get(answer["url"]) as r:  # no token: the URL is the capability
            assert r.status == 200 and await r.read() == clip
        async with http.get(b.url + path + "?presign=yes", headers=auth) as r:
            assert r.status == 400 and "error" in await r.json()
        other = {"Authorization": f"Bearer {stranger.token}"}
        async with http.get(b.url + path + "?presign=1", headers=other) as r:
            assert r.status == 403 and "url" not in await r.json()
        async with http.get(b.url + path + "?presign=1") as r:
            assert r.status == 401
    async with b.client(phone.token) as p:
        await p.register(box)
        assert await p.fetch(box, small, direct=True) == b"inline"  # inline: from the relay
        assert await p.fetch(box, seq, direct=True) == clip
        await p.ack(box, small)  # the only device has read both: both are deleted
        async with aiohttp.ClientSession() as http, http.get(answer["url"]) as r:
            assert r.status in (403, 404)  # the object is gone, the URL opens nothing
