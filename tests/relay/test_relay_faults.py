"""Bad input and faults: each gets a precise status with a JSON error body, nothing partial
is stored, and the relay stays up for everybody else."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from relay_harness import (
    InProcess,
    RelayProcess,
    first_answer,
    mailbox_id,
    make_process,
    post_head,
    run_cli,
    start_inprocess,
)

from privastead.clock import FakeClock
from privastead.errors import RelayRejectedError
from privastead.relay.server import raise_fd_limit


def raw(
    port: int,
    request: bytes,
    *,
    body_parts: list[bytes] = (),
    close_after: bool = False,
    timeout: float = 10.0,
) -> tuple[int, dict[str, object] | None]:
    """Send bytes as they are; return (status, JSON body or None)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        for part in body_parts:
            try:
                s.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
        if close_after:
            return 0, None
        data = b""
        try:
            while b"\r\n\r\n" not in data or len(data) < _expected(data):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def _expected(data: bytes) -> int:
    head, sep, _ = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(head) + len(sep) + int(line.split(b":")[1])
    return len(data) + 1


def blob_files(data_dir: Path) -> list[Path]:
    return [f for d in (data_dir / "blobs").iterdir() for f in d.iterdir()]


async def _stored(relay: RelayProcess | InProcess, box: str) -> int:
    async with relay.client() as c:
        return (await c.mailbox_info(box)).count


def _error_code(body: dict[str, object] | None) -> str:
    assert body is not None, "error bodies are JSON"
    error = body["error"]
    assert isinstance(error, dict) and isinstance(error["message"], str)
    return str(error["code"])


async def test_oversized_body_is_refused_before_it_is_read(shared_relay: RelayProcess) -> None:
    box = mailbox_id()
    async with shared_relay.client() as c:
        await c.create_mailbox(box)
    before = set(blob_files(shared_relay.data_dir))
    t0 = time.monotonic()
    status, body = await asyncio.to_thread(
        raw, shared_relay.port, post_head(box, shared_relay.owner_token, 100 * 1024 * 1024)
    )
    assert status == 413 and _error_code(body) == "body_too_large"
    assert time.monotonic() - t0 < 10  # answered without waiting for 100 MiB that never came
    status, body = await asyncio.to_thread(
        raw,
        shared_relay.port,
        post_head(box, shared_relay.owner_token, 9 * 1024 * 1024, "Expect: 100-continue\r\n"),
    )
    assert status == 413 and _error_code(body) == "body_too_large"
    # Chunked bodies have no length up front: cut off once they pass the limit.
    chunk = b"x" * (1024 * 1024)
    part = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    status, body = await asyncio.to_thread(
        raw,
        shared_relay.port,
        post_head(box, shared_relay.owner_token, None),
        body_parts=[part] * 9,
    )
    assert status == 413 and _error_code(body) == "body_too_large"
    assert await _stored(shared_relay, box) == 0
    assert set(blob_files(shared_relay.data_dir)) == before
    assert list((shared_relay.data_dir / "blobs" / "tmp").iterdir()) == []


@pytest.mark.parametrize("length,sent", [(1000, 10), (1_000_000, 100_000)])
async def test_truncated_upload_stores_nothing(
    shared_relay: RelayProcess, length: int, sent: int
) -> None:
    box = mailbox_id()
    async with shared_relay.client() as c:
        await c.create_mailbox(box)
    await asyncio.to_thread(
        raw,
        shared_relay.port,
        post_head(box, shared_relay.owner_token, length),
        body_parts=[os.urandom(sent)],
        close_after=True,
    )
    await asyncio.sleep(0.5)
    assert await _stored(shared_relay, box) == 0
    assert list((shared_relay.data_dir / "blobs" / "tmp").iterdir()) == []
    async with shared_relay.client() as c:  # the same message id still works afterwards
        assert (await c.upload(box, b"whole", "m1")).seq == 1


async def test_slow_body_times_out_with_408(shared_relay: RelayProcess) -> None:
    box = mailbox_id()
    async with shared_relay.client() as c:
        await c.create_mailbox(box)
    status, body = await asyncio.to_thread(
        raw,
        shared_relay.port,
        post_head(box, shared_relay.owner_token, 1000),
        body_parts=[b"x" * 10],
    )
    assert status == 408 and _error_code(body) == "body_timeout"
    assert await _stored(shared_relay, box) == 0


async def test_slow_loris_headers_are_cut_off_and_others_served(shared_relay: RelayProcess) -> None:
    def loris() -> float:
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", shared_relay.port), timeout=20) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
            try:
                for _ in range(40):  # one header byte every 0.25 s: never a complete request
                    s.sendall(b"X")
                    time.sleep(0.25)
                    s.setblocking(False)
                    try:
                        if s.recv(1) == b"":
                            return time.monotonic() - t0
                    except BlockingIOError:
                        pass
                    finally:
                        s.setblocking(True)
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - t0
        return -1.0

    lorises = [asyncio.to_thread(loris) for _ in range(5)]
    async with aiohttp.ClientSession() as s:
        await asyncio.sleep(0.5)
        async with s.get(shared_relay.url + "/healthz") as r:
            assert r.status == 200  # served while slow clients hold connections
    closed_after = await asyncio.gather(*lorises)
    assert all(t > 0 for t in closed_after), "a slow-loris connection was never closed"


BAD_PATHS = [
    "/v1/mailboxes/..%2F..%2Fetc%2Fpasswd/messages",
    "/v1/mailboxes/%2e%2e/messages",
    "/v1/mailboxes/%2e%2e%2f%2e%2e%2fdata/messages",
    "/v1/mailboxes/0123456789abcdef0123456789abcde%00/messages",
    "/v1/mailboxes/0123456789ABCDEF0123456789ABCDEF/messages",
    "/v1/mailboxes/0123456789abcdef0123456789abcde/messages",
    "/v1/mailboxes/0123456789abcdef0123456789abcdef0/messages",
    "/v1/mailboxes/" + "a" * 4000 + "/messages",
    "/v1/mailboxes/../../etc/passwd",
]


async def test_bad_mailbox_ids_are_rejected(shared_relay: RelayProcess) -> None:
    for path in BAD_PATHS:
        request = (
            f"POST {path} HTTP/1.1\r\nHost: shared_relay\r\nAuthorization: Bearer "
            f"{shared_relay.owner_token}\r\nPrivastead-Message-Id: x\r\n"
            "Content-Length: 3\r\n\r\nabc"
        ).encode()
        status, body = await asyncio.to_thread(raw, shared_relay.port, request)
        assert status in (400, 404), path
        assert _error_code(body) in ("bad_mailbox_id", "not_found"), path
    outside = [p for p in shared_relay.data_dir.parent.rglob("*") if p.name in ("passwd", "abc")]
    assert outside == []


async def test_bad_json_bad_fields_and_bad_acks(shared_relay: RelayProcess) -> None:
    box = mailbox_id()
    headers = {"Authorization": f"Bearer {shared_relay.owner_token}"}
    async with shared_relay.client() as c:
        await c.create_mailbox(box)
        await c.register(box)
        await c.upload(box, b"one", "one")
    url = f"{shared_relay.url}/v1/mailboxes/{box}/ack"
    cases = [
        (b"{nope", 400, "bad_json"),
        (b"[1, 2]", 400, "bad_json"),
        (b"", 400, "bad_json"),
        (b'{"seq": "1"}', 400, "bad_field"),
        (b'{"seq": -1}', 400, "bad_field"),
        (b'{"seq": true}', 400, "bad_field"),
        (b'{"seq": 7}', 409, "ack_beyond_end"),
        (b"\xff\xfe", 400, "bad_json"),
        (b'{"seq": 1, "pad": "' + b"x" * 70_000 + b'"}', 413, "body_too_large"),
    ]
    async with aiohttp.ClientSession() as s:
        for data, status, code in cases:
            async with s.post(url, data=data, headers=headers) as r:
                assert (r.status, (await r.json())["error"]["code"]) == (status, code), data[:20]
        async with s.get(
            f"{shared_relay.url}/v1/mailboxes/{box}/messages/99", headers=headers
        ) as r:
            assert r.status == 404 and (await r.json())["error"]["code"] == "message_not_found"
        async with s.get(
            f"{shared_relay.url}/v1/mailboxes/{box}/messages?limit=0", headers=headers
        ) as r:
            assert r.status == 400 and (await r.json())["error"]["code"] == "bad_query"
        async with s.post(
            f"{shared_relay.url}/v1/mailboxes/{box}/messages", data=b"x", headers=headers
        ) as r:  # no message id
            assert r.status == 400 and (await r.json())["error"]["code"] == "bad_message_id"
        async with s.post(
            f"{shared_relay.url}/v1/mailboxes/{box}/messages",
            data=b"x",
            headers={**headers, "Privastead-Message-Id": "p", "Privastead-Push": "not base64!"},
        ) as r:
            assert r.status == 400 and (await r.json())["error"]["code"] == "bad_push_payload"
        async with s.delete(
            f"{shared_relay.url}/v1/mailboxes/{box}/messages", headers=headers
        ) as r:
            assert r.status == 405 and (await r.json())["error"]["code"] == "method_not_allowed"
        # An optional body may be empty or JSON whitespace; other control bytes are not JSON.
        for junk in (b"\x0b", b"\x0c", b" \x0b\n"):
            async with s.post(f"{shared_relay.url}/v1/devices", data=junk, headers=headers) as r:
                assert r.status == 400 and (await r.json())["error"]["code"] == "bad_json", junk
    device = None
    async with shared_relay.client() as c:
        device = await c.create_device("d")
    async with shared_relay.client(device.token) as d:
        with pytest.raises(RelayRejectedError) as err:
            await d.ack(box, 1)
        assert err.value.code == "not_registered"
        with pytest.raises(RelayRejectedError) as err:
            await d.delete_mailbox(box)
        assert err.value.status == 403
    assert await _stored(shared_relay, box) == 1


async def test_wrong_and_revoked_tokens(shared_relay: RelayProcess) -> None:
    box = mailbox_id()
    async with shared_relay.client() as c:
        await c.create_mailbox(box)
        device = await c.create_device("phone")
        other_box = mailbox_id()
        restricted = await c.create_restricted_token([other_box], ttl_seconds=600)
    for token in [
        "",
        "nonsense",
        # The last character changed (to "A", or "B" where it was "A": else 1 run in 64 the
        # "wrong" token is the right one).
        shared_relay.owner_token[:-1] + ("B" if shared_relay.owner_token.endswith("A") else "A"),
        "pst_0000000000000000_" + "A" * 43,
    ]:
        async with (
            aiohttp.ClientSession() as s,
            s.get(shared_relay.url + "/v1/me", headers={"Authorization": f"Bearer {token}"}) as r,
        ):
            assert r.status == 401 and (await r.json())["error"]["code"] == "unauthorized"
    async with shared_relay.client(restricted.token) as r:
        with pytest.raises(RelayRejectedError) as err:
            await r.list_messages(box)
        assert err.value.status == 403
        await r.create_mailbox(other_box)  # the one it was made for
    async with shared_relay.client(device.token) as d:
        assert (await d.me())["kind"] == "device"
        async with shared_relay.client() as c:
            await c.revoke_token(device.token_id)
        with pytest.raises(RelayRejectedError) as err:
            await d.me()
        assert err.value.status == 401
    # Revoked from the command line while the shared_relay runs: refused within the cache time.
    async with shared_relay.client() as c:
        dev2 = await c.create_device("tablet")
    async with shared_relay.client(dev2.token) as d:
        await d.me()
        await asyncio.to_thread(
            run_cli, "tokens", "revoke", dev2.token_id, data_dir=shared_relay.data_dir
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                await d.me()
            except RelayRejectedError as exc:
                assert exc.status == 401
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)


async def test_full_disk_injected_through_storage(inproc: InProcess) -> None:
    """The storage interface's commit hook raises ENOSPC, as a full disk would."""
    box = mailbox_id()
    async with inproc.client() as c:
        await c.create_mailbox(box)
        await c.upload(box, b"before", "a")

        def disk_full() -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        inproc.state.db.inject_fault(disk_full)
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                f"{inproc.url}/v1/mailboxes/{box}/messages",
                data=os.urandom(100_000),  # over inline_max: a blob file, to be removed
                headers={
                    "Authorization": f"Bearer {inproc.owner_token}",
                    "Privastead-Message-Id": "b",
                },
            ) as r,
        ):
            assert r.status == 507
            assert (await r.json())["error"]["code"] == "storage_full"
        inproc.state.db.inject_fault(None)
        page = await c.list_messages(box)
        assert [m.body for m in page.messages] == [b"before"]  # nothing partial
        assert blob_files(inproc.state.config.data_dir) == []  # the blob went too
        assert (await c.upload(box, b"after", "b")).seq == 2


async def test_full_disk_on_a_real_tiny_tmpfs(tmp_path: Path) -> None:
    """A 2 MiB tmpfs as the data directory: a 3 MiB clip cannot fit (needs root to mount)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    done = await asyncio.to_thread(
        subprocess.run,
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        relay = await start_inprocess(mnt, FakeClock())
        try:
            box = mailbox_id()
            async with relay.client() as c:
                await c.create_mailbox(box)
                with pytest.raises(Exception) as err:
                    await c.upload(box, os.urandom(3 * 1024 * 1024), "too-big-for-disk")
                assert "507" in str(err.value) and "storage_full" in str(err.value)
                assert list((mnt / "data" / "blobs" / "tmp").iterdir()) == []
                assert (await c.mailbox_info(box)).count == 0
                assert (await c.upload(box, b"small still fits", "s")).seq == 1
        finally:
            await relay.server.close()
    finally:
        await asyncio.to_thread(subprocess.run, ["umount", str(mnt)], check=False)


async def test_thousands_of_idle_websockets_are_bounded(tmp_path: Path) -> None:
    limit = 2000
    if raise_fd_limit() < 2 * limit + 200:
        pytest.skip("the descriptor limit (ulimit -Hn) is too low for 2000 sockets")
    # One account opens them all: its own share is raised to the global limit here, so this
    # tests the last resort (test_relay_budgets.py tests the shares).
    relay = await asyncio.to_thread(
        make_process,
        tmp_path,
        f"[limits]\nmax_websockets = {limit}\n"
        f"[budgets]\nsockets_per_account = {limit * 2}\nsockets_per_token = {limit * 2}\n",
    )
    try:
        box = mailbox_id()
        async with relay.client() as c:
            await c.create_mailbox(box)
        connector = aiohttp.TCPConnector(limit=0)
        headers = {"Authorization": f"Bearer {relay.owner_token}"}
        async with aiohttp.ClientSession(connector=connector) as s:
            sockets: list[aiohttp.ClientWebSocketResponse] = []
            sem = asyncio.Semaphore(100)

            async def connect() -> None:
                async with sem:
                    sockets.append(
                        await s.ws_connect(relay.url + "/v1/ws", headers=headers, autoping=True)
                    )

            await asyncio.gather(*(connect() for _ in range(limit - 1)))
            assert len(sockets) == limit - 1
            # The relay still serves others: a live subscriber gets its event ...
            async with relay.client() as c:
                sub = await c.subscribe([box])
                assert (await sub.next_event())["type"] == "subscribed"
                # ... and the next socket past the limit is refused with a JSON 503.
                async with s.get(
                    relay.url + "/v1/ws",
                    headers={
                        **headers,
                        "Upgrade": "websocket",
                        "Connection": "Upgrade",
                        "Sec-WebSocket-Version": "13",
                        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                    },
                ) as r:
                    assert r.status == 503
                    assert (await r.json())["error"]["code"] == "too_many_websockets"
                await c.upload(box, b"hello", "h")
                assert (await asyncio.wait_for(sub.next_event(), 20))["seq"] == 1
                await sub.close()
            await asyncio.gather(*(ws.close() for ws in sockets))
    finally:
        relay.kill9()


MALFORMED_HTTP = [
    b"GARBAGE\r\n\r\n",
    b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
    b"G\x01T /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nBad Header: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
    b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /v1/me HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    b"POST /v1/me HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    b"POST /v1/me HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    b"POST /v1/me HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS ClientHello
]


@pytest.mark.parametrize("request_bytes", MALFORMED_HTTP, ids=range(len(MALFORMED_HTTP)))
async def test_malformed_http_gets_a_json_4xx(
    shared_relay: RelayProcess, request_bytes: bytes
) -> None:
    status, body = await asyncio.to_thread(raw, shared_relay.port, request_bytes)
    assert 400 <= status < 500
    assert _error_code(body) == "malformed_http"
    async with shared_relay.client() as c:  # and the relay serves the next client
        assert (await c.me())["kind"] == "owner"


@pytest.mark.parametrize("front", ["native", "python"])
def test_an_answer_to_a_malformed_request_survives_the_client_still_sending(
    tmp_path: Path, front: str
) -> None:
    # A request whose header is too large is answered once the relay has read past the
    # limit, while the rest of it (here a body too) is still coming. A socket closed with
    # unread input resets the connection: the native front, still forwarding the request,
    # failed to write and closed without reading the answer, and the client saw the
    # connection drop and nothing else (now and then with a 20 KB header alone). The
    # relay now reads and drops what follows for a moment after answering.
    relay = make_process(tmp_path, f'front = "{front}"\n')
    body = b"a" * 4_000_000
    head = b"POST /v1/me HTTP/1.1\r\nContent-Length: %d\r\nX: %s\r\n\r\n" % (
        len(body),
        b"a" * 20000,
    )
    try:
        # The race is lost in a few tries in ten without the lingering close: try it often.
        answers = [raw(relay.port, head, body_parts=[body]) for _ in range(15)]
    finally:
        relay.kill9()
    for status, answer in answers:
        assert 400 <= status < 500
        assert _error_code(answer) == "malformed_http"


DEEP = b"[" * 30_000 + b"]" * 30_000
BAD_JSON_BODIES = [
    ("POST", "/v1/devices", DEEP),
    ("POST", "/v1/devices", b'{"name": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    ("POST", "/v1/devices", b'{"name": "\\ud800"}'),
    ("POST", "/v1/devices", b'{"\\udfff": 1}'),
    ("PUT", "/v1/devices/self/push", b'{"fcm_token": "abc\\ud83d", "webhook_url": null}'),
    ("PUT", "/v1/devices/self/push", b'{"webhook_url": "https://x/\\udc00"}'),
    ("POST", "/v1/messages", b'{"messages": ' + b"[" * 3000 + b"]" * 3000 + b"}"),
    ("POST", "/v1/tokens/restricted", b'{"mailboxes": ["\\ud800"], "ttl_seconds": 5}'),
]


@pytest.mark.parametrize(
    ("method", "path", "body"), BAD_JSON_BODIES, ids=range(len(BAD_JSON_BODIES))
)
async def test_hostile_json_is_a_400(
    shared_relay: RelayProcess, method: str, path: str, body: bytes
) -> None:
    headers = {
        "Authorization": f"Bearer {shared_relay.owner_token}",
        "Content-Type": "application/json",
    }
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, shared_relay.url + path, data=body, headers=headers) as r,
    ):
        assert r.status == 400
        assert (await r.json())["error"]["code"] in ("bad_json", "bad_field")


async def test_bad_headers_are_4xx(shared_relay: RelayProcess) -> None:
    box = mailbox_id()
    async with shared_relay.client() as c:
        await c.create_mailbox(box)
    cases = [
        b"Privastead-Push: \xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\r\n",  # non-ASCII base64
        b"Privastead-Push: \xff\xfe\r\n",  # not even UTF-8
        b"Privastead-Message-Id: \xc3\xa9\r\n",
    ]
    for extra in cases:
        head = post_head(box, shared_relay.owner_token, 3).replace(
            b"Privastead-Message-Id: m1\r\n",
            b"" if b"Message-Id" in extra else b"Privastead-Message-Id: m1\r\n",
        )
        request = head[:-2] + extra + b"\r\nabc"
        status, body = await asyncio.to_thread(raw, shared_relay.port, request)
        assert status == 400, extra
        assert _error_code(body) in ("bad_push_payload", "bad_message_id"), extra
    assert await _stored(shared_relay, box) == 0


async def test_bad_websocket_commands_get_error_frames_and_the_socket_stays(
    shared_relay: RelayProcess,
) -> None:
    box = mailbox_id()
    async with shared_relay.client() as c:
        await c.create_mailbox(box)
        sub = await c.subscribe([])
        assert (await sub.next_event())["type"] == "subscribed"
        bad = [
            "[" * 50_000 + "]" * 50_000,
            '{"type": ' + "[" * 10_000 + "]" * 10_000 + "}",
            '{"type": "subscribe", "mailboxes": ["\\ud800"]}',
            '{"type": {"nested": {"deep": 1}}}',
            '{"type": "subscribe", "mailboxes": {"a": 1}}',
            "not json",
            '"a string"',
            '{"type": "explode"}',
        ]
        for text in bad:
            await sub.ws.send_str(text)
            event = await asyncio.wait_for(sub.next_event(), 10)
            assert event["type"] == "error", text[:40]
        await sub.ws.send_bytes(b"\x00binary")
        assert (await asyncio.wait_for(sub.next_event(), 10))["type"] == "error"
        await sub.subscribe([box])  # still open and working
        assert (await asyncio.wait_for(sub.next_event(), 10))["mailboxes"] == [box]
        await c.upload(box, b"x", "x")
        assert (await asyncio.wait_for(sub.next_event(), 10))["seq"] == 1
        await sub.close()


async def test_expect_100_continue_only_after_authentication(shared_relay: RelayProcess) -> None:
    box = mailbox_id()
    async with shared_relay.client() as c:
        await c.create_mailbox(box)
        restricted = await c.create_restricted_token([mailbox_id()], ttl_seconds=60)
    expect = "Expect: 100-continue\r\n"
    refused = [
        (post_head(box, "pst_nonsense", 1000, expect), b"401"),
        (post_head(box, restricted.token, 1000, expect), b"403"),  # another mailbox
        (post_head(mailbox_id(), shared_relay.owner_token, 1000, expect), b"404"),
        (post_head(box, shared_relay.owner_token, 10**9, expect), b"413"),
        (
            b"POST /v1/devices HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
            + expect.encode()
            + b"\r\n",
            b"401",
        ),
        (
            b"PUT /v1/devices/self/push HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
            + f"Authorization: Bearer {shared_relay.owner_token}\r\n{expect}\r\n".encode(),
            b"413",
        ),
    ]
    for head, status in refused:
        answer = await asyncio.to_thread(first_answer, shared_relay.port, head)
        first_line = answer.split(b"\r\n", 1)[0]
        assert first_line.startswith(b"HTTP/1.1 " + status), (head[:60], answer[:80])
        assert b'"error"' in answer or b"Content-Length" in answer
    answer = await asyncio.to_thread(
        first_answer, shared_relay.port, post_head(box, shared_relay.owner_token, 3, expect)
    )
    assert answer.startswith(b"HTTP/1.1 100 Continue")
    assert await _stored(shared_relay, box) == 0


@pytest.mark.parametrize("kind", ["upload", "json"])
async def test_a_trickling_body_is_cut_off_by_the_floor_rate(
    shared_relay: RelayProcess, kind: str
) -> None:
    """A few bytes every 0.3 s never trips the 2 s stall timeout, but falls below the
    floor rate (8 KiB/s after a 1 s grace here): 408 long before the body could end."""
    box = mailbox_id()
    async with shared_relay.client() as c:
        await c.create_mailbox(box)
    if kind == "upload":
        head = post_head(box, shared_relay.owner_token, 100_000)
    else:
        head = (
            b"POST /v1/devices HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n"
            + f"Authorization: Bearer {shared_relay.owner_token}\r\n\r\n".encode()
        )

    def trickle() -> tuple[int, float]:
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", shared_relay.port), timeout=30) as s:
            s.sendall(head)
            s.settimeout(0.3)
            data = b""
            for _ in range(100):  # at most 30 s
                try:
                    s.sendall(b"x" * 10)
                except (BrokenPipeError, ConnectionResetError):
                    break
                try:
                    chunk = s.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                data += chunk
                if b"\r\n\r\n" in data:
                    break
        return int(data.split(b" ", 2)[1]), time.monotonic() - t0

    status, took = await asyncio.to_thread(trickle)
    assert status == 408
    assert took < 10, "cut off by the floor rate, not by the end of the body"
    assert await _stored(shared_relay, box) == 0
