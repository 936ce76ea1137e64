"""The storage interface's contract, run unchanged against both backends: SQLite (the
relay's default) and PostgreSQL (a real server). Each test states one behaviour the relay's
handlers rely on; a backend that differs fails here, before any relay runs on it."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from privastead.devcluster.postgres import PostgresServer
from privastead.errors import RelayRejectedError
from privastead.relay import accounts, schema
from privastead.relay.accounts import Principal, Refusal
from privastead.relay.backends.pg import Connection, PgDatabase
from privastead.relay.backends.pg_storage import PgStorage
from privastead.relay.backends.pg_tokens import bury
from privastead.relay.db import Database
from privastead.relay.sqlite_storage import SqliteStorage
from privastead.relay.storage import Storage
from privastead.relay.store import MESSAGE_OVERHEAD, NewMessage
from support.postgres import fresh_database

BOX, OTHER_BOX = "a" * 32, "b" * 32
TTL = 3600


@dataclass
class Backend:
    storage: Storage
    add: object  # async (name, quota) -> None: the operator's `accounts add`


@pytest.fixture(params=["sqlite", "postgresql"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        db = Database(tmp_path / "relay.sqlite3", "normal")
        db.open(schema.init)

        async def add_sqlite(name: str, quota: int | None = None) -> None:
            await db.run(partial(accounts.add_account, name=name, now=0.0, quota_bytes=quota))

        try:
            yield Backend(SqliteStorage(db), add_sqlite)
        finally:
            db.close()
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    async with fresh_database(server) as settings:
        pg = PgDatabase(settings)
        await pg.open()
        try:
            yield Backend(PgStorage(pg), partial(_add_pg, pg))
        finally:
            await pg.close()


async def _add_pg(pg: PgDatabase, name: str, quota: int | None = None) -> None:

    async def op(conn: Connection) -> None:
        await conn.execute(
            "INSERT INTO accounts(name, created_at, quota_bytes) VALUES ($1, 0, $2)", name, quota
        )

    await pg.transaction(op)


def message(msg_id: str, body: bytes, box: str = BOX, account: str = "home") -> NewMessage:
    return NewMessage(
        account=account,
        mailbox=box,
        msg_id=msg_id,
        digest=hashlib.sha256(body).digest(),
        size=len(body),
        body=body,
        blob=None,
    )


async def home(backend: Backend, quota: int | None = None) -> Storage:
    await backend.add("home", quota)  # type: ignore[operator]
    st = backend.storage
    assert await st.create_mailbox(account="home", mailbox=BOX, now=0.0, ttl_seconds=None)
    return st


async def put(st: Storage, msg: NewMessage, *, now: float = 1.0, evict: bool = True) -> int:
    done = await st.append(
        msg=msg, now=now, default_ttl=TTL, quota=1 << 30, wake=False, evict=evict
    )
    return done.result.seq


async def test_mailboxes_belong_to_one_account(backend: Backend) -> None:
    st = await home(backend)
    await backend.add("other")  # type: ignore[operator]
    assert not await st.create_mailbox(account="home", mailbox=BOX, now=0.0, ttl_seconds=60)
    with pytest.raises(RelayRejectedError) as taken:
        await st.create_mailbox(account="other", mailbox=BOX, now=0.0, ttl_seconds=None)
    assert taken.value.code == "mailbox_exists"
    with pytest.raises(RelayRejectedError) as hidden:  # not "forbidden": ids are not probed
        await st.list_messages(
            account="other", mailbox=BOX, after=0, limit=10, now=1.0, list_body_max=1024
        )
    assert hidden.value.code == "mailbox_not_found"
    assert await st.owned(account="home", mailboxes=[BOX, OTHER_BOX]) == {BOX}
    assert await st.owned(account="other", mailboxes=[BOX]) == set()
    info = await st.mailbox_info(account="home", mailbox=BOX, now=1.0, default_ttl=TTL)
    assert info.ttl_seconds == 60


async def test_seqs_are_dense_and_a_retry_is_stored_once(backend: Backend) -> None:
    st = await home(backend)
    assert [await put(st, message(f"m{i}", b"x" * i)) for i in range(1, 4)] == [1, 2, 3]
    again = await st.append(
        msg=message("m2", b"xx"), now=2.0, default_ttl=TTL, quota=1 << 30, wake=False, evict=True
    )
    assert (again.result.seq, again.result.duplicate) == (2, True)
    with pytest.raises(RelayRejectedError) as conflict:
        await put(st, message("m2", b"other bytes"))
    assert conflict.value.code == "message_id_conflict"
    page = await st.list_messages(
        account="home", mailbox=BOX, after=1, limit=10, now=2.0, list_body_max=1024
    )
    assert [(m.seq, m.body) for m in page.messages] == [(2, b"xx"), (3, b"xxx")]
    assert page.last_seq == 3
    assert await st.get_message(account="home", mailbox=BOX, seq=3, now=2.0) == (3, b"xxx", None)


async def test_concurrent_uploads_of_one_message_id_store_it_once(backend: Backend) -> None:
    st = await home(backend)
    results = await asyncio.gather(*(put(st, message("same", b"body")) for _ in range(8)))
    assert set(results) == {1}
    info = await st.mailbox_info(account="home", mailbox=BOX, now=2.0, default_ttl=TTL)
    assert (info.last_seq, info.count) == (1, 1)


async def test_acks_of_every_device_delete_and_never_go_back(backend: Backend) -> None:
    st = await home(backend)
    for i in range(1, 4):
        await put(st, message(f"m{i}", b"body"))
    assert await st.register(account="home", mailbox=BOX, device_id="phone") == 0
    assert await st.register(account="home", mailbox=BOX, device_id="tablet") == 0
    with pytest.raises(RelayRejectedError) as beyond:
        await st.ack(account="home", mailbox=BOX, device_id="phone", seq=4)
    assert beyond.value.code == "ack_beyond_end"
    assert await st.ack(account="home", mailbox=BOX, device_id="phone", seq=3) == (3, [])
    assert await st.ack(account="home", mailbox=BOX, device_id="phone", seq=1) == (3, [])
    assert await st.ack(account="home", mailbox=BOX, device_id="tablet", seq=2) == (2, [])
    info = await st.mailbox_info(account="home", mailbox=BOX, now=2.0, default_ttl=TTL)
    assert (info.count, info.devices) == (1, {"phone": 3, "tablet": 2})
    with pytest.raises(RelayRejectedError) as unknown:
        await st.ack(account="home", mailbox=BOX, device_id="laptop", seq=1)
    assert unknown.value.code == "not_registered"
    await st.unregister(account="home", mailbox=BOX, device_id="tablet")
    info = await st.mailbox_info(account="home", mailbox=BOX, now=2.0, default_ttl=TTL)
    assert info.count == 0  # the remaining device had acknowledged everything


async def test_quota_evicts_the_oldest_or_refuses_a_restricted_uploader(backend: Backend) -> None:
    charge = 100 + MESSAGE_OVERHEAD
    st = await home(backend, quota=3 * charge)
    await st.create_mailbox(account="home", mailbox=OTHER_BOX, now=0.0, ttl_seconds=None)
    await put(st, message("a", b"a" * 100))
    await put(st, message("b", b"b" * 100, box=OTHER_BOX))
    await put(st, message("c", b"c" * 100))
    with pytest.raises(RelayRejectedError) as full:
        await put(st, message("d", b"d" * 100), evict=False)
    assert full.value.code == "quota_full"
    done = await st.append(
        msg=message("d", b"d" * 100), now=2.0, default_ttl=TTL, quota=1 << 30, evict=True
    )
    assert [(e.mailbox, e.seq) for e in done.result.evicted] == [(BOX, 1)]
    with pytest.raises(RelayRejectedError) as huge:
        await put(st, message("e", b"e" * 3 * charge))
    assert huge.value.code == "quota_exceeded"
    stats = await st.stats()
    assert (stats["messages"], stats["bytes"]) == (3, 300)


async def test_a_batch_keeps_what_it_can(backend: Backend) -> None:
    st = await home(backend)
    refused = RelayRejectedError("no", 403, "forbidden")
    out = await st.append_many(
        items=[message("a", b"1"), refused, message("b", b"2", box=OTHER_BOX), message("c", b"3")],
        now=1.0,
        default_ttl=TTL,
        quota=1 << 30,
        wake=[False] * 4,
    )
    assert out[1] is refused
    assert isinstance(out[2], RelayRejectedError) and out[2].code == "mailbox_not_found"
    assert [r.result.seq for r in (out[0], out[3]) if not isinstance(r, Exception)] == [1, 2]


async def test_expiry_deletes_messages_and_their_receipts(backend: Backend) -> None:
    st = await home(backend)
    await put(st, message("old", b"1"), now=0.0)
    await put(st, message("new", b"2"), now=TTL / 2)
    assert await st.expire(now=TTL + 1) == (1, [])
    page = await st.list_messages(
        account="home", mailbox=BOX, after=0, limit=10, now=TTL + 1, list_body_max=1024
    )
    assert [m.seq for m in page.messages] == [2]
    assert await put(st, message("old", b"1"), now=TTL + 2) == 3  # its receipt went too


async def test_tokens_verify_expire_and_leave_tombstones(backend: Backend) -> None:
    st = await home(backend)
    device = await st.issue_token(account="home", kind="device", now=0.0, label="phone")
    token_id, secret = accounts.split_token(device.token) or ("", "")
    principal = await st.verify_token(token_id=token_id, secret=secret, now=1.0)
    assert isinstance(principal, Principal) and principal.device_id == device.device_id
    wrong = await st.verify_token(token_id=token_id, secret="x" * 43, now=1.0)
    assert wrong == Refusal("wrong_secret", token_id)
    assert await st.verify_token(token_id="0" * 16, secret=secret, now=1.0) == Refusal("unknown")
    limited = await st.issue_token(
        account="home", kind="restricted", now=0.0, mailboxes=[BOX], expires_at=10.0
    )
    lid, lsecret = accounts.split_token(limited.token) or ("", "")
    assert await st.verify_token(token_id=lid, secret=lsecret, now=11.0) == Refusal(
        "expired", lid, "restricted"
    )
    seen = await st.newest_revocation()
    assert await st.revoke_token(token_id=token_id, now=2.0, account="home") == "device"
    assert await st.verify_token(token_id=token_id, secret=secret, now=3.0) == Refusal(
        "revoked", token_id, "device"
    )
    newest, revoked = await st.revoked_since(after_id=seen)
    assert newest > seen and revoked == [(token_id, "device")]
    with pytest.raises(RelayRejectedError) as again:
        await st.revoke_token(token_id=token_id, now=4.0, account="home")
    assert again.value.code == "token_not_found"
    assert await st.prune_revoked(before=5.0) == 1
    assert await st.verify_token(token_id=token_id, secret=secret, now=6.0) == Refusal("unknown")


async def test_removing_a_device_revokes_it_and_releases_what_it_held(backend: Backend) -> None:
    st = await home(backend)
    phone = await st.issue_token(account="home", kind="device", now=0.0, label="phone")
    await st.set_push(
        account="home", device_id=phone.device_id, fcm_token="f" * 20, webhook_url=None
    )
    assert await st.get_push(account="home", device_id=phone.device_id) == ("f" * 20, None)
    assert await st.push_targets(account="home", devices=[phone.device_id, "nobody"]) == [
        (phone.device_id, "f" * 20, None)
    ]
    assert [d["device_id"] for d in await st.list_devices(account="home")] == [phone.device_id]
    await st.register(account="home", mailbox=BOX, device_id=phone.device_id)
    await st.register(account="home", mailbox=BOX, device_id="tablet")
    await put(st, message("m", b"body"))
    await st.ack(account="home", mailbox=BOX, device_id="tablet", seq=1)
    revoked, _ = await st.remove_device(account="home", device_id=phone.device_id, now=1.0)
    assert revoked == [phone.token_id]
    assert await st.list_devices(account="home") == []
    assert [t["token_id"] for t in await st.list_tokens(account="home")] == []
    info = await st.mailbox_info(account="home", mailbox=BOX, now=2.0, default_ttl=TTL)
    assert (info.count, info.devices) == (0, {"tablet": 1})
    with pytest.raises(RelayRejectedError) as gone:
        await st.remove_device(account="home", device_id=phone.device_id, now=2.0)
    assert gone.value.code == "device_not_found"


async def test_two_processes_never_overshoot_an_account_quota(
    postgres_server: PostgresServer,
) -> None:
    """Two pools (two relay processes) upload for one account into two mailboxes at once, with
    restricted scope (no eviction): the quota check and the insert are one step per account,
    so exactly as many messages as fit are stored, and seqs stay dense per mailbox."""
    charge = 10 + MESSAGE_OVERHEAD
    async with fresh_database(postgres_server) as settings:
        first, second = PgDatabase(settings), PgDatabase(settings)
        await first.open()
        await second.open()
        try:
            await _add_pg(first, "home", 5 * charge)
            a, b = PgStorage(first), PgStorage(second)
            for box in (BOX, OTHER_BOX):
                await a.create_mailbox(account="home", mailbox=box, now=0.0, ttl_seconds=None)

            async def upload(st: Storage, i: int) -> int | str:
                box = BOX if i % 2 else OTHER_BOX
                try:
                    return await put(st, message(f"m{i}", b"x" * 10, box=box), evict=False)
                except RelayRejectedError as exc:
                    return exc.code

            results = await asyncio.gather(*(upload((a, b)[i % 2], i) for i in range(20)))
            assert sorted(r for r in results if isinstance(r, str)) == ["quota_full"] * 15
            stored = await a.stats()
            assert (stored["messages"], stored["bytes"]) == (5, 50)
            for box in (BOX, OTHER_BOX):
                info = await b.mailbox_info(account="home", mailbox=box, now=1.0, default_ttl=TTL)
                assert info.last_seq == info.count  # no seq taken by a refused upload
        finally:
            await first.close()
            await second.close()


async def test_tombstones_become_visible_in_id_order_across_processes(
    postgres_server: PostgresServer,
) -> None:
    """A revocation still open in one process holds back the next one's tombstone id, so a
    relay polling "ids above the last seen" never steps over a tombstone committed late."""
    async with fresh_database(postgres_server) as settings:
        first, second = PgDatabase(settings), PgDatabase(settings)
        slow_has_its_id, release = asyncio.Event(), asyncio.Event()
        await first.open()
        await second.open()
        try:
            await _add_pg(first, "home")
            a, b = PgStorage(first), PgStorage(second)
            one = await a.issue_token(account="home", kind="device", now=0.0)
            two = await a.issue_token(account="home", kind="device", now=0.0)
            seen = await a.newest_revocation()

            async def slow(conn: Connection) -> None:
                await bury(conn, "token_id = $2", [one.token_id], 1.0)
                slow_has_its_id.set()
                await release.wait()  # still uncommitted

            slow_task = asyncio.create_task(first.transaction(slow))
            await slow_has_its_id.wait()
            fast_task = asyncio.create_task(b.revoke_token(token_id=two.token_id, now=2.0))

            async def waiting_for_lock() -> bool:
                async def op(conn: Connection) -> bool:
                    n = await conn.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND datname = current_database()"
                    )
                    return bool(n)

                return await first.read(op)

            # The second revocation queues behind the first. (Without the turn-taking it would
            # commit id 2 now, and the poll below would see it alone and step over id 1.)
            while not fast_task.done() and not await waiting_for_lock():  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # what the server shows has no event to wait on
            assert await b.revoked_since(after_id=seen) == (seen, [])
            release.set()
            await slow_task
            await fast_task
            newest, revoked = await b.revoked_since(after_id=seen)
            assert revoked == [(one.token_id, "device"), (two.token_id, "device")]
            assert newest == await a.newest_revocation()
        finally:
            release.set()  # a failed check must not leave the slow transaction open
            await first.close()
            await second.close()


async def test_a_nameplate_is_claimed_once_and_its_token_made_by_the_claim(
    backend: Backend,
) -> None:
    st = await home(backend)
    picks = iter([7, 7, 8, 9, 10])  # 7 twice: a taken number is tried again

    def choose(open_now: int) -> int:
        return next(picks)

    n = await st.add_nameplate(
        account="home", mailbox=BOX, now=0.0, expires_at=100.0, per_account=2, choose=choose
    )
    assert n == 7
    second = await st.add_nameplate(
        account="home", mailbox=OTHER_BOX, now=0.0, expires_at=100.0, per_account=2, choose=choose
    )
    assert second == 8  # 7 was taken
    assert (
        await st.add_nameplate(
            account="home", mailbox=BOX, now=0.0, expires_at=100.0, per_account=2, choose=choose
        )
        is None
    )  # the account's share is used up
    assert not [t for t in await st.list_tokens(account="home") if t["label"] == "nameplate"]
    claimed = await st.claim_nameplate(nameplate=7, now=10.0)
    assert claimed is not None
    mailbox, issued = claimed
    assert mailbox == BOX and issued.expires_at == 100.0
    parts = accounts.split_token(issued.token)
    assert parts is not None
    principal = await st.verify_token(token_id=parts[0], secret=parts[1], now=11.0)
    assert isinstance(principal, Principal) and principal.kind == "restricted"
    assert principal.mailboxes == frozenset({BOX})
    assert await st.claim_nameplate(nameplate=7, now=11.0) is None  # once
    assert await st.claim_nameplate(nameplate=8, now=100.0) is None  # expired: gone, no token
    assert await st.claim_nameplate(nameplate=8, now=50.0) is None  # and deleted by that try
    # Expired ones free the account's share.
    again = await st.add_nameplate(
        account="home", mailbox=BOX, now=200.0, expires_at=300.0, per_account=2, choose=choose
    )
    assert again == 9
