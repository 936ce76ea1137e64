"""What each token's scope allows against a real relay process: a restricted (pairing) token
never evicts the hub's messages and cannot create device rows or send pushes; a device token
cannot change TTLs; every message costs a fixed overhead and empty ones are refused."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import aiohttp
import pytest
from relay_harness import RelayProcess, mailbox_id, run_cli

from privastead.errors import RelayRejectedError, RelayUnavailableError
from privastead.relay import schema, store
from privastead.relay.client import RelayClient


async def _small_account(relay: RelayProcess, name: str, quota: int) -> str:
    out = await asyncio.to_thread(
        run_cli, "accounts", "add", name, "--quota-bytes", str(quota), data_dir=relay.data_dir
    )
    return out.strip().splitlines()[-1]


async def test_a_restricted_token_never_evicts_and_learns_nothing(
    shared_relay: RelayProcess,
) -> None:
    quota = 20 * (1000 + store.MESSAGE_OVERHEAD)
    owner_token = await _small_account(shared_relay, "scope-" + mailbox_id()[:8], quota)
    hub_box, pairing_box = mailbox_id(), mailbox_id()
    async with RelayClient(shared_relay.url, owner_token) as hub:
        await hub.create_mailbox(hub_box)
        await hub.create_mailbox(pairing_box)
        for i in range(20):  # the account is exactly full of the hub's unread messages
            await hub.upload(hub_box, bytes([i]) * 1000, f"h{i}")
        restricted = await hub.create_restricted_token([pairing_box], ttl_seconds=600)
    async with RelayClient(shared_relay.url, restricted.token) as pairing:
        # 507: the client retries later (once the hub has read and room is free).
        with pytest.raises(RelayUnavailableError) as unavailable:
            await pairing.upload(pairing_box, b"key package", "kp")
        assert "507 quota_full" in str(unavailable.value)
        assert hub_box not in str(unavailable.value)
        results = await pairing.upload_many([(pairing_box, b"kp", "kp2", None)])
        assert isinstance(results[0], RelayRejectedError) and results[0].status == 507
    async with RelayClient(shared_relay.url, owner_token) as hub:
        info = await hub.mailbox_info(hub_box)
        assert info.count == 20  # nothing of the hub's was touched
        # The owner (scope: the whole account) may make room, and is told what went.
        result = await hub.upload(pairing_box, b"x" * 1000, "owner")
        assert [e.mailbox for e in result.evicted] == [hub_box]


async def test_every_message_costs_an_overhead_and_empty_ones_are_refused(
    shared_relay: RelayProcess,
) -> None:
    quota = 4096
    owner_token = await _small_account(shared_relay, "tiny-" + mailbox_id()[:8], quota)
    box = mailbox_id()
    async with RelayClient(shared_relay.url, owner_token) as c:
        await c.create_mailbox(box)
        for i in range(100):
            await c.upload(box, b"x", f"m{i}")
        stored = (await c.mailbox_info(box)).count
        assert stored == quota // (1 + store.MESSAGE_OVERHEAD)  # 15, not thousands
        with pytest.raises(RelayRejectedError) as err:
            await c.upload(box, b"", "empty")
        assert (err.value.status, err.value.code) == (400, "empty_body")
        with pytest.raises(RelayRejectedError) as err:  # a malformed batch is refused whole
            await c.upload_many([(box, b"y", "fine", None), (box, b"", "empty2", None)])
        assert (err.value.status, err.value.code) == (400, "empty_body")
    headers = {"Authorization": f"Bearer {owner_token}", "Privastead-Message-Id": "chunked"}

    async def nothing():  # type: ignore[no-untyped-def]
        return
        yield b""

    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{shared_relay.url}/v1/mailboxes/{box}/messages", data=nothing(), headers=headers
        ) as r,
    ):
        assert r.status == 400 and (await r.json())["error"]["code"] == "empty_body"


async def test_device_and_restricted_tokens_stay_in_their_lane(shared_relay: RelayProcess) -> None:
    box = mailbox_id()
    async with shared_relay.client() as owner:
        await owner.create_mailbox(box)
        phone = await owner.create_device("phone")
        restricted = await owner.create_restricted_token([box], ttl_seconds=600)
        devices_before = await owner.list_devices()
    async with shared_relay.client(phone.token) as device:
        with pytest.raises(RelayRejectedError) as err:
            await device.create_mailbox(box, ttl_seconds=1)  # would expire the hub's messages
        assert err.value.status == 403
        assert not await device.create_mailbox(box)  # confirming without a TTL is fine
        await device.set_push(webhook_url="https://push.example.org/x")
    async with shared_relay.client(restricted.token) as pairing:
        with pytest.raises(RelayRejectedError) as err:
            await pairing.create_mailbox(box, ttl_seconds=1)
        assert err.value.status == 403
        for call in (
            pairing.set_push(fcm_token="attacker", webhook_url="https://evil.example.org/"),
            pairing.get_push(),
            pairing.upload(box, b"kp", "kp", push=b"wake everyone"),
        ):
            with pytest.raises(RelayRejectedError) as err:
                await call
            assert err.value.status == 403
        # What the pairing flow needs still works: upload, list, register and ack its mailbox.
        await pairing.upload(box, b"kp", "kp")
        await pairing.register(box)
        await pairing.ack(box, 1)
    async with shared_relay.client() as owner:
        assert (await owner.mailbox_info(box)).ttl_seconds == 7 * 24 * 3600
        after = await owner.list_devices()
        assert [d["device_id"] for d in after] == [d["device_id"] for d in devices_before]


def test_a_version_1_database_is_charged_the_overhead_on_upgrade(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "relay.sqlite3", isolation_level=None)
    try:
        schema.init(conn)
        conn.execute("INSERT INTO accounts(name, created_at) VALUES ('home', 0)")
        conn.execute("INSERT INTO mailboxes(id, account, created_at) VALUES ('m', 'home', 0)")
        # Turn it back into version 1: no charged column, triggers on size.
        conn.executescript(
            """
            DROP TRIGGER messages_charge_add; DROP TRIGGER messages_charge_sub;
            ALTER TABLE messages DROP COLUMN charged;
            CREATE TRIGGER messages_used_add AFTER INSERT ON messages BEGIN
                UPDATE accounts SET used_bytes = used_bytes + NEW.size WHERE name = NEW.account;
            END;
            CREATE TRIGGER messages_used_sub AFTER DELETE ON messages BEGIN
                UPDATE accounts SET used_bytes = used_bytes - OLD.size WHERE name = OLD.account;
            END;
            INSERT INTO messages(mailbox, seq, account, size, body, created_at, expires_at)
                VALUES ('m', 1, 'home', 10, x'00', 0, 9e9), ('m', 2, 'home', 20, x'00', 0, 9e9);
            PRAGMA user_version=1;
            """
        )
        assert conn.execute("SELECT used_bytes FROM accounts").fetchone()[0] == 30
        schema.init(conn)
        assert conn.execute("SELECT used_bytes FROM accounts").fetchone()[0] == 30 + 2 * (
            store.MESSAGE_OVERHEAD
        )
        conn.execute("DELETE FROM messages WHERE seq = 1")
        assert conn.execute("SELECT used_bytes FROM accounts").fetchone()[0] == 20 + (
            store.MESSAGE_OVERHEAD
        )
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    finally:
        conn.close()
