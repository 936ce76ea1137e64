"""The relay's native front (``front = "native"``): a child process that owns the listening
socket and every client connection, stores plain small uploads itself and forwards every
other request, byte for byte, to the Python relay (over one backend connection per client
connection). Against real relay processes on loopback.

What must hold: every answer is the one the Python relay alone gives (a differential test
against a ``front = "python"`` twin fed the same requests); the front really stores uploads
(its counters, and subscribers, long-polls and pushes learn of them); slow, pipelined,
revoked and throttled clients are served as before; and neither a kill -9 of the child nor
of the parent loses an upload that was answered 201.

Requests are written as raw bytes on asyncio sockets (``raw_http.py``), so each test decides
exactly what arrives in which TCP write and on which connection (the front decides per
request).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import hashlib
import itertools
import os
import random
import signal
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from raw_http import Answer, Conn, http_request, ws_frame, ws_subscribe, ws_text
from relay_fronts import front_children, front_config, gone, kill_with_front
from relay_harness import OPERATOR_TOKEN, RelayProcess, mailbox_id, make_process, run_cli

from privastead.errors import RelayRejectedError, RelayUnavailableError
from privastead.relay.api import MessageInfo
from privastead.relay.client import RelayClient

FRONT_UPLOADS = "relay_front_uploads_total"
BACKEND = "relay_front_backend_connections_total"
STORED = "relay_messages_stored_total"
# Webhooks to the local receiver of the push test (plain HTTP on loopback).
PUSH_TOML = (
    '[push]\nwebhook_allow_http = true\nwebhook_allow_networks = ["127.0.0.0/8"]\nretries = 0\n'
)
# The throttle would make the differential depend on timing (a lock lasts seconds): its
# free failures are raised so that every bad token is a plain 401 on both relays.
PAIR_CONFIG = "[auth]\nmax_failures = 1000000\n" + PUSH_TOML
# Small timeouts so that slow clients are cut off within seconds (see Limits in config.py).
SLOW_CONFIG = "[limits]\nidle_timeout = 5.0\nbody_timeout = 2.0\nbody_grace_seconds = 1.0\n"


def upload_request(
    box: str,
    token: str,
    msg_id: str,
    body: bytes,
    extra: Sequence[tuple[str, str | bytes]] = (),
) -> bytes:
    """A plain small upload: what the front stores itself."""
    return http_request(
        "POST",
        f"/v1/mailboxes/{box}/messages",
        [
            ("Host", "relay"),
            ("Authorization", f"Bearer {token}"),
            ("Privastead-Message-Id", msg_id),
            ("Content-Length", str(len(body))),
            *extra,
        ],
        body,
    )


def listing_request(box: str, token: str) -> bytes:
    return http_request(
        "GET",
        f"/v1/mailboxes/{box}/messages?limit=1000",
        [("Host", "relay"), ("Authorization", f"Bearer {token}")],
    )


def created(seq: int) -> tuple[object, ...]:
    """The outcome of an upload stored without eviction."""
    return (201, {"seq": seq, "duplicate": False, "evicted": []})


def listed(*bodies: bytes) -> dict[str, Any]:
    """The JSON listing of a mailbox holding ``bodies`` (small ones) from seq 1 on."""
    return {
        "messages": [
            {"seq": i, "size": len(b), "body": base64.b64encode(b).decode()}
            for i, b in enumerate(bodies, 1)
        ],
        "last_seq": len(bodies),
    }


async def scrape(relay: RelayProcess, conn: Conn | None = None) -> dict[str, float]:
    """The relay's counters, summed over their labels (and each labelled series under its
    own name with the labels, as written). A scrape on a fresh connection is
    itself forwarded by the front on a new backend connection: pass one kept-alive
    ``conn`` to count backend connections."""
    own = conn is None
    conn = conn or await Conn.open(relay.port)
    try:
        answer = await conn.request(
            http_request(
                "GET",
                "/metrics",
                [("Host", "relay"), ("Authorization", f"Bearer {OPERATOR_TOKEN}")],
            )
        )
    finally:
        if own:
            await conn.close()
    assert answer.status == 200, answer
    totals: dict[str, float] = {}
    for line in answer.body.decode().splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            name = series.split("{", 1)[0]
            totals[name] = totals.get(name, 0.0) + float(value)
            if series != name:
                totals[series] = float(value)
    return totals


def delta(after: dict[str, float], before: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


def body_of(size: int, seed: object) -> bytes:
    """Deterministic bytes, the same for both relays of a differential."""
    return hashlib.shake_256(f"{seed}:{size}".encode()).digest(size) if size else b""


# --- relays -----------------------------------------------------------------------------------


@dataclass
class Pair:
    """Two relays from identical setups: ``front = "native"`` and ``front = "python"``."""

    native: RelayProcess
    python: RelayProcess

    @property
    def both(self) -> tuple[RelayProcess, RelayProcess]:
        return self.native, self.python


def start_pair(root: Path, config: str) -> Pair:
    native = make_process(root / "native", front_config("native", config))
    try:
        python = make_process(root / "python", front_config("python", config))
    except BaseException:
        kill_with_front(native)
        raise
    return Pair(native, python)


def _pairs(factory: pytest.TempPathFactory, name: str, config: str) -> Iterator[Pair]:
    relays = start_pair(factory.mktemp(name), config)
    try:
        yield relays
    finally:
        for relay in relays.both:
            kill_with_front(relay)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Shared by the tests that use their own mailboxes and count metrics as differences."""
    yield from _pairs(tmp_path_factory, "front-pair", PAIR_CONFIG)


@pytest.fixture(scope="module")
def slow_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Relays with timeouts of seconds, for the slow clients."""
    yield from _pairs(tmp_path_factory, "front-slow", SLOW_CONFIG)


@pytest.fixture
def native(tmp_path: Path) -> Iterator[RelayProcess]:
    """A native-front relay of its own (the crash tests kill it)."""
    relay = make_process(tmp_path, front_config("native", "[limits]\nidle_timeout = 5.0\n"))
    try:
        yield relay
    finally:
        kill_with_front(relay)


# --- 1. differential: the front answers every upload as the Python relay does -----------------

QUOTA = 40_000  # two 16 KiB messages fit, a third evicts (each costs 256 bytes more)
FOREIGN = mailbox_id()  # a mailbox of another account, the same id on both relays
VALID_ROLES = ("owner", "device", "restricted")
ODD_ROLES = (
    "wrong_secret",
    "unknown_id",
    "malformed",
    "missing",
    "basic",
    "revoked",
    "expired",
    "other_owner",
)
ODD_BOXES = ("b", "missing", "foreign", "upper", "short")  # "b": outside a restricted scope
MSG_IDS = tuple(f"m{i}" for i in range(10))  # few: ids are reused (retries, conflicts)
ODD_MSG_IDS = ("", "bad id", "x" * 65, "é", None)
SIZES = (1, 100, 1000, 16383, 16384, 16384, 16384, 16385)  # 16 KiB fills the quota fast
ODD_SIZES = (0, 70_000)  # empty; over the quota by itself
PUSHES = ("valid", "empty", "invalid", "too_large", "padded")
VARIANTS = (
    "fresh",  # on a new connection
    "http10",
    "query_id",  # ?message_id= instead of the header
    "expect",  # Expect: 100-continue (body sent at once anyway)
    "chunked",
    "gzip",  # Content-Encoding: gzip
    "lower",  # lower-case header names, "bearer"
    "dup_msgid",  # a second Privastead-Message-Id header
    "spaces_auth",
    "cl_zero",  # Content-Length: 00<n>
    "trailing_slash",
    "extra_query",
    "connection_close",
    "pipelined_list",  # a listing request in the same write
)


@dataclass(frozen=True)
class Step:
    kind: str = "upload"  # or "list"
    role: str = "owner"
    box: str = "a"
    msg_id: str | None = "m0"  # None: no message id at all
    size: int = 100
    seed: int = 0  # another seed, other bytes: a reused message id conflicts
    push: str = "none"
    variant: str = "plain"
    reconnect: bool = False  # close the kept-alive connection first


ODDITIES = ("role", "box", "msg_id", "size", "push", "push", "variant", "variant", "kind")


def random_steps(seed: int) -> list[Step]:
    """5 to 30 steps, each a valid small upload (so that the front's own path is taken
    often), about one in two with a single thing made odd: the token, the mailbox, the
    message id, the size, a push, the HTTP framing, or a listing instead.

    Drawn from a PRNG that hypothesis seeds: with a few dozen examples, hypothesis's own
    choices stay near its simplest values and rarely reach the odd cases."""
    rnd = random.Random(seed)
    sizes = {m: rnd.choice(SIZES) for m in MSG_IDS}  # a retry sends the same bytes again
    out = []
    for _ in range(rnd.randint(5, 30)):
        msg_id = rnd.choice(MSG_IDS)
        step = Step(
            role=rnd.choice(VALID_ROLES),
            msg_id=msg_id,
            size=sizes[msg_id],
            seed=rnd.choice((0,) * 9 + (1,)),
            reconnect=rnd.random() < 0.1,
        )
        odd = rnd.choice(("",) * 8 + ODDITIES)
        if odd == "role":
            step = replace(step, role=rnd.choice(ODD_ROLES))
        elif odd == "box":
            step = replace(step, box=rnd.choice(ODD_BOXES))
        elif odd == "msg_id":
            step = replace(step, msg_id=rnd.choice(ODD_MSG_IDS))
        elif odd == "size":
            step = replace(step, size=rnd.choice(ODD_SIZES))
        elif odd == "push":
            step = replace(step, push=rnd.choice(PUSHES))
        elif odd == "variant":
            step = replace(step, variant=rnd.choice(VARIANTS))
        elif odd == "kind":
            step = replace(step, kind="list", box=rnd.choice(("a", "b")))
        out.append(step)
    return out


STEPS = st.integers(0, 2**64 - 1).map(random_steps)

S = Step
# Every case of the brief at least once, in an order that fills the quota.
COVERAGE = [
    S(msg_id="m0", size=1),  # stored by the front
    S(msg_id="m0", size=1),  # a retry: duplicate
    S(msg_id="m0", size=1, seed=1),  # same id, other bytes: 409
    S(msg_id="m1", size=16384),  # the largest the front takes
    S(msg_id="m2", size=16385, role="device"),  # one byte more: the Python relay's
    S(msg_id="m3", size=0),  # empty body
    S(msg_id="k1", size=16384, role="restricted"),  # full, and may not evict: 507
    S(msg_id="m4", size=16384, role="device", box="b"),  # evicts the oldest
    S(msg_id="m5", size=70_000),  # over the quota itself: 413
    S(msg_id="k2", size=10, role="restricted"),
    S(msg_id="k3", size=10, role="restricted", box="b"),  # outside its scope
    S(msg_id="k4", size=10, role="restricted", push="valid"),  # may not push
    *(S(msg_id=f"p{i}", size=10, push=p) for i, p in enumerate(PUSHES)),
    *(S(msg_id="w0", size=10, role=r) for r in ODD_ROLES),
    *(S(msg_id="b0", size=10, box=b) for b in ODD_BOXES),
    *(S(msg_id=m, size=10) for m in ODD_MSG_IDS),
    *(S(msg_id=f"v{i}", size=20, variant=v) for i, v in enumerate(VARIANTS)),
    S(msg_id="v0", size=20, variant="plain"),  # the same as the "fresh" one: duplicate
    S(kind="list", box="a"),
    S(kind="list", box="b", role="restricted"),
    S(msg_id="z1", size=16384, reconnect=True),
    S(msg_id="z2", size=16384, variant="pipelined_list", role="device"),
]


@dataclass
class Household:
    """One relay's side of a differential example: its tokens by role and its mailboxes."""

    relay: RelayProcess
    auth: dict[str, str | None]  # role -> Authorization header value (None: no header)
    boxes: dict[str, str]  # role -> path segment
    owner: str
    other_owner: str
    main: Conn | None = None  # the kept-alive connection of the steps

    async def connection(self) -> Conn:
        if self.main is None or self.main.closed:
            self.main = await Conn.open(self.relay.port)
        return self.main

    async def drop(self) -> None:
        if self.main is not None:
            await self.main.close()
            self.main = None


@dataclass(frozen=True)
class Statics:
    """Tokens and a mailbox of a second account, the same on each relay across examples."""

    other_owner: str
    revoked: str
    expired: str


async def make_statics(relay: RelayProcess) -> Statics:
    out = await asyncio.to_thread(relay.cli, "accounts", "add", "other")
    other = out.strip().splitlines()[-1]
    async with RelayClient(relay.url, other) as c:
        await c.create_mailbox(FOREIGN)
        phone = await c.create_device("removed phone")
        await c.remove_device(phone.device_id)
        expiring = await c.create_restricted_token([FOREIGN], ttl_seconds=1)
    assert expiring.expires_at is not None
    await asyncio.sleep(max(0.0, expiring.expires_at - time.time()) + 0.2)
    return Statics(other_owner=other, revoked=phone.token, expired=expiring.token)


_households = itertools.count()


async def make_household(
    relay: RelayProcess, statics: Statics, name: str, ids: dict[str, str]
) -> Household:
    out = await asyncio.to_thread(relay.cli, "accounts", "add", name, "--quota-bytes", str(QUOTA))
    owner = out.strip().splitlines()[-1]
    async with RelayClient(relay.url, owner) as c:
        await c.create_mailbox(ids["a"])
        await c.create_mailbox(ids["b"])
        device = await c.create_device("phone")
        restricted = await c.create_restricted_token([ids["a"]], ttl_seconds=3600)
    token_id, secret = owner.split("_")[1], owner.split("_", 2)[2]
    wrong = secret[:-1] + ("B" if secret.endswith("A") else "A")
    auth: dict[str, str | None] = {
        "owner": f"Bearer {owner}",
        "device": f"Bearer {device.token}",
        "restricted": f"Bearer {restricted.token}",
        "wrong_secret": f"Bearer pst_{token_id}_{wrong}",
        "unknown_id": "Bearer pst_0123456789abcdef_" + "A" * 43,
        "malformed": "Bearer nonsense",
        "missing": None,
        "basic": "Basic dXNlcjpwYXNzd29yZA==",
        "revoked": f"Bearer {statics.revoked}",
        "expired": f"Bearer {statics.expired}",
        "other_owner": f"Bearer {statics.other_owner}",
    }
    boxes = {
        **ids,
        "foreign": FOREIGN,
        "upper": ids["a"].upper(),
        "short": ids["a"][:31],
    }
    return Household(relay, auth, boxes, owner, statics.other_owner)


def step_request(h: Household, step: Step) -> bytes:
    """The bytes of ``step`` for household ``h`` (the same shape on both relays)."""
    box = h.boxes[step.box]
    auth = h.auth[step.role]
    v = step.variant
    if v == "lower" and auth is not None and auth.startswith("Bearer "):
        auth = "bearer " + auth[len("Bearer ") :]
    if v == "spaces_auth" and auth is not None:
        auth = auth.replace(" ", "   ") + "  "
    headers: list[tuple[str, str | bytes]] = [("Host", "relay")]
    if auth is not None:
        headers.append(("Authorization", auth))
    if step.kind == "list":
        target = f"/v1/mailboxes/{box}/messages?limit=1000"
        return http_request("GET", target, headers)
    target = f"/v1/mailboxes/{box}/messages"
    if v == "trailing_slash":
        target += "/"
    if v == "query_id":
        if step.msg_id is not None:
            target += "?message_id=" + quote(step.msg_id, safe="")
    elif step.msg_id is not None:
        headers.append(("Privastead-Message-Id", step.msg_id.encode()))
    if v == "dup_msgid":
        headers.append(("Privastead-Message-Id", "dup-2"))
    if v == "extra_query":
        target += "?x=1"
    push = {
        "none": None,
        "valid": base64.b64encode(b"wake up").decode(),
        "empty": "",
        "invalid": "not base64!",
        "too_large": base64.b64encode(b"p" * 5000).decode(),
        "padded": "  " + base64.b64encode(b"wake").decode() + "  ",
    }[step.push]
    if push is not None:
        headers.append(("Privastead-Push", push))
    body = body_of(step.size, (step.msg_id, step.seed))
    if v == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
        chunk = f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b""
        body = chunk + b"0\r\n\r\n"
    elif v == "gzip":
        body = gzip.compress(body, mtime=0)
        headers += [("Content-Encoding", "gzip"), ("Content-Length", str(len(body)))]
    elif v == "cl_zero":
        headers.append(("Content-Length", f"00{len(body)}"))
    else:
        headers.append(("Content-Length", str(len(body))))
    if v == "expect":
        headers.append(("Expect", "100-continue"))
    if v == "connection_close":
        headers.append(("Connection", "close"))
    if v == "lower":
        headers = [(name.lower(), value) for name, value in headers]
    request = http_request(
        "POST", target, headers, body, "HTTP/1.0" if v == "http10" else "HTTP/1.1"
    )
    if v == "pipelined_list":
        request += listing_request(h.boxes["a"], h.owner)
    return request


async def run_step(h: Household, step: Step) -> tuple[object, ...]:
    """Send ``step`` and read what it is owed: its answer (two for a pipelined listing),
    and whether the relay then closes the connection where it must."""
    if step.reconnect:
        await h.drop()
    fresh = step.variant == "fresh"
    conn = await Conn.open(h.relay.port) if fresh else await h.connection()
    answers: list[object] = []
    last: Answer | None = None
    try:
        await conn.send(step_request(h, step))
        owed = 2 if step.kind == "upload" and step.variant == "pipelined_list" else 1
        for _ in range(owed):
            last = await conn.answer(10.0)
            if last is None:
                answers.append("no answer")
                break
            answers.append(last.outcome())
            if last.closes:
                break
        if step.variant in ("http10", "connection_close") and not conn.closed:
            answers.append(("ends", await conn.ended(3.0)))
    except TimeoutError:
        answers.append("timeout")
        conn.closed = True
    if fresh or conn.closed or last is None or last.closes:
        await conn.close()
    return tuple(answers)


async def snapshot(h: Household) -> dict[str, object]:
    """Every mailbox of the example as the owner sees it: seq, size, body digest."""
    out: dict[str, object] = {}
    for role, token in (("a", h.owner), ("b", h.owner), ("foreign", h.other_owner)):
        box = h.boxes[role]
        async with RelayClient(h.relay.url, token) as c:
            page = await c.list_messages(box, limit=1000)
            info = await c.mailbox_info(box)
            rows = []
            for m in page.messages:
                body = await c.body_of(box, m)
                rows.append((m.seq, m.size, m.body is not None, hashlib.sha256(body).hexdigest()))
        out[role] = (page.last_seq, info.count, info.bytes, rows)
    return out


async def compare(pair: Pair, statics: dict[int, Statics], steps: list[Step]) -> None:
    name = f"diff-{next(_households)}-{os.urandom(3).hex()}"
    ids = {"a": mailbox_id(), "b": mailbox_id(), "missing": mailbox_id()}
    native, python = await asyncio.gather(
        *(make_household(r, statics[r.port], name, ids) for r in pair.both)
    )
    try:
        for i, step in enumerate(steps):
            got_native, got_python = await asyncio.gather(
                run_step(native, step), run_step(python, step)
            )
            assert got_native == got_python, (
                f"step {i} {step}:\n native {str(got_native)[:1500]}\n"
                f" python {str(got_python)[:1500]}"
            )
        end_native, end_python = await asyncio.gather(snapshot(native), snapshot(python))
        assert end_native == end_python
    finally:
        await native.drop()
        await python.drop()


REQUESTS = "relay_requests_total{"  # by route, method and status
COMPARED = (
    STORED,
    "relay_messages_duplicate_total",
    "relay_messages_evicted_total",
    "relay_received_bytes_total",
    "relay_auth_failures_total",
)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_front_answers_every_upload_as_the_python_relay_does(pair: Pair) -> None:
    """Random sequences of uploads (tokens of every kind and state, mailboxes in and out of
    scope, message ids new, reused and malformed, sizes around 16 KiB, pushes, a small
    quota, and HTTP framings the front must leave to Python) sent to both relays in step:
    the same status, error code or result at each step, the same mailboxes at the end."""

    async def prepare() -> tuple[dict[int, Statics], list[dict[str, float]]]:
        made = await asyncio.gather(*(make_statics(r) for r in pair.both))
        counters = await asyncio.gather(*(scrape(r) for r in pair.both))
        return {r.port: s for r, s in zip(pair.both, made, strict=True)}, list(counters)

    statics, before = asyncio.run(prepare())

    @settings(
        max_examples=40,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # a shrink would take many minutes
        suppress_health_check=list(HealthCheck),
    )
    @given(steps=STEPS)
    @example(steps=COVERAGE)
    def differential(steps: list[Step]) -> None:
        asyncio.run(compare(pair, statics, steps))

    differential()

    async def counters() -> list[dict[str, float]]:
        return list(await asyncio.gather(*(scrape(r) for r in pair.both)))

    after = asyncio.run(counters())
    compared = [*COMPARED, *(n for n in {*after[0], *after[1]} if n.startswith(REQUESTS))]
    native = {n: delta(after[0], before[0], n) for n in compared}
    python = {n: delta(after[1], before[1], n) for n in compared}
    # The parent counts what the front stored as its own: the totals agree.
    assert native == python
    # And the front's path was really taken, and so was the forwarding.
    assert delta(after[0], before[0], FRONT_UPLOADS) > 0
    assert delta(after[0], before[0], BACKEND) > 0
    assert delta(after[0], before[0], FRONT_UPLOADS) < native[STORED]
    assert after[1].get(FRONT_UPLOADS, 0.0) == 0.0
    assert after[1].get(BACKEND, 0.0) == 0.0


# --- 2. the native path is really taken -------------------------------------------------------


async def test_uploads_on_one_connection_are_stored_by_the_front(pair: Pair) -> None:
    n = 20
    for relay in pair.both:
        is_native = relay is pair.native
        box = mailbox_id()
        async with relay.client() as owner:
            await owner.create_mailbox(box)
        # The scrapes go over one connection of their own: its backend connection is
        # opened by the first.
        async with await Conn.open(relay.port) as meter, await Conn.open(relay.port) as conn:
            before = await scrape(relay, meter)
            for i in range(n):
                answer = await conn.request(
                    upload_request(box, relay.owner_token, f"k{i}", body_of(100 + i, 0))
                )
                assert answer.outcome() == created(i + 1)
                # The common answer, byte for byte as the Python relay writes it.
                assert answer.body == b'{"seq": %d, "duplicate": false, "evicted": []}' % (i + 1)
                assert answer.headers["content-type"].startswith("application/json")
            after = await scrape(relay, meter)
            assert delta(after, before, STORED) == n
            if is_native:
                assert delta(after, before, FRONT_UPLOADS) == n
                assert delta(after, before, BACKEND) == 0  # nothing forwarded
            else:
                assert after.get(FRONT_UPLOADS, 0.0) == 0.0
                assert after.get(BACKEND, 0.0) == 0.0
            # Quiet for longer than the front waits for a request's bytes: the connection
            # stays, and its next upload is the front's again.
            await asyncio.sleep(2.5)
            answer = await conn.request(
                upload_request(box, relay.owner_token, "late", b"after a pause")
            )
            assert answer.outcome() == created(n + 1)
            final = await scrape(relay, meter)
            assert delta(final, before, FRONT_UPLOADS) == (n + 1 if is_native else 0)
        async with relay.client() as owner:
            page = await owner.list_messages(box, limit=1000)
        assert [(m.seq, m.body) for m in page.messages] == [
            *((i + 1, body_of(100 + i, 0)) for i in range(n)),
            (n + 1, b"after a pause"),
        ]


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[TestServer, list[bytes]]]:
    received: list[bytes] = []

    async def endpoint(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(status=201)

    app = web.Application()
    app.router.add_post("/up/{id}", endpoint)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield server, received
    finally:
        await server.close()


async def test_front_uploads_reach_subscribers_long_polls_and_pushes(
    pair: Pair, webhook: tuple[TestServer, list[bytes]]
) -> None:
    relay = pair.native
    receiver, received = webhook
    box = mailbox_id()

    def push(payload: bytes) -> list[tuple[str, str | bytes]]:
        return [("Privastead-Push", base64.b64encode(payload).decode())]

    async with relay.client() as owner:
        await owner.create_mailbox(box)
        phone = await owner.create_device("phone")
        async with relay.client(phone.token) as p:
            await p.register(box)
            await p.set_push(webhook_url=str(receiver.make_url("/up/phone")))
        before = await scrape(relay)
        # The phone's own upload wakes others, never the phone: the front must tell the
        # parent who uploaded.
        async with await Conn.open(relay.port) as conn:
            answer = await conn.request(
                upload_request(box, phone.token, "own", b"mine", push(b"own"))
            )
        assert answer.outcome() == created(1)
        sub = await owner.subscribe([box])
        assert (await asyncio.wait_for(sub.next_event(), 10))["type"] == "subscribed"
        async with relay.client(phone.token) as reader:
            poll = asyncio.create_task(reader.list_messages(box, after=1, wait=10))
            await asyncio.sleep(0.5)
            assert not poll.done()
            t0 = time.monotonic()
            async with await Conn.open(relay.port) as conn:
                answer = await conn.request(
                    upload_request(box, relay.owner_token, "wake", b"event", push(b"\x01wake"))
                )
            assert answer.outcome() == created(2)
            event = await asyncio.wait_for(sub.next_event(), 5)
            assert event == {"type": "message", "mailbox": box, "seq": 2}
            page = await asyncio.wait_for(poll, 5)
            assert [(m.seq, m.body) for m in page.messages] == [(2, b"event")]
            assert time.monotonic() - t0 < 5, "the long-poll ran out instead of waking"
        deadline = time.monotonic() + 5
        while not received:
            assert time.monotonic() < deadline, "no push for an upload stored by the front"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # time for a wrong push of the phone's own upload
        assert received == [b"\x01wake"]
        after = await scrape(relay)
        assert delta(after, before, FRONT_UPLOADS) == 2  # both were the front's
        assert delta(after, before, STORED) == 2
        await sub.close()


async def test_the_relay_knows_of_an_upload_before_its_uploader_is_answered(
    native: RelayProcess,
) -> None:
    """A client that asks right after its 201 (here the metrics; as well a listing, or a
    subscriber waiting for the event) reaches a relay that has been told of the message,
    even while the front waits for a CPU: the front tells the relay before it answers.
    Queued for the front's control thread instead, the news came after the next request
    whenever that thread was not scheduled at once (2 to 19 of the 200 scrapes in three
    runs here)."""
    relay = native
    assert relay.proc is not None
    box = mailbox_id()
    async with relay.client() as owner:
        await owner.create_mailbox(box)
    # Busy processes, three per CPU: the front's threads wait for one, as on a loaded host.
    hogs = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", "while True: pass")
        for _ in range(min(3 * len(os.sched_getaffinity(0)), 48))
    ]
    try:
        behind = []
        for i in range(1, 201):
            async with await Conn.open(relay.port) as conn:
                answer = await conn.request(upload_request(box, relay.owner_token, f"c{i}", b"x"))
            assert answer.outcome() == created(i)
            if (await scrape(relay)).get(FRONT_UPLOADS, 0.0) < i:
                behind.append(i)
        assert behind == [], f"{len(behind)} of 200 scrapes did not count the upload before"
    finally:
        for hog in hogs:
            hog.kill()
            await hog.wait()


async def test_a_mailbox_ttl_applies_to_what_the_front_stores(pair: Pair) -> None:
    """Expiry comes from the mailbox's TTL, for the front's rows as for the Python
    relay's (a 16 KiB + 1 upload): both gone after it, on both relays alike."""
    seen = []
    for relay in pair.both:
        box = mailbox_id()
        async with relay.client() as owner:
            await owner.create_mailbox(box, ttl_seconds=1)
            async with await Conn.open(relay.port) as conn:
                small = await conn.request(upload_request(box, relay.owner_token, "s", b"s"))
                large = await conn.request(
                    upload_request(box, relay.owner_token, "l", b"l" * 16385)
                )
            listed_before = [m.seq for m in (await owner.list_messages(box)).messages]
            await asyncio.sleep(1.5)
            page = await owner.list_messages(box)
            info = await owner.mailbox_info(box)
            retry = await owner.upload(box, b"s", "s")  # its receipt outlives the message
        seen.append(
            (small.outcome(), large.outcome(), listed_before, page, info.count, info.bytes, retry)
        )
        assert page.messages == () and page.last_seq == 2
    assert seen[0] == seen[1]


async def test_front_and_python_writers_together_keep_seqs_dense_and_exactly_once(
    pair: Pair,
) -> None:
    """Small uploads (the front's writer) and large ones (the Python relay's) to one
    mailbox at once, each sent once or twice as a retrying client does: one seq each, no
    hole, every body intact."""
    relay = pair.native
    box = mailbox_id()
    uploaders, per = 6, 15
    sizes = (1, 500, 16384, 16385, 40_000, 70_000)
    bodies = {
        f"u{u}-{i}": body_of(sizes[(u + i) % len(sizes)], u * 100 + i)
        for u in range(uploaders)
        for i in range(per)
    }
    seqs: dict[str, set[int]] = {k: set() for k in bodies}
    async with relay.client() as owner:
        await owner.create_mailbox(box)
    before = await scrape(relay)

    async def uploader(u: int) -> None:
        async with relay.client() as c:
            for i in range(per):
                mid = f"u{u}-{i}"
                for _ in range(1 + (i % 2)):
                    seqs[mid].add((await c.upload(box, bodies[mid], mid)).seq)

    await asyncio.gather(*(uploader(u) for u in range(uploaders)))
    after = await scrape(relay)
    assert all(len(s) == 1 for s in seqs.values()), "a retry got a second seq"
    async with relay.client() as owner:
        page = await owner.list_messages(box, limit=1000)
        assert [m.seq for m in page.messages] == list(range(1, uploaders * per + 1))
        by_seq = {next(iter(s)): mid for mid, s in seqs.items()}
        for m in page.messages:
            assert await owner.body_of(box, m) == bodies[by_seq[m.seq]]
    assert delta(after, before, STORED) == uploaders * per
    assert delta(after, before, FRONT_UPLOADS) > 0  # both writers were at work


# --- 3. adversarial clients through the front -------------------------------------------------


async def _trickle(port: int, data: bytes, every: float, until: float) -> tuple[str, float]:
    """Send ``data`` a byte every ``every`` s; then wait for the answer. Returns the status
    line ("" if the relay closed without one) and when it came."""
    t0 = time.monotonic()
    async with await Conn.open(port) as conn:
        for i in range(len(data)):
            if not await conn.send(data[i : i + 1]):
                break
            try:
                early = await asyncio.wait_for(conn.reader.read(1), every)
            except (TimeoutError, asyncio.TimeoutError):
                continue
            except OSError:
                early = b""
            if early == b"":  # closed by the relay
                return "", time.monotonic() - t0
            rest = await asyncio.wait_for(conn.reader.readuntil(b"\r\n"), until)
            return (early + rest).decode().strip(), time.monotonic() - t0
        try:
            line = await asyncio.wait_for(conn.reader.readuntil(b"\r\n"), until)
        except (asyncio.IncompleteReadError, OSError):
            return "", time.monotonic() - t0
        return line.decode().strip(), time.monotonic() - t0


@pytest.mark.slow
async def test_slow_headers_are_answered_as_by_python(slow_pair: Pair) -> None:
    """A header a byte every 100 ms: finished within the idle timeout (5 s here) it is
    served (by the Python relay: the front waits about 1 s for a request, then forwards
    it); far slower, the connection is closed without an answer and nothing stored."""
    boxes = {}
    for relay in slow_pair.both:
        boxes[relay.port] = mailbox_id()
        async with relay.client() as owner:
            await owner.create_mailbox(boxes[relay.port])
    before = await scrape(slow_pair.native)

    async def cases(relay: RelayProcess) -> tuple[Any, ...]:
        box = boxes[relay.port]
        quick = upload_request(box, relay.owner_token, "q1", b"hello")
        # The last 20 bytes of the header trickled (2 s), the body with the last one.
        split = quick.index(b"\r\n\r\n") - 16
        head_then_trickle = _trickle_after(relay.port, quick[:split], quick[split:])
        whole = _trickle(relay.port, upload_request(box, relay.owner_token, "q2", b"x"), 0.1, 10)
        return await asyncio.gather(head_then_trickle, whole)

    got = await asyncio.gather(*(cases(r) for r in slow_pair.both))
    for name, ((status, _), (closed, took)) in zip(("native", "python"), got, strict=True):
        assert status.startswith("HTTP/1.1 201"), (name, got)
        assert closed == "" and took < 10, (name, got)  # cut off at the idle timeout (+1 s)
    for relay in slow_pair.both:
        async with relay.client() as owner:
            page = await owner.list_messages(boxes[relay.port])
        assert [(m.seq, m.body) for m in page.messages] == [(1, b"hello")]
    after = await scrape(slow_pair.native)
    assert delta(after, before, FRONT_UPLOADS) == 0  # none was complete within ~1 s


@pytest.mark.slow
async def test_idle_connections_are_closed_as_by_python(slow_pair: Pair) -> None:
    """The Python relay closes a connection that has no request for ``idle_timeout``
    (5 s here): a new one that sends nothing, and a kept-alive one after its answer
    (here after an upload, and after a forwarded request). An idle connection must not
    cost the relay a descriptor for ever."""

    async def idle(relay: RelayProcess, first: bytes) -> tuple[bool, float]:
        async with await Conn.open(relay.port) as conn:
            if first:
                answer = await conn.request(first)
                assert answer.status in (200, 201), answer
            t0 = time.monotonic()
            return await conn.ended(15), time.monotonic() - t0

    async def cases(relay: RelayProcess) -> list[tuple[bool, float]]:
        box = mailbox_id()
        async with relay.client() as owner:
            await owner.create_mailbox(box)
        upload = upload_request(box, relay.owner_token, "i1", b"idle")
        healthz = b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n"
        return list(await asyncio.gather(*(idle(relay, f) for f in (b"", upload, healthz))))

    native, python = await asyncio.gather(*(cases(r) for r in slow_pair.both))
    for name, got in (("python", python), ("native", native)):
        for case, (ended, took) in zip(("no request", "an upload", "/healthz"), got, strict=True):
            assert ended and 4 < took < 8, f"{name}, idle after {case}: {got}"


async def _trickle_after(port: int, first: bytes, rest: bytes) -> tuple[str, float]:
    """``first`` at once, then ``rest`` a byte every 100 ms."""
    t0 = time.monotonic()
    async with await Conn.open(port) as conn:
        await conn.send(first)
        for i in range(len(rest)):
            await asyncio.sleep(0.1)
            if not await conn.send(rest[i : i + 1]):
                return "", time.monotonic() - t0
        answer = await conn.answer()
        return (f"{answer.version} {answer.status}" if answer else ""), time.monotonic() - t0


async def _trickled_body(port: int, head: bytes) -> tuple[int, str, float]:
    """The header at once, then 10 body bytes every 100 ms (100 B/s, far below the floor
    rate) until an answer comes: (status, error code, seconds)."""
    t0 = time.monotonic()
    async with await Conn.open(port) as conn:
        await conn.send(head)
        for _ in range(150):  # at most 15 s
            if not await conn.send(b"x" * 10):
                break
            try:
                answer = await conn.answer(0.1)
            except TimeoutError:
                continue
            if answer is None:
                break
            return answer.status, str(answer.outcome()[1]), time.monotonic() - t0
        return 0, "no answer", time.monotonic() - t0


async def test_a_trickled_body_gets_408_as_from_python(slow_pair: Pair) -> None:
    """A small upload whose body trickles in far below the floor rate: the front waits
    about 1 s, then forwards it with what came so far; the Python relay's floor rate
    (after a 1 s grace here) answers 408 as it would have on its own."""
    before = await scrape(slow_pair.native)
    results = []
    for relay in slow_pair.both:
        box = mailbox_id()
        async with relay.client() as owner:
            await owner.create_mailbox(box)
        head = http_request(
            "POST",
            f"/v1/mailboxes/{box}/messages",
            [
                ("Host", "relay"),
                ("Authorization", f"Bearer {relay.owner_token}"),
                ("Privastead-Message-Id", "slow"),
                ("Content-Length", "10000"),  # small: the front's kind of upload
            ],
        )
        results.append((relay, box, await _trickled_body(relay.port, head)))
    for relay, box, (status, code, took) in results:
        assert (status, code) == (408, "body_timeout"), relay.config_text
        assert took < 8  # cut off by the floor rate, not by the end of the body
        async with relay.client() as owner:
            assert (await owner.mailbox_info(box)).count == 0
    after = await scrape(slow_pair.native)
    assert delta(after, before, FRONT_UPLOADS) == 0


async def test_pipelined_requests_are_answered_in_order(pair: Pair) -> None:
    """Requests sent in one write: the front answers its uploads, forwards the others (and
    their answers come back in their place), and stores uploads after them again."""
    for relay in pair.both:
        box = mailbox_id()
        token = relay.owner_token
        async with relay.client() as owner:
            await owner.create_mailbox(box)
        before = await scrape(relay)
        async with await Conn.open(relay.port) as conn:
            await conn.send(
                upload_request(box, token, "p1", b"one")
                + upload_request(box, token, "p2", b"two")
                + listing_request(box, token)
            )
            got = [await conn.answer() for _ in range(3)]
            assert [a.outcome() if a else None for a in got] == [
                created(1),
                created(2),
                (200, listed(b"one", b"two")),
            ]
            await conn.send(listing_request(box, token) + upload_request(box, token, "p3", b"3"))
            got = [await conn.answer() for _ in range(2)]
            assert [a.outcome() if a else None for a in got] == [
                (200, listed(b"one", b"two")),
                created(3),
            ]
        async with await Conn.open(relay.port) as conn:
            # A refused upload first, then a good one and a retry of it.
            await conn.send(
                upload_request(box, "pst_0123456789abcdef_" + "A" * 43, "p4", b"4")
                + upload_request(box, token, "p4", b"four")
                + upload_request(box, token, "p4", b"four")
            )
            got = [await conn.answer() for _ in range(3)]
            assert [a.outcome() if a else None for a in got] == [
                (401, "unauthorized"),
                created(4),
                (200, {"seq": 4, "duplicate": True, "evicted": []}),
            ]
        after = await scrape(relay)
        assert delta(after, before, STORED) == 4
        if relay is pair.native:
            # p1, p2, p3 and the good p4; its retry, a duplicate, is the Python relay's.
            assert delta(after, before, FRONT_UPLOADS) == 4


async def test_a_websocket_after_uploads_on_the_same_connection(pair: Pair) -> None:
    """A client that reuses its kept-alive connection for /v1/ws (aiohttp's pool does):
    the upgrade is forwarded after the front's own uploads, and the socket works both
    ways, events of uploads the front stored included."""
    for relay in pair.both:
        box, token = mailbox_id(), relay.owner_token
        async with relay.client() as owner:
            await owner.create_mailbox(box)
        before = await scrape(relay)
        async with await Conn.open(relay.port) as conn:
            answer = await conn.request(upload_request(box, token, "w1", b"one"))
            assert answer.outcome() == created(1)
            await ws_subscribe(conn, token, box)
            async with await Conn.open(relay.port) as other:
                answer = await other.request(upload_request(box, token, "w2", b"two"))
            assert answer.outcome() == created(2)
            assert await ws_text(conn) == {"type": "message", "mailbox": box, "seq": 2}
            await conn.send(ws_frame(b'{"type": "ping"}'))
            assert await ws_text(conn) == {"type": "pong"}
        after = await scrape(relay)
        assert delta(after, before, FRONT_UPLOADS) == (2 if relay is pair.native else 0)


def framings(box: str, token: str) -> dict[str, bytes]:
    """Requests the front forwards, each followed in the same write by plain uploads: the
    front must find every request's end exactly where the Python relay's parser does, or
    it would answer out of turn, or store bytes of a body (``EVIL``) as an upload of its
    own. Each ends with a request that closes the connection."""
    auth = f"Authorization: Bearer {token}\r\n"
    path = f"/v1/mailboxes/{box}/messages"
    evil = upload_request(box, token, "smuggled", b"EVIL")

    def up(mid: str, body: bytes = b"ok", extra: Sequence[tuple[str, str | bytes]] = ()) -> bytes:
        return upload_request(box, token, mid, body, extra)

    def raw(head: str, body: bytes = b"") -> bytes:
        return head.encode() + body

    end = b"GET /healthz HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n"
    chunk = f"{len(evil):x}\r\n".encode() + evil + b"\r\n0\r\n\r\n"
    return {
        "get_with_a_body": raw(
            f"GET {path} HTTP/1.1\r\nHost: r\r\n{auth}Content-Length: {len(evil)}\r\n\r\n", evil
        )
        + up("after")
        + end,
        "chunked_json_holding_an_upload": raw(
            f"POST /v1/devices HTTP/1.1\r\nHost: r\r\n{auth}Transfer-Encoding: chunked\r\n\r\n",
            chunk,
        )
        + up("after")
        + end,
        "chunked_upload_holding_an_upload": raw(
            f"POST {path} HTTP/1.1\r\nHost: r\r\n{auth}Privastead-Message-Id: ch\r\n"
            "Transfer-Encoding: chunked\r\n\r\n",
            chunk,
        )
        + up("after")
        + end,
        "chunk_extension_and_trailer": raw(
            f"POST {path} HTTP/1.1\r\nHost: r\r\n{auth}Privastead-Message-Id: ext\r\n"
            "Transfer-Encoding: chunked\r\n\r\n",
            b"4;name=value\r\nbody\r\n0\r\nX-Trailer: 1\r\n\r\n",
        )
        + up("after")
        + end,
        "expect_continue": up("expect", b"body", [("Expect", "100-continue")]) + up("after") + end,
        "refused_with_unread_body": upload_request(
            box, "pst_0123456789abcdef_" + "A" * 43, "bad", b"E" * 20_000
        )
        + up("after")
        + end,
        "declared_too_large": raw(
            f"POST {path} HTTP/1.1\r\nHost: r\r\n{auth}Privastead-Message-Id: big\r\n"
            "Content-Length: 100000000\r\n\r\n",
            evil,
        )
        + end,
        "http10_keep_alive": http_request(
            "POST",
            path,
            [
                ("Host", "r"),
                ("Authorization", f"Bearer {token}"),
                ("Privastead-Message-Id", "h10"),
                ("Content-Length", "2"),
                ("Connection", "keep-alive"),
            ],
            b"ok",
            "HTTP/1.0",
        )
        + up("after")
        + end,
        "length_and_chunked": raw(
            f"POST {path} HTTP/1.1\r\nHost: r\r\n{auth}Privastead-Message-Id: lc\r\n"
            f"Content-Length: {len(chunk)}\r\nTransfer-Encoding: chunked\r\n\r\n",
            chunk,
        )
        + evil
        + end,
        "two_lengths": raw(
            f"POST {path} HTTP/1.1\r\nHost: r\r\n{auth}Privastead-Message-Id: tl\r\n"
            "Content-Length: 2\r\nContent-Length: 4\r\n\r\n",
            b"okok",
        )
        + evil
        + end,
        "plus_length": up("plus", b"okay").replace(b"Content-Length: 4", b"Content-Length: +4")
        + evil
        + end,
        "space_before_colon": up("sbc", b"okay").replace(
            b"Content-Length: 4", b"Content-Length : 4"
        )
        + evil
        + end,
        "absolute_form": up("abs").replace(
            f"POST {path}".encode(), f"POST http://relay{path}".encode()
        )
        + up("after")
        + end,
        "folded_header": up("fold").replace(
            b"Privastead-Message-Id: fold", b"Privastead-Message-Id: fold\r\n x"
        )
        + evil
        + end,
        "bare_lf": up("lf").replace(b"\r\n", b"\n") + evil + end,
        "bare_lf_after_one_header": up("lf1").replace(b"Host: relay\r\n", b"Host: relay\n")
        + evil
        + end,
        "no_host": up("nohost").replace(b"Host: relay\r\n", b"") + evil + end,
        "two_hosts": up("hosts").replace(b"Host: relay\r\n", b"Host: a\r\nHost: b\r\n")
        + evil
        + end,
        "lower_case_method": b"post" + up("lc")[4:] + evil + end,
        "nul_in_a_header": up("nul").replace(b"Host: relay", b"Host: re\x00lay") + evil + end,
        "long_header": up("long", extra=[("X-Pad", "p" * 9000)]) + up("after") + end,
        "te_gzip_chunked": raw(
            f"POST {path} HTTP/1.1\r\nHost: r\r\n{auth}Privastead-Message-Id: tg\r\n"
            "Transfer-Encoding: gzip, chunked\r\n\r\n",
            chunk,
        )
        + evil
        + end,
        "upgrade_h2c": up(
            "h2c",
            extra=[
                ("Connection", "Upgrade, HTTP2-Settings"),
                ("Upgrade", "h2c"),
                ("HTTP2-Settings", "AAMAAABkAAQAoAAAAAIAAAAA"),
            ],
        )
        + up("after")
        + end,
        # In two writes: aiohttp drops the good requests parsed in the same read as a bad
        # one, so in one write the Python relay's own answer would depend on segmentation.
        "garbage_after_an_upload": up("first") + PAUSE + b"GARBAGE\r\n\r\n" + evil + end,
        "an_upload_whose_body_is_a_request": up("carrier", evil) + up("after") + end,
    }


PAUSE = b"<pause>"  # in a framing: the bytes after it are sent in a second write, 0.5 s later


async def _every_answer(conn: Conn, quiet: float = 5.0) -> list[object]:
    """Every answer until the relay closes the connection ("closed"), or is silent for
    ``quiet`` seconds ("open")."""
    answers: list[object] = []
    while True:
        try:
            answer = await conn.answer(quiet)
        except TimeoutError:
            return [*answers, "open"]
        if answer is None:
            return [*answers, "closed"]
        answers.append(answer.outcome())


@pytest.mark.slow
async def test_request_boundaries_agree_with_the_python_relay(pair: Pair) -> None:
    async def run(relay: RelayProcess) -> dict[str, tuple[list[object], list[object]]]:
        out: dict[str, tuple[list[object], list[object]]] = {}
        async with relay.client() as owner:
            for name in framings("0" * 32, relay.owner_token):
                box = hashlib.md5(name.encode()).hexdigest()  # the same on both relays
                await owner.create_mailbox(box)
                async with await Conn.open(relay.port) as conn:
                    first, _, second = framings(box, relay.owner_token)[name].partition(PAUSE)
                    await conn.send(first)
                    if second:
                        await asyncio.sleep(0.5)
                        await conn.send(second)
                    answers = await _every_answer(conn)
                page = await owner.list_messages(box)
                token = relay.owner_token.encode()  # in stored requests: not the same
                rows: list[object] = [
                    (m.seq, (m.body or b"").replace(token, b"T")) for m in page.messages
                ]
                out[name] = (answers, rows)
        return out

    before = await scrape(pair.native)
    native, python = await asyncio.gather(*(run(r) for r in pair.both))
    differ = {n: (native[n], python[n]) for n in native if native[n] != python[n]}
    assert not differ, "\n".join(f"{n}:\n native {a}\n python {b}" for n, (a, b) in differ.items())
    # Nor did the Python relay itself ever take a body's bytes for an upload. (After a
    # chunked body, "gzip, chunked" included, the next request starts where the last chunk
    # ends: there it is a request of its own, not bytes of a body.)
    assert not [
        n
        for n, (_, rows) in python.items()
        if n != "te_gzip_chunked" and ((2, b"EVIL") in rows or (1, b"EVIL") in rows)
    ]
    after = await scrape(pair.native)
    assert delta(after, before, FRONT_UPLOADS) > 0


async def test_revoked_and_expired_tokens_on_a_kept_alive_connection(pair: Pair) -> None:
    """A token that was served a moment ago on this very connection is refused with the
    revocation's own code as soon as it is revoked (API), once the CLI's revocation is
    seen (as the Python relay sees it: within a second), and once it expires."""
    for relay in pair.both:
        box = mailbox_id()
        async with relay.client() as owner:
            await owner.create_mailbox(box)
            phone = await owner.create_device("phone")
            tablet = await owner.create_device("tablet")
            pairing = await owner.create_restricted_token([box], ttl_seconds=600)
            brief = await owner.create_restricted_token([box], ttl_seconds=2)
            before = await scrape(relay)
            conns = [await Conn.open(relay.port) for _ in range(4)]
            try:
                phone_c, pairing_c, brief_c, tablet_c = conns
                for i, (conn, token) in enumerate(
                    ((phone_c, phone.token), (pairing_c, pairing.token), (brief_c, brief.token))
                ):
                    answer = await conn.request(upload_request(box, token, f"r{i}", b"ok"))
                    assert answer.status == 201, answer
                after = await scrape(relay)
                await owner.remove_device(phone.device_id)
                answer = await phone_c.request(upload_request(box, phone.token, "x1", b"no"))
                assert answer.outcome() == (401, "device_removed")
                await owner.revoke_token(pairing.token_id)
                answer = await pairing_c.request(upload_request(box, pairing.token, "x2", b"no"))
                assert answer.outcome() == (401, "token_revoked")
                assert brief.expires_at is not None
                await asyncio.sleep(max(0.0, brief.expires_at - time.time()) + 0.3)
                answer = await brief_c.request(upload_request(box, brief.token, "x3", b"no"))
                assert answer.outcome() == (401, "token_expired")
                answer = await tablet_c.request(upload_request(box, tablet.token, "t0", b"ok"))
                assert answer.status == 201
                await asyncio.to_thread(
                    run_cli, "tokens", "revoke", tablet.token_id, data_dir=relay.data_dir
                )
                deadline = time.monotonic() + 10
                for tries in itertools.count(1):
                    answer = await tablet_c.request(
                        upload_request(box, tablet.token, f"t{tries}", b"ok")
                    )
                    if answer.status != 201:
                        break
                    assert time.monotonic() < deadline, "a CLI revocation was never seen"
                    await asyncio.sleep(0.2)
                assert answer.outcome() == (401, "device_removed")
            finally:
                for conn in conns:
                    await conn.close()
            info = await owner.mailbox_info(box)
        # The three first uploads, and the tablet's until the CLI's revocation was seen.
        assert info.count == 3 + tries
        if relay is pair.native:
            assert delta(after, before, FRONT_UPLOADS) == 3


async def test_throttled_wrong_secrets_while_a_device_is_served_by_the_front(
    tmp_path: Path,
) -> None:
    """A wrong secret for the owner's token id, repeated past ``max_failures``: 401, then
    429 with Retry-After, exactly as from the Python relay; meanwhile another device's
    right token (and the owner's own) keeps being stored by the front."""
    relays = await asyncio.to_thread(start_pair, tmp_path, "[auth]\nmax_failures = 3\n")
    try:

        async def run(relay: RelayProcess) -> tuple[list[tuple[int, str, bool]], float]:
            box = mailbox_id()
            async with relay.client() as owner:
                await owner.create_mailbox(box)
                phone = await owner.create_device("phone")
            token_id = relay.owner_token.split("_")[1]
            wrong = f"pst_{token_id}_{'B' * 43}"
            before = await scrape(relay)
            seen = []
            async with await Conn.open(relay.port) as device:
                for i in range(7):
                    async with await Conn.open(relay.port) as bad:
                        a = await bad.request(upload_request(box, wrong, f"w{i}", b"guess"))
                    seen.append((a.status, str(a.outcome()[1]), "retry-after" in a.headers))
                    a = await device.request(upload_request(box, phone.token, f"d{i}", b"ok"))
                    assert a.outcome() == created(2 * i + 1)
                    async with await Conn.open(relay.port) as own:
                        a = await own.request(
                            upload_request(box, relay.owner_token, f"o{i}", b"ok")
                        )
                    assert a.outcome() == created(2 * i + 2)
            after = await scrape(relay)
            return seen, delta(after, before, FRONT_UPLOADS)

        (native, front_uploads), (python, none) = await asyncio.gather(
            *(run(r) for r in relays.both)
        )
        assert native == python
        assert native == [(401, "unauthorized", False)] * 3 + [(429, "too_many_attempts", True)] * 4
        assert front_uploads == 14
        assert none == 0
    finally:
        for relay in relays.both:
            kill_with_front(relay)


# --- 4. crashes -----------------------------------------------------------------------------


async def _uploader(
    relay: RelayProcess,
    box: str,
    u: int,
    acknowledged: dict[str, tuple[int, bytes]],
    stop: asyncio.Event,
) -> None:
    """Uploads until ``stop``, each message retried (same id) until it is answered, as the
    hub's outbox does: small ones (the front's) and blobs (the Python relay's)."""
    async with RelayClient(relay.url, relay.owner_token, timeout=10) as c:
        for i in itertools.count():
            if stop.is_set():
                return
            mid = f"c{u}-{i}"
            body = body_of((300, 16384, 3000, 70_000)[i % 4], u * 10_000 + i)
            deadline = time.monotonic() + 20
            while True:
                try:
                    result = await c.upload(box, body, mid)
                except RelayUnavailableError:
                    assert time.monotonic() < deadline, "the relay never came back"
                    await asyncio.sleep(0.05)
                    continue
                acknowledged[mid] = (result.seq, body)
                break


async def _first_new_connection_served(relay: RelayProcess, box: str) -> float:
    """Seconds until an upload on a new connection is answered 201 (each try on a new
    connection: one kept alive might be the Python relay's already)."""
    t0 = time.monotonic()
    for i in itertools.count():
        with contextlib.suppress(OSError, TimeoutError):
            async with await Conn.open(relay.port) as conn:
                await conn.send(upload_request(box, relay.owner_token, f"p{i}", b"p"))
                answer = await conn.answer(5)
                if answer is not None and answer.status == 201:
                    return time.monotonic() - t0
        assert time.monotonic() - t0 < 20, "no new connection was served"
        await asyncio.sleep(0.1)
    raise AssertionError("unreachable")


async def _assert_all_listed(
    relay: RelayProcess, box: str, acknowledged: dict[str, tuple[int, bytes]], extra: int = 0
) -> None:
    async with relay.client() as owner:
        listed: list[MessageInfo] = []
        while True:  # pages of at most 1000 (max_list)
            page = await owner.list_messages(box, after=listed[-1].seq if listed else 0, limit=1000)
            listed += page.messages
            if not page.messages:
                break
        seqs = [m.seq for m in listed]
        assert seqs == list(range(1, len(seqs) + 1))  # no hole, nothing half-stored
        by_seq = {m.seq: m for m in listed}
        for seq, body in acknowledged.values():
            assert await owner.body_of(box, by_seq[seq]) == body
        # Only uploads in flight at a kill may be stored without their 201.
        assert len(acknowledged) <= len(seqs) <= len(acknowledged) + extra


@pytest.mark.slow
async def test_kill9_of_the_front_child_loses_nothing_acknowledged(
    native: RelayProcess,
) -> None:
    box, other, probe = mailbox_id(), mailbox_id(), mailbox_id()
    async with native.client() as owner:
        for b in (box, other, probe):
            await owner.create_mailbox(b)
        # A subscriber's connection is the front's too: it must end with it (not hang
        # half-open), and the client subscribes again.
        sub = await owner.subscribe([other])
        assert (await asyncio.wait_for(sub.next_event(), 10))["type"] == "subscribed"
        [child] = front_children(native)
        acknowledged: dict[str, tuple[int, bytes]] = {}
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(_uploader(native, box, u, acknowledged, stop)) for u in range(4)
        ]
        await asyncio.sleep(1.5)
        before_kill = len(acknowledged)
        child.send_signal(signal.SIGKILL)  # this relay's own child, by its pid
        took = await _first_new_connection_served(native, probe)
        assert took < 5, "the relay took too long to serve new connections again"
        with pytest.raises(RelayUnavailableError):
            await asyncio.wait_for(sub.next_event(), 5)
        await sub.close()
        sub = await owner.subscribe([other])
        assert (await asyncio.wait_for(sub.next_event(), 10))["type"] == "subscribed"
        await asyncio.sleep(1)
        stop.set()
        await asyncio.gather(*tasks)
        assert before_kill > 10
        assert native.proc is not None and native.proc.poll() is None  # the parent lives
        [new_child] = front_children(native)
        assert new_child.pid != child.pid
        # Every acknowledged upload is there (the retries found theirs: exactly once).
        await _assert_all_listed(native, box, acknowledged)
        # The new front stores uploads, and the parent tells the subscriber.
        before = await scrape(native)
        async with await Conn.open(native.port) as conn:
            answer = await conn.request(upload_request(other, native.owner_token, "n1", b"new"))
        assert answer.outcome() == created(1)
        assert await asyncio.wait_for(sub.next_event(), 5) == {
            "type": "message",
            "mailbox": other,
            "seq": 1,
        }
        after = await scrape(native)
        assert delta(after, before, FRONT_UPLOADS) == 1
        await sub.close()


def _end(front: psutil.Process, tasks: list[asyncio.Task[None]]) -> None:
    """After a failed check: the surviving front (by its pid) and the uploaders go."""
    with contextlib.suppress(psutil.NoSuchProcess):
        if not gone(front.pid):
            front.kill()
            for task in tasks:
                task.cancel()


@pytest.mark.slow
async def test_kill9_of_the_parent_ends_the_front_and_a_restart_has_everything(
    native: RelayProcess,
) -> None:
    box = mailbox_id()
    async with native.client() as owner:
        await owner.create_mailbox(box)
    [child] = front_children(native)
    acknowledged: dict[str, tuple[int, bytes]] = {}

    async def uploader(u: int) -> None:
        async with await Conn.open(native.port) as conn:
            for i in itertools.count():
                mid = f"k{u}-{i}"
                body = body_of(200 + i % 50, u * 10_000 + i)
                await conn.send(upload_request(box, native.owner_token, mid, body))
                answer = await conn.answer(10)
                if answer is None:
                    return
                assert answer.status == 201, answer
                acknowledged[mid] = (answer.json()["seq"], body)

    tasks = [asyncio.create_task(uploader(u)) for u in range(3)]
    await asyncio.sleep(1.5)
    t0 = time.monotonic()
    native.kill9()  # SIGKILL to the parent alone
    try:
        while not gone(child.pid):
            assert time.monotonic() - t0 < 2.5, "the front outlived its parent"
            await asyncio.sleep(0.05)
    finally:
        _end(child, tasks)
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert len(acknowledged) > 10
    await asyncio.to_thread(native.start)  # the same port: the old front holds nothing
    await _assert_all_listed(native, box, acknowledged, extra=3)
    assert len(front_children(native)) == 1


#: ``privastead-server`` with a SIGTERM sent to itself the moment ``listen`` returns: the
#: native front answers requests before that, so a caller may already stop the relay there.
_TERM_AT_LISTEN = """
import os, signal, sys
from privastead.relay import server
from privastead.cli.server import main
listen = server.listen
async def listen_then_term(*args, **kwargs):
    listening = await listen(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGTERM)
    return listening
server.listen = listen_then_term
sys.exit(main(sys.argv[1:]))
"""


def test_a_sigterm_as_the_front_starts_answering_is_a_graceful_stop(tmp_path: Path) -> None:
    """Signals are handled from before the relay listens: a SIGTERM that lands as soon as the
    front answers (it once took the default action there and killed the relay, leaving the
    front's socket directory behind) stops the relay gracefully."""
    tmp = tmp_path / "tmp"
    tmp.mkdir(mode=0o700)
    relay = RelayProcess(data_dir=tmp_path / "data", config_text=front_config("native"))
    relay.config_file.write_text(relay.config_text)
    args = ["serve", "--config", str(relay.config_file), "--data-dir", str(relay.data_dir)]
    proc = subprocess.run(
        [sys.executable, "-c", _TERM_AT_LISTEN, *args, "--port", str(relay.port)],
        env={**os.environ, "TMPDIR": str(tmp)},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert not list(tmp.glob("privastead-front-*"))


def test_the_socket_directories_of_killed_relays_are_swept_by_the_next(tmp_path: Path) -> None:
    """A relay killed with kill -9 cannot remove its front's private socket directory; the
    next relay to start removes every one whose relay is gone, and nothing else: not a
    running relay's, not one it cannot tell is ours (no lock in it)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir(mode=0o700)
    env = {"TMPDIR": str(tmp)}

    def dirs() -> set[Path]:
        return set(tmp.glob("privastead-front-*"))

    relays = [make_process(tmp_path / "killed", front_config("native"), env=env)]
    try:
        [killed] = dirs()
        assert stat.S_IMODE(killed.stat().st_mode) == 0o700
        kill_with_front(relays[0])
        assert killed.exists()
        unknown = tmp / "privastead-front-unknown"
        unknown.mkdir(mode=0o700)
        relays.append(make_process(tmp_path / "running", front_config("native"), env=env))
        [running] = dirs() - {unknown}
        assert running != killed
        relays.append(make_process(tmp_path / "third", front_config("native"), env=env))
        assert len(dirs()) == 3 and {running, unknown} < dirs()
        relays[2].stop()  # a graceful stop removes its own
        assert dirs() == {running, unknown}
    finally:
        for relay in relays:
            kill_with_front(relay)


async def test_sigterm_finishes_an_upload_the_front_is_receiving(native: RelayProcess) -> None:
    box = mailbox_id()
    async with native.client() as owner:
        await owner.create_mailbox(box)
    [child] = front_children(native)
    body = body_of(10_000, 7)
    request = upload_request(box, native.owner_token, "inflight", body)
    async with await Conn.open(native.port) as conn:
        await conn.send(request[:-5000])  # the header and half the body
        await asyncio.sleep(0.2)
        assert native.proc is not None
        native.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        await conn.send(request[-5000:])
        answer = await conn.answer()
    assert answer is not None and answer.outcome() == created(1)
    code = await asyncio.to_thread(native.proc.wait, 30)
    native.proc = None
    try:
        assert code == 0
        deadline = time.monotonic() + 5
        while not gone(child.pid):
            assert time.monotonic() < deadline, "the front outlived a graceful stop"
            await asyncio.sleep(0.05)
    finally:
        _end(child, [])
    await asyncio.to_thread(native.start)
    async with native.client() as owner:
        assert await owner.fetch(box, 1) == body


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "env", "front"),
    [
        ('front = "auto"\n', {}, True),  # SQLite, no TLS: native
        ('front = "native"\n', {"PRIVASTEAD_RELAY_FRONT": "python"}, False),
        ('front = "python"\n', {"PRIVASTEAD_RELAY_FRONT": "native"}, True),
    ],
)
async def test_front_is_chosen_by_config_and_environment(
    tmp_path: Path, config: str, env: dict[str, str], front: bool
) -> None:
    relay = await asyncio.to_thread(make_process, tmp_path, config, env)
    try:
        assert len(front_children(relay)) == (1 if front else 0)
        box = mailbox_id()
        async with relay.client() as owner:
            await owner.create_mailbox(box)
        async with await Conn.open(relay.port) as conn:
            answer = await conn.request(upload_request(box, relay.owner_token, "c1", b"x"))
        assert answer.outcome() == created(1)
        metrics = await scrape(relay)
        assert metrics.get(FRONT_UPLOADS, 0.0) == (1.0 if front else 0.0)
    finally:
        kill_with_front(relay)


def test_an_unknown_front_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="front"):
        make_process(tmp_path, 'front = "turbo"\n')


async def test_downloads_are_answered_by_the_front_as_by_python(pair: Pair) -> None:
    """Inline bodies, small files (header and body in one write) and large files (sendfile)
    come whole from the front, with the relay's headers; what is not there (never stored,
    acknowledged, another account's token) and ``?presign=`` get the relay's own answers."""
    sizes = (1, 16 * 1024, 64 * 1024 + 1, 256 * 1024 + 1, 1024 * 1024 + 7)
    bodies = [os.urandom(n) for n in sizes]
    before = await scrape(pair.native)
    seen: list[list[object]] = []
    for relay in pair.both:
        box = mailbox_id()
        answers: list[object] = []
        async with relay.client() as owner:
            await owner.create_mailbox(box)
            seqs = [(await owner.upload(box, b, f"d{i}")).seq for i, b in enumerate(bodies)]
            for seq, body in zip(seqs, bodies, strict=True):
                assert await owner.fetch(box, seq) == body
                assert await owner.fetch(box, seq, direct=True) == body  # ?presign=1: relay's
            async with await Conn.open(relay.port) as conn:
                auth = f"Authorization: Bearer {relay.owner_token}\r\n"
                for seq in (seqs[0], seqs[-1], 999):
                    got = await conn.request(
                        f"GET /v1/mailboxes/{box}/messages/{seq} HTTP/1.1\r\n"
                        f"Host: r\r\n{auth}\r\n".encode()
                    )
                    head = (got.status, got.headers.get("cache-control"))
                    answers.append((*head, got.headers.get("privastead-seq"), len(got.body)))
            with pytest.raises(RelayRejectedError) as err:
                await owner.fetch(box, 999)
            answers.append((err.value.status, err.value.code))
        seen.append(answers)
    native, python = seen
    assert native == python
    after = await scrape(pair.native)
    # Each body once plainly (the presigned ask is the relay's) and two raw GETs.
    assert delta(after, before, "relay_front_downloads_total") == len(sizes) + 2
