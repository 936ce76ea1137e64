"""Revoked tokens: a distinct answer (401 device_removed) that costs the household nothing,
and every socket and long-poll the token holds open ends at once (API and CLI revocations).
Against real relay processes with the default throttle on."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import aiohttp
import pytest
from relay_harness import InProcess, RelayProcess, mailbox_id, run_cli

from privastead.errors import DeviceRemovedError, RelayRejectedError
from privastead.relay import accounts, schema
from privastead.relay.api import DEVICE_REMOVED, WS_CLOSE_REVOKED
from privastead.relay.app import sweep
from privastead.relay.config import AuthConfig


async def _status(url: str, token: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(url + "/v1/me", headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        body = await r.json()
        return r.status, body["error"]["code"] if r.status >= 400 else body["kind"]


async def test_removed_device_is_told_and_never_locks_out_the_household(
    relay: RelayProcess,
) -> None:
    """The removed phone keeps retrying from the household's address (as a removed app that
    still runs does): every try is answered device_removed and nothing is throttled."""
    free = AuthConfig().max_failures  # the removed phone retries far more often than that
    async with relay.client() as owner:
        phone = await owner.create_device("old phone")
        tablet = await owner.create_device("tablet")
        await owner.remove_device(phone.device_id)
    async with relay.client(phone.token) as gone:
        for _ in range(5 * free):
            with pytest.raises(DeviceRemovedError) as err:
                await gone.me()
            assert (err.value.status, err.value.code) == (401, DEVICE_REMOVED)
    # Same address: the hub and the other devices are served as before.
    assert await _status(relay.url, relay.owner_token) == (200, "owner")
    assert await _status(relay.url, tablet.token) == (200, "device")
    # Only the holder of the secret learns "removed": a wrong secret for that token id is
    # an ordinary failure.
    wrong = f"pst_{phone.token_id}_{'A' * 43}"
    assert await _status(relay.url, wrong) == (401, "unauthorized")


async def test_revoked_owner_and_restricted_tokens_and_expired_ones(relay: RelayProcess) -> None:
    async with relay.client() as owner:
        restricted = await owner.create_restricted_token([mailbox_id()], ttl_seconds=1)
        second_owner = json.loads(
            await asyncio.to_thread(
                run_cli,
                "tokens",
                "issue",
                "--account",
                "home",
                "--kind",
                "owner",
                data_dir=relay.data_dir,
            )
        )
        await owner.revoke_token(second_owner["token_id"])
    assert await _status(relay.url, second_owner["token"]) == (401, "token_revoked")
    await asyncio.sleep(1.1)
    assert await _status(relay.url, restricted.token) == (401, "token_expired")


async def _closed_with(ws: aiohttp.ClientWebSocketResponse) -> tuple[str, int | None]:
    """The error code sent before the close, and the close code."""
    code = ""
    while True:
        msg = await asyncio.wait_for(ws.receive(), 10)
        if msg.type == aiohttp.WSMsgType.TEXT:
            event = json.loads(msg.data)
            if event.get("type") == "error":
                code = event["code"]
        elif msg.type == aiohttp.WSMsgType.CLOSE:
            return code, int(msg.data)  # the code the relay sent (ours may fail to answer)
        else:
            return code, None


async def _everything_open(
    relay: RelayProcess | InProcess, token: str, box: str
) -> dict[str, object]:
    """A subscription socket, a live viewer, a live publisher and a pending long-poll."""
    client = relay.client(token)
    sub = await client.subscribe([box])
    assert (await sub.next_event())["type"] == "subscribed"
    viewer = await client.live(mailbox_id(), "viewer")
    assert json.loads((await viewer.receive()).data) == {"type": "waiting"}
    publisher = await client.live(mailbox_id(), "publisher")
    assert json.loads((await publisher.receive()).data)["type"] == "viewers"
    poll = asyncio.create_task(client.list_messages(box, wait=30))
    await asyncio.sleep(0.3)  # the long-poll is waiting at the relay
    assert not poll.done()
    return {"client": client, "sub": sub, "viewer": viewer, "publisher": publisher, "poll": poll}


async def _assert_all_ended(opened: dict[str, object], within: float) -> None:
    t0 = time.monotonic()
    sub, poll = opened["sub"], opened["poll"]
    with pytest.raises(DeviceRemovedError):
        await asyncio.wait_for(sub.next_event(), within)  # type: ignore[attr-defined]
    for name in ("viewer", "publisher"):
        code, close = await _closed_with(opened[name])  # type: ignore[arg-type]
        assert (code, close) == (DEVICE_REMOVED, WS_CLOSE_REVOKED), name
    with pytest.raises(DeviceRemovedError):
        await asyncio.wait_for(poll, within)  # type: ignore[arg-type]
    assert time.monotonic() - t0 < within
    for name in ("sub", "viewer", "publisher"):
        await opened[name].close()  # type: ignore[attr-defined]
    await opened["client"].close()  # type: ignore[attr-defined]


async def _assert_still_open(opened: dict[str, object], relay: RelayProcess, box: str) -> None:
    async with relay.client() as owner:
        await owner.upload(box, b"news", mailbox_id())
    event = await asyncio.wait_for(opened["sub"].next_event(), 10)  # type: ignore[attr-defined]
    assert event["type"] == "message"
    page = await asyncio.wait_for(opened["poll"], 10)  # type: ignore[arg-type]
    assert len(page.messages) == 1
    for name in ("sub", "viewer", "publisher"):
        await opened[name].close()  # type: ignore[attr-defined]
    await opened["client"].close()  # type: ignore[attr-defined]


async def test_removing_a_device_ends_its_sockets_and_long_polls_at_once(
    shared_relay: RelayProcess,
) -> None:
    box = mailbox_id()
    async with shared_relay.client() as owner:
        await owner.create_mailbox(box)
        phone = await owner.create_device("phone")
        other = await owner.create_device("laptop")
    mine = await _everything_open(shared_relay, phone.token, box)
    theirs = await _everything_open(shared_relay, other.token, box)
    async with shared_relay.client() as owner:
        await owner.remove_device(phone.device_id)
    await _assert_all_ended(mine, within=5)
    await _assert_still_open(theirs, shared_relay, box)  # the other device is untouched


@pytest.mark.parametrize("command", ["tokens revoke", "devices remove"])
async def test_a_cli_revocation_ends_sockets_of_a_running_relay(
    shared_relay: RelayProcess, command: str
) -> None:
    box = mailbox_id()
    async with shared_relay.client() as owner:
        await owner.create_mailbox(box)
        phone = await owner.create_device("phone")
    opened = await _everything_open(shared_relay, phone.token, box)
    args = (
        ["tokens", "revoke", phone.token_id]
        if command == "tokens revoke"
        else ["devices", "remove", phone.device_id, "--account", "home"]
    )
    await asyncio.to_thread(run_cli, *args, data_dir=shared_relay.data_dir)
    await _assert_all_ended(opened, within=5)
    async with shared_relay.client(phone.token) as gone:
        with pytest.raises(DeviceRemovedError):
            await gone.subscribe([box])  # a new socket is refused with the same answer
    if command == "devices remove":
        listed = await asyncio.to_thread(
            run_cli,
            "devices",
            "list",
            "--account",
            "home",
            "--json",
            data_dir=shared_relay.data_dir,
        )
        assert phone.device_id not in [d["device_id"] for d in json.loads(listed)]


def test_tombstones_are_bounded_per_account(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "relay.sqlite3", isolation_level=None)
    try:
        schema.init(conn)
        conn.execute("BEGIN")
        accounts.add_account(conn, "home", 0.0)
        issued = [
            accounts.issue_token(conn, "home", "device", float(i))
            for i in range(accounts.REVOKED_PER_ACCOUNT + 5)
        ]
        for i, token in enumerate(issued):
            accounts.revoke_token(conn, token.token_id, float(i))
        conn.execute("COMMIT")
        count = conn.execute("SELECT COUNT(*) FROM revoked_tokens").fetchone()[0]
        assert count == accounts.REVOKED_PER_ACCOUNT
        oldest, newest = issued[0], issued[-1]
        for token, reason in ((oldest, "unknown"), (newest, "revoked")):
            token_id, secret = accounts.split_token(token.token) or ("", "")
            refusal = accounts.verify_token(conn, token_id, secret, 1e9)
            assert isinstance(refusal, accounts.Refusal) and refusal.reason == reason
    finally:
        conn.close()


async def test_tombstones_expire_after_the_retention(inproc: InProcess) -> None:
    async with inproc.client() as owner:
        phone = await owner.create_device("phone")
        await owner.remove_device(phone.device_id)
    async with inproc.client(phone.token) as gone:
        with pytest.raises(DeviceRemovedError):
            await gone.me()
    inproc.clock.advance(inproc.state.config.auth.revoked_retention_days * 86400 + 1)
    await sweep(inproc.state)
    refusal = inproc.state.db.read(
        lambda c: accounts.verify_token(c, phone.token_id, phone.token.split("_", 2)[2], 0.0)
    )
    assert isinstance(refusal, accounts.Refusal) and refusal.reason == "unknown"
    # A fresh process (no in-memory memory of the revocation) answers "unauthorized" now.
    inproc.state.auth._over.clear()
    async with inproc.client(phone.token) as gone:
        with pytest.raises(RelayRejectedError) as err:
            await gone.me()
        assert err.value.code == "unauthorized"
