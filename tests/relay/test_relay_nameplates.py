"""Nameplates against real relays: allocated by the owner, claimed once without a token, scoped
to one pairing mailbox, gone after ten minutes, bad input a 4xx JSON error, guessing throttled."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from relay_harness import InProcess, RelayProcess, mailbox_id

from privastead.errors import RelayRejectedError
from privastead.relay.client import RelayClient
from privastead.relay.nameplates import MAX_PER_ACCOUNT, MAX_TTL


async def test_claimed_once_and_scoped_to_the_pairing_mailbox(any_relay: RelayProcess) -> None:
    pairing, other = mailbox_id(), mailbox_id()
    async with any_relay.client() as hub:
        await hub.create_mailbox(pairing)
        await hub.create_mailbox(other)
        plate = await hub.allocate_nameplate(pairing, ttl_seconds=300)
    assert plate.mailbox == pairing and 1 <= int(plate.nameplate) <= 9999
    async with RelayClient(any_relay.url, "") as anonymous:
        claim = await anonymous.claim_nameplate(plate.nameplate)
        assert claim.mailbox == pairing
        with pytest.raises(RelayRejectedError) as again:  # once: a second claim finds nothing
            await anonymous.claim_nameplate(plate.nameplate)
        assert again.value.status == 404 and again.value.code == "no_such_nameplate"
    async with RelayClient(any_relay.url, claim.token) as device:
        await device.upload(pairing, b"pake message", "m1")
        with pytest.raises(RelayRejectedError) as scoped:
            await device.upload(other, b"x", "m2")
        assert scoped.value.status == 403
        with pytest.raises(RelayRejectedError):  # a restricted token cannot allocate
            await device.allocate_nameplate(pairing)


async def test_bad_requests_are_4xx_json(any_relay: RelayProcess) -> None:
    box = mailbox_id()
    bad_bodies = [
        ({"mailbox": "nothex"}, 400),
        ({"mailbox": box, "ttl_seconds": MAX_TTL + 1}, 400),
        ({"mailbox": box, "ttl_seconds": 0}, 400),
        ({"mailbox": box, "extra": 1}, 400),
        ([box], 400),
    ]
    async with aiohttp.ClientSession() as s:
        auth = {"Authorization": f"Bearer {any_relay.owner_token}"}
        for body, status in bad_bodies:
            async with s.post(any_relay.url + "/v1/nameplates", json=body, headers=auth) as r:
                assert r.status == status, body
                assert "error" in await r.json()
        async with s.post(any_relay.url + "/v1/nameplates", json={"mailbox": box}) as r:
            assert r.status == 401 and "error" in await r.json()
        for plate in ["abc", "0", "01", "10000", "-1"]:
            async with s.post(f"{any_relay.url}/v1/nameplates/{plate}/claim") as r:
                assert r.status == 400, plate
                assert (await r.json())["error"]["code"] == "bad_nameplate"


async def test_an_account_holds_a_bounded_number(any_relay: RelayProcess) -> None:
    name = "np-" + mailbox_id()[:8]
    out = await asyncio.to_thread(any_relay.cli, "accounts", "add", name)
    token = out.strip().splitlines()[-1]
    async with RelayClient(any_relay.url, token) as hub:
        plates = {
            (await hub.allocate_nameplate(mailbox_id())).nameplate for _ in range(MAX_PER_ACCOUNT)
        }
        assert len(plates) == MAX_PER_ACCOUNT
        with pytest.raises(RelayRejectedError) as full:
            await hub.allocate_nameplate(mailbox_id())
        assert full.value.status == 429 and full.value.code == "too_many_nameplates"
    async with aiohttp.ClientSession() as s:
        auth = {"Authorization": f"Bearer {token}"}
        async with s.get(any_relay.url + "/v1/tokens", headers=auth) as r:
            tokens = (await r.json())["tokens"]
    # No token exists until a claim issues it: none waits in the relay's storage, and the
    # refused allocation left none behind.
    assert not any(t["label"] == "nameplate" for t in tokens)


async def test_a_nameplate_expires(inproc: InProcess) -> None:
    async with inproc.client() as hub:
        plate = await hub.allocate_nameplate(mailbox_id(), ttl_seconds=MAX_TTL)
        inproc.clock.advance(MAX_TTL)
        with pytest.raises(RelayRejectedError) as gone:
            await hub.claim_nameplate(plate.nameplate)
        assert gone.value.status == 404


async def test_guessing_nameplates_is_throttled(relay: RelayProcess) -> None:
    async with relay.client() as hub:
        plate = await hub.allocate_nameplate(mailbox_id())
    statuses = []
    async with aiohttp.ClientSession() as s:
        for _ in range(30):
            guess = "1" if plate.nameplate != "1" else "2"
            async with s.post(f"{relay.url}/v1/nameplates/{guess}/claim") as r:
                statuses.append(r.status)
                assert "error" in await r.json()
                if r.status == 429:
                    assert int(r.headers["Retry-After"]) >= 1
                    break
        assert statuses[0] == 404 and statuses[-1] == 429
        # A locked address is refused even for the right number: guessing cannot go faster.
        async with s.post(f"{relay.url}/v1/nameplates/{plate.nameplate}/claim") as r:
            assert r.status == 429
