"""Each account's budgets held across relay processes: two real relay processes on one
PostgreSQL and one Garage bucket, as behind a load balancer, with small shares. A household's
sockets, long-polls, request bodies and live sessions spread over both are refused (429 with
the resource's code) at its share, counted once for both; another household is still served;
a slot given back on one process is free on the other; a household opening sockets on both as
fast as it can never holds more than its share; and the slots of a process killed with
SIGKILL are free again once its leases expire (4 s on ``a``; 30 s on ``b``, so that a slot
freed on ``b`` within seconds can only have been given back, not expired).

A process renews its leases every third of ``lease_seconds``; one that stalls past its lease
(its event loop or the database held up that long) loses them, and the other process may then
give the household more than its share (``relay.backends.pg_leases``). ``a``'s 4 s are short
for the kill test and still several times the stalls of a loaded 2-core test machine: at 1.5 s
the burst test below saw 4 sockets granted for a share of 3 once, in a full run."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import aiohttp
import pytest
from relay_harness import (
    RelayProcess,
    first_answer,
    mailbox_id,
    make_process,
    post_head,
    slow_upload,
)

from privastead.errors import RelayRejectedError
from privastead.relay.client import RelayClient
from support.relay_storage import storage_for

pytestmark = pytest.mark.garage
T = TypeVar("T")
SOCKETS = 3
#: Seconds of process ``a``'s leases (see above).
A_LEASE = 4.0
BUDGETS = """
[budgets]
sockets_per_account = 3
sockets_per_token = 3
waits_per_account = 2
waits_per_token = 2
live_sessions_per_account = 2
bodies_per_account = 2
bodies_per_token = 2
lease_seconds = {lease}
"""
Pair = tuple[RelayProcess, RelayProcess, str]


@pytest.fixture(scope="module")
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    with storage_for("postgresql", request) as storage:
        a = make_process(
            tmp_path_factory.mktemp("a"), BUDGETS.format(lease=A_LEASE) + storage.toml, storage.env
        )
        a.storage = storage
        b = RelayProcess(
            data_dir=tmp_path_factory.mktemp("b") / "data",
            config_text=BUDGETS.format(lease=30.0) + storage.toml,
            env=storage.env,
            owner_token=a.owner_token,  # one account, one database
            storage=storage,
        )
        neighbour = a.cli("accounts", "add", "neighbour").strip().splitlines()[-1]
        try:
            b.start()
            yield a, b, neighbour
        finally:
            a.kill9()
            b.kill9()


def _code(err: pytest.ExceptionInfo[RelayRejectedError]) -> tuple[int, str]:
    return err.value.status, err.value.code


async def _handshake(relay: RelayProcess, path: str) -> tuple[int, str]:
    """A WebSocket handshake of the household whose refusal's JSON error is read (the
    client's ``ws_connect`` does not expose the body)."""
    headers = {
        "Authorization": f"Bearer {relay.owner_token}",
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }
    async with aiohttp.ClientSession() as s, s.get(relay.url + path, headers=headers) as r:
        if r.status == 101:
            return 101, ""
        return r.status, (await r.json())["error"]["code"]


async def _once_free(what: Callable[[], Awaitable[T]], within: float = 15.0) -> T:
    """``what`` retried while it is refused for the account's share."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await what()
        except RelayRejectedError as exc:
            if exc.status != 429 or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def _neighbour_is_served(pair: Pair) -> None:
    """The other household: its own share of sockets on both processes, a long-poll."""
    a, b, token = pair
    async with RelayClient(a.url, token) as na, RelayClient(b.url, token) as nb:
        subs = [await na.subscribe([]), await nb.subscribe([]), await na.subscribe([])]
        box = mailbox_id()
        await na.create_mailbox(box)
        poll = asyncio.create_task(nb.list_messages(box, wait=10))
        await asyncio.sleep(0.3)  # the long-poll is waiting on b
        await na.upload(box, b"hello", "h")
        assert len((await asyncio.wait_for(poll, 10)).messages) == 1
        for sub in subs:
            await sub.close()


async def test_sockets_on_both_processes_stop_at_the_account_share(pair: Pair) -> None:
    a, b, _ = pair
    async with a.client() as ca, b.client() as cb:
        subs = [await ca.subscribe([]), await cb.subscribe([]), await ca.subscribe([])]
        for relay in (a, b):  # each process alone holds fewer than the share
            assert await _handshake(relay, "/v1/ws") == (429, "too_many_websockets")
        await _neighbour_is_served(pair)
        # Closed on b, whose leases last 30 s: free on a within seconds, so given back.
        await subs[1].close()
        subs[1] = await _once_free(lambda: ca.subscribe([]))
        with pytest.raises(RelayRejectedError):
            await cb.subscribe([])
        for sub in subs:
            await sub.close()


async def test_long_polls_on_both_processes_stop_at_the_account_share(pair: Pair) -> None:
    a, b, _ = pair
    async with a.client() as ca, b.client() as cb:
        box = mailbox_id()
        await ca.create_mailbox(box)
        polls = [asyncio.create_task(c.list_messages(box, wait=20)) for c in (ca, cb)]
        await asyncio.sleep(0.3)  # both long-polls are waiting
        for c in (ca, cb):
            with pytest.raises(RelayRejectedError) as err:
                await c.list_messages(box, wait=20)
            assert _code(err) == (429, "too_many_waits")
        await _neighbour_is_served(pair)
        await ca.upload(box, b"wake", "w")
        for poll in polls:
            assert [m.body for m in (await asyncio.wait_for(poll, 10)).messages] == [b"wake"]
        # Both waits ended, their slots given back: a new one waits again.
        again = asyncio.create_task(_once_free(lambda: cb.list_messages(box, after=1, wait=20)))
        await asyncio.sleep(0.3)
        await ca.upload(box, b"again", "w2")
        assert [m.body for m in (await asyncio.wait_for(again, 20)).messages] == [b"again"]


async def test_live_sessions_on_both_processes_stop_at_the_account_share(pair: Pair) -> None:
    a, b, _ = pair
    async with a.client() as ca, b.client() as cb:
        viewer = await ca.live(mailbox_id())
        publisher = await cb.live(mailbox_id(), "publisher")
        for relay in (a, b):
            refused = await _handshake(relay, f"/v1/live/{mailbox_id()}?role=viewer")
            assert refused == (429, "too_many_live_sessions")
        await viewer.close()
        third = await _once_free(lambda: cb.live(mailbox_id()))
        await third.close()
        await publisher.close()


async def test_bodies_on_both_processes_stop_at_the_account_share(pair: Pair) -> None:
    a, b, _ = pair
    box = mailbox_id()
    async with a.client() as ca, b.client() as cb:
        await ca.create_mailbox(box)
        # One upload whose body has barely begun on each process: the account's two slots.
        slow = [slow_upload(r.port, r.owner_token, box, f"slow-{r.port}") for r in (a, b)]
        try:
            await asyncio.sleep(0.3)  # both bodies are being received
            for c in (ca, cb):
                with pytest.raises(RelayRejectedError) as err:
                    await c.upload(box, b"one more", "more")
                assert _code(err) == (429, "too_many_uploads")
            # With Expect: 100-continue no go-ahead is given: the share is known before.
            head = post_head(box, a.owner_token, 1000, "Expect: 100-continue\r\n")
            answer = await asyncio.to_thread(first_answer, a.port, head)
            assert answer.startswith(b"HTTP/1.1 429"), answer[:80]
            await _neighbour_is_served(pair)
        finally:
            for s in slow:
                s.close()
        assert (await _once_free(lambda: cb.upload(box, b"one more", "more"))).seq == 1


async def test_sockets_opened_on_both_as_fast_as_possible_never_pass_the_share(
    pair: Pair,
) -> None:
    """Adversarial: bursts of sockets alternating between the processes, all at once, then
    all closed and again; at no moment does the household hold more than its share."""
    a, b, _ = pair
    async with a.client() as ca, b.client() as cb:
        granted = []
        for _ in range(4):
            tries = await asyncio.gather(
                *((ca if i % 2 else cb).subscribe([]) for i in range(16)),
                return_exceptions=True,
            )
            subs = [t for t in tries if not isinstance(t, BaseException)]
            refused = [t for t in tries if isinstance(t, BaseException)]
            assert len(subs) <= SOCKETS  # all open at once
            # (the client's handshake error carries the status only; the code is read above)
            assert all(isinstance(r, RelayRejectedError) and r.status == 429 for r in refused)
            granted.append(len(subs))
            for sub in subs:
                await sub.close()
        assert max(granted) == SOCKETS, granted
        # Everything given back: the whole share is there again.
        subs = [await _once_free(lambda: ca.subscribe([])) for _ in range(SOCKETS)]
        for sub in subs:
            await sub.close()


async def test_a_killed_process_slots_are_free_once_its_leases_expire(pair: Pair) -> None:
    a, b, _ = pair  # last in this module: a is restarted at its end
    async with a.client() as ca, b.client() as cb:
        held = [await _once_free(lambda: ca.subscribe([])) for _ in range(SOCKETS)]
        a.kill9()
        # The dead process's leases still count ...
        assert await _handshake(b, "/v1/ws") == (429, "too_many_websockets")
        # ... until they expire (A_LEASE on a): then the whole share is free.
        subs = [await _once_free(lambda: cb.subscribe([])) for _ in range(SOCKETS)]
        with pytest.raises(RelayRejectedError):
            await cb.subscribe([])
        for sub in subs + held:
            await sub.close()
    a.start()
