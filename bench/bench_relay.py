"""Relay benchmark: small-message throughput and latency, blob PUT/GET, nginx as the ceiling.

The relay runs as `privastead-server serve` in its own process; the load generator runs in
another process (this script with ``--load``), so neither shares an event loop or a GIL with
the other. nginx (Debian package) serves files of the same sizes from a directory of their
own, as the ceiling for blob GET (the relay keeps bodies up to ``inline_max`` in its database,
larger ones in files; either way both answer from memory). Everything is loopback on one machine:
the relay, nginx and the load generator share its cores, so numbers are for comparison in
one run, not absolute. The single small uploads come from a minimal HTTP/1.1 client
(``--loader raw``, the default): aiohttp's client costs about as much CPU per small request
as the relay, so on two cores it measured itself as much as the server (``--loader aiohttp``
for the old figures). Bare aiohttp is measured with the same client.

    python bench/bench_relay.py [--seconds 4] [--clients 16]

Prints a table and one JSON line (``{"bench": "relay", ...}``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import pwd
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
sys.path.insert(0, str(SRC))

from privastead.ports import free_port  # noqa: E402


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(SRC) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


# ---------------------------------------------------------------- load generator (child)
class RawExchange(asyncio.Protocol):
    """One kept-alive HTTP/1.1 connection of the raw load generator: write a prepared request,
    wait for its answer (status line and Content-Length, nothing else parsed).

    aiohttp's client costs about as much CPU per small request as the relay itself, so on two
    shared cores a load generated with it measures the client as much as the server. This
    speaks just enough HTTP for the relay's and the floor's answers (always Content-Length)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is not None and not self.waiter.done():
            answer = self._answer()
            if answer is not None:
                self.waiter.set_result(answer)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("the server closed the connection"))

    def _answer(self) -> tuple[int, bytes] | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            raise RuntimeError(f"an answer without Content-Length: {head[:200]!r}")
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop > 0 else None])
        if len(self.buffer) < end + 4 + length:
            return None
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        return int(head[9:12]), body

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


async def small_messages(cfg: dict[str, Any]) -> dict[str, Any]:
    """Concurrent uploaders of 256-byte messages; one WebSocket subscriber times delivery.

    ``cfg["accounts"]`` (optional): ``[{"token", "mailboxes"}, ...]``, several households;
    uploader ``n`` sends as household ``n % len(accounts)``, one subscriber per household.
    Without it, ``cfg["token"]`` and ``cfg["mailboxes"]`` are the one household.
    """
    import aiohttp

    url = cfg["url"]
    households = cfg.get("accounts") or [{"token": cfg["token"], "mailboxes": cfg["mailboxes"]}]
    batch = cfg.get("batch", 1)
    sent: dict[tuple[str, int], float] = {}
    received: dict[tuple[str, int], float] = {}
    rtt: list[float] = []  # upload request -> its answer (the commit is durable by then)
    body = os.urandom(256)
    stop_at = time.monotonic() + cfg["seconds"]
    connector = aiohttp.TCPConnector(limit=cfg["clients"])
    async with aiohttp.ClientSession(connector=connector) as s:
        sockets = []
        for home in households:
            ws = await s.ws_connect(
                url.replace("http", "ws", 1) + "/v1/ws",
                headers={"Authorization": f"Bearer {home['token']}"},
            )
            await ws.send_json({"type": "subscribe", "mailboxes": home["mailboxes"]})
            assert json.loads((await ws.receive()).data)["type"] == "subscribed"
            sockets.append(ws)

        async def listen(ws: aiohttp.ClientWebSocketResponse) -> None:
            async for msg in ws:
                event = json.loads(msg.data)
                if event["type"] == "message":
                    received[(event["mailbox"], event["seq"])] = time.monotonic()

        listeners = [asyncio.create_task(listen(ws)) for ws in sockets]

        def household(n: int) -> tuple[dict[str, str], list[str]]:
            home = households[n % len(households)]
            return {"Authorization": f"Bearer {home['token']}"}, home["mailboxes"]

        async def batcher(n: int) -> None:
            headers, boxes = household(n)
            i = 0
            encoded = base64.b64encode(body).decode("ascii")
            while time.monotonic() < stop_at:
                items = [
                    {
                        "mailbox": boxes[(n + i + k) % len(boxes)],
                        "id": f"b{n}-{i + k}",
                        "body": encoded,
                    }
                    for k in range(batch)
                ]
                t0 = time.monotonic()
                async with s.post(
                    f"{url}/v1/messages", json={"messages": items}, headers=headers
                ) as r:
                    results = (await r.json())["results"]
                    assert r.status == 200, results
                for item, result in zip(items, results, strict=True):
                    sent[(item["mailbox"], result["seq"])] = t0
                rtt.append(time.monotonic() - t0)
                i += batch

        async def raw_uploader(n: int) -> None:
            headers, boxes = household(n)
            host, port = url.removeprefix("http://").rsplit(":", 1)
            _, conn = await asyncio.get_running_loop().create_connection(
                RawExchange, host, int(port)
            )
            fixed = (
                f"Host: {host}:{port}\r\nAuthorization: {headers['Authorization']}\r\n"
                f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n"
            ).encode()
            i = 0
            try:
                while time.monotonic() < stop_at:
                    box = boxes[(n + i) % len(boxes)]
                    request = (
                        f"POST /v1/mailboxes/{box}/messages HTTP/1.1\r\n"
                        f"Privastead-Message-Id: c{n}-{i}\r\n".encode()
                        + fixed
                        + b"\r\n"
                        + body
                    )
                    t0 = time.monotonic()
                    status, answer = await conn.exchange(request)
                    result = json.loads(answer)
                    assert status == 201, result
                    sent[(box, result["seq"])] = t0
                    rtt.append(time.monotonic() - t0)
                    i += 1
            finally:
                assert conn.transport is not None
                conn.transport.close()

        async def uploader(n: int) -> None:
            if batch > 1:
                await batcher(n)
                return
            if cfg.get("loader", "aiohttp") == "raw":
                await raw_uploader(n)
                return
            headers, boxes = household(n)
            i = 0
            while time.monotonic() < stop_at:
                box = boxes[(n + i) % len(boxes)]
                t0 = time.monotonic()
                async with s.post(
                    f"{url}/v1/mailboxes/{box}/messages",
                    data=body,
                    headers={**headers, "Privastead-Message-Id": f"c{n}-{i}"},
                ) as r:
                    result = await r.json()
                    assert r.status == 201, result
                sent[(box, result["seq"])] = t0
                rtt.append(time.monotonic() - t0)
                i += 1

        t_start = time.monotonic()
        await asyncio.gather(*(uploader(n) for n in range(cfg["clients"])))
        elapsed = time.monotonic() - t_start
        await asyncio.sleep(1.0)  # let the last events arrive
        for listener in listeners:
            listener.cancel()
        for ws in sockets:
            await ws.close()
    lat = sorted(received[k] - t for k, t in sent.items() if k in received)
    return {
        "messages": len(sent),
        "seconds": elapsed,
        "msgs_per_s": len(sent) / elapsed,
        "delivered": len(lat),
        "p50_ms": 1000 * lat[len(lat) // 2] if lat else None,
        "p99_ms": 1000 * lat[int(len(lat) * 0.99)] if lat else None,
        "upload_p50_ms": 1000 * sorted(rtt)[len(rtt) // 2] if rtt else None,
    }


async def blob_put(cfg: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    url, token, box, size = cfg["url"], cfg["token"], cfg["mailbox"], cfg["size"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"}
    body = os.urandom(size)
    count = 0
    stop_at = time.monotonic() + cfg["seconds"]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=cfg["clients"])) as s:

        async def client(n: int) -> None:
            nonlocal count
            i = 0
            while time.monotonic() < stop_at:
                async with s.post(
                    f"{url}/v1/mailboxes/{box}/messages",
                    data=body,
                    headers={**headers, "Privastead-Message-Id": f"p{size}-{n}-{i}"},
                ) as r:
                    assert r.status == 201, await r.text()
                    await r.read()
                count += 1
                i += 1

        t0 = time.monotonic()
        await asyncio.gather(*(client(n) for n in range(cfg["clients"])))
        elapsed = time.monotonic() - t0
    return {
        "requests": count,
        "seconds": elapsed,
        "req_per_s": count / elapsed,
        "mib_per_s": count * size / elapsed / 2**20,
    }


async def blob_get(cfg: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    urls, size = cfg["urls"], cfg["size"]
    headers = {"Authorization": f"Bearer {cfg['token']}"} if cfg.get("token") else {}
    count = 0
    stop_at = time.monotonic() + cfg["seconds"]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=cfg["clients"])) as s:

        async def client(n: int) -> None:
            nonlocal count
            rng = random.Random(n)
            while time.monotonic() < stop_at:
                async with s.get(rng.choice(urls), headers=headers) as r:
                    data = await r.read()
                    assert r.status == 200 and len(data) == size, r.status
                count += 1

        t0 = time.monotonic()
        await asyncio.gather(*(client(n) for n in range(cfg["clients"])))
        elapsed = time.monotonic() - t0
    return {
        "requests": count,
        "seconds": elapsed,
        "req_per_s": count / elapsed,
        "mib_per_s": count * size / elapsed / 2**20,
    }


async def idle_sockets(cfg: dict[str, Any]) -> dict[str, Any]:
    """Open ``count`` subscription WebSockets, let them idle, and read the relay's RSS
    before and while they are open (psutil on the relay's pid)."""
    import resource

    import aiohttp
    import psutil

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    relay = psutil.Process(cfg["pid"])
    before = _rss(relay)
    headers = {"Authorization": f"Bearer {cfg['token']}"}
    url = cfg["url"].replace("http", "ws", 1) + "/v1/ws"
    sockets = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        sem = asyncio.Semaphore(64)

        async def connect() -> None:
            async with sem:
                ws = await s.ws_connect(url, headers=headers, autoping=True)
                await ws.send_json({"type": "subscribe", "mailboxes": cfg["mailboxes"]})
                await ws.receive()  # "subscribed": the relay holds its subscription now
                sockets.append(ws)

        await asyncio.gather(*(connect() for _ in range(cfg["count"])))
        await asyncio.sleep(1.0)
        after = _rss(relay)
        await asyncio.gather(*(ws.close() for ws in sockets))
    return {
        "sockets": len(sockets),
        "rss_before_mib": before / 2**20,
        "rss_after_mib": after / 2**20,
        "kib_per_socket": (after - before) / 1024 / max(len(sockets), 1),
    }


def serve_floor(port: int) -> None:
    """The framework floor: aiohttp on uvloop answering the upload route as the relay does
    (read the body, answer 201 JSON), with no authentication, storage or fan-out. The same
    load against it shows what a request costs before the relay does any of its own work."""
    import uvloop
    from aiohttp import web

    seq = 0

    async def upload(request: web.Request) -> web.Response:
        nonlocal seq
        await request.read()
        seq += 1
        return web.json_response({"seq": seq, "duplicate": False, "evicted": []}, status=201)

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for _ in sock:
            await sock.send_json({"type": "subscribed", "mailboxes": [], "missing": []})
        return sock

    app = web.Application()
    app.router.add_post("/v1/mailboxes/{box}/messages", upload)
    app.router.add_get("/v1/ws", ws)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def sqlite_append_cost(batch: int = 32, rounds: int = 200) -> dict[str, float]:
    """CPU of the relay's storage step alone: ``store.append`` of 256-byte messages, each in
    its savepoint, ``batch`` per transaction (group commit), on a scratch database with
    ``synchronous=OFF`` so that only CPU is measured."""
    sys.path.insert(0, str(SRC))
    from privastead.relay import accounts, schema, store

    with tempfile.TemporaryDirectory() as d:
        conn = sqlite3.connect(Path(d) / "x.sqlite3", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        schema.init(conn)
        accounts.add_account(conn, "a", 0.0)
        boxes = [os.urandom(16).hex() for _ in range(8)]
        for b in boxes:
            store.create_mailbox(conn, "a", b, 0.0, None)
        body = os.urandom(256)
        digest = hashlib.sha256(body).digest()
        t0 = time.process_time()
        for r in range(rounds):
            conn.execute("BEGIN IMMEDIATE")
            for i in range(batch):
                conn.execute("SAVEPOINT op")
                msg = store.NewMessage("a", boxes[i % 8], f"m{r}-{i}", digest, 256, body, None)
                store.append(conn, msg, 1.0, 3600, 2**40)
                conn.execute("RELEASE op")
            conn.execute("COMMIT")
        cpu = time.process_time() - t0
        conn.close()
    return {"us_per_append": 1e6 * cpu / (batch * rounds)}


def run_load(kind: str, cfg: dict[str, Any], server_pid: int | None = None) -> dict[str, Any]:
    """Run one load in a separate process; returns its JSON result, plus the CPU seconds the
    server (``server_pid``) used meanwhile: on a shared machine, work per CPU-second is the
    steadier figure."""
    cpu0 = _cpu(server_pid)
    out = subprocess.run(
        [sys.executable, __file__, "--load", kind, json.dumps(cfg)],
        env=env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"load {kind} failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if server_pid is not None:
        result["server_cpu_s"] = _cpu(server_pid) - cpu0
    return result


def _rss(proc: Any) -> int:
    """Resident bytes of a server process and its children (the relay's native front)."""
    return int(proc.memory_info().rss) + sum(
        int(c.memory_info().rss) for c in proc.children(recursive=True)
    )


def _cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    import psutil

    proc = psutil.Process(pid)
    total = sum(proc.cpu_times()[:2])
    for child in proc.children(recursive=True):  # nginx workers
        total += sum(child.cpu_times()[:2])
    return float(total)


# ---------------------------------------------------------------- orchestration (parent)
NGINX_CONF = """
{user}
worker_processes {workers};
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def start_nginx(tmp: Path, root: Path, workers: int) -> tuple[subprocess.Popen[bytes], int]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit(
            "nginx is not installed: apt-get install -y nginx (scripts/system-deps.sh does it)"
        )
    port = free_port()
    conf = tmp / "nginx.conf"
    # The files are private (0600), as the relay's are: nginx workers must run as their owner.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    conf.write_text(NGINX_CONF.format(user=user, workers=workers, tmp=tmp, port=port, root=root))
    proc = subprocess.Popen(
        [nginx, "-c", str(conf), "-p", str(tmp)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, port


def static_files(root: Path, size: int, n: int) -> list[Path]:
    """``n`` files of ``size`` random bytes for nginx to serve (0600, as the relay's)."""
    root.mkdir(mode=0o700, exist_ok=True)
    files = []
    for i in range(n):
        path = root / f"{size}-{i}"
        path.write_bytes(os.urandom(size))
        path.chmod(0o600)
        files.append(path)
    return files


def upload_blobs(url: str, token: str, box: str, size: int, n: int) -> list[int]:
    seqs = []
    for i in range(n):
        req = urllib.request.Request(
            f"{url}/v1/mailboxes/{box}/messages",
            method="POST",
            data=os.urandom(size),
            headers={"Authorization": f"Bearer {token}", "Privastead-Message-Id": f"g{size}-{i}"},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            seqs.append(json.loads(r.read())["seq"])
    return seqs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="duration of each load")
    parser.add_argument("--clients", type=int, default=16, help="concurrent blob clients")
    parser.add_argument(
        "--senders",
        type=int,
        default=32,
        help="concurrent small-message uploaders (many hubs at once)",
    )
    parser.add_argument("--only-small", action="store_true", help="skip the blob loads")
    parser.add_argument(
        "--nginx-workers",
        type=int,
        default=1,
        help="nginx worker processes (1 = one core, like the relay)",
    )
    parser.add_argument(
        "--event-loop",
        choices=["uvloop", "asyncio"],
        default="uvloop",
        help="the relay's event loop (config key event_loop)",
    )
    parser.add_argument(
        "--durability",
        choices=["full", "normal"],
        default="full",
        help="SQLite synchronous= of the relay (config key durability)",
    )
    parser.add_argument(
        "--front",
        choices=["auto", "native", "python"],
        default="auto",
        help="who accepts connections (config key front): the native front or Python alone",
    )
    parser.add_argument(
        "--loader",
        choices=["raw", "aiohttp"],
        default="raw",
        help="client of the single small uploads: raw (a minimal HTTP/1.1 client, so the "
        "load generator does not take the relay's CPU) or aiohttp",
    )
    parser.add_argument("--load", nargs=2, metavar=("KIND", "JSON"), help=argparse.SUPPRESS)
    parser.add_argument("--serve-floor", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        serve_floor(args.serve_floor)
        return 0
    if args.load:
        kind, cfg = args.load[0], json.loads(args.load[1])
        fn = {
            "small": small_messages,
            "put": blob_put,
            "get": blob_get,
            "sockets": idle_sockets,
        }[kind]
        cpu0 = time.process_time()
        try:
            import uvloop

            result = uvloop.run(fn(cfg))
        except ImportError:
            result = asyncio.run(fn(cfg))
        result["loader_cpu_s"] = time.process_time() - cpu0
        print(json.dumps(result))
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    data = tmp / "data"
    cli = [sys.executable, "-m", "privastead.cli.server"]
    out = subprocess.run(
        [*cli, "accounts", "add", "bench", "--data-dir", str(data)],
        env=env(),
        capture_output=True,
        text=True,
        check=True,
    )
    token = out.stdout.strip().splitlines()[-1]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = tmp / "relay.toml"
    # One account plays every sender and socket here: its shares are raised to the global
    # limits (the defaults are per household; budgets.py).
    config.write_text(
        f'event_loop = "{args.event_loop}"\ndurability = "{args.durability}"\n'
        f'front = "{args.front}"\n'
        "[budgets]\nsockets_per_account = 10000\nsockets_per_token = 10000\n"
    )
    relay = subprocess.Popen(
        [
            *cli,
            "--log-level",
            "WARNING",
            "serve",
            "--config",
            str(config),
            "--data-dir",
            str(data),
            "--port",
            str(port),
        ],
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    nginx = None
    results: dict[str, Any] = {
        "bench": "relay",
        "senders": args.senders,
        "clients": args.clients,
        "event_loop": args.event_loop,
        "durability": args.durability,
        "front": args.front,
        "loader": args.loader,
        "seconds": args.seconds,
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg()[0],
    }
    rows: list[tuple[str, str, str]] = []
    try:
        wait_http(url + "/healthz")
        import psutil

        results["idle_rss_mib"] = _rss(psutil.Process(relay.pid)) / 2**20
        rows.append(("relay idle RSS (after start)", f"{results['idle_rss_mib']:.1f} MiB", ""))
        boxes = [os.urandom(16).hex() for _ in range(8)]
        for box in boxes:
            req = urllib.request.Request(
                f"{url}/v1/mailboxes/{box}",
                method="PUT",
                headers={"Authorization": f"Bearer {token}"},
            )
            urllib.request.urlopen(req, timeout=10).close()
        small = run_load(
            "small",
            {
                "url": url,
                "token": token,
                "mailboxes": boxes,
                "clients": args.senders,
                "seconds": args.seconds,
                "loader": args.loader,
            },
            relay.pid,
        )
        small["msgs_per_relay_cpu_s"] = small["messages"] / max(small["server_cpu_s"], 1e-9)
        results["small"] = small
        rows.append(
            (
                "small messages (256 B) upload",
                f"{small['msgs_per_s']:.0f} msg/s",
                "target >= 5000 msg/s",
            )
        )
        rows.append(
            (
                "  per relay CPU-second",
                f"{small['msgs_per_relay_cpu_s']:.0f} msg",
                f"relay used {small['server_cpu_s'] / small['seconds']:.2f} CPU, "
                f"load generator {small['loader_cpu_s'] / small['seconds']:.2f}",
            )
        )
        rows.append(
            (
                "  upload -> WebSocket delivery",
                f"p50 {small['p50_ms']:.1f} ms",
                f"p99 {small['p99_ms']:.1f} ms (answer p50 {small['upload_p50_ms']:.1f} ms)",
            )
        )
        # The same load against bare aiohttp (no auth, storage, fan-out): the floor.
        floor_port = free_port()
        floor = subprocess.Popen(
            [sys.executable, __file__, "--serve-floor", str(floor_port)],
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_port(floor_port)
            bare = run_load(
                "small",
                {
                    "url": f"http://127.0.0.1:{floor_port}",
                    "token": token,
                    "mailboxes": boxes,
                    "clients": args.senders,
                    "seconds": args.seconds,
                    "loader": args.loader,
                },
                floor.pid,
            )
        finally:
            floor.terminate()
            floor.wait(30)
        bare["msgs_per_server_cpu_s"] = bare["messages"] / max(bare["server_cpu_s"], 1e-9)
        results["aiohttp_floor"] = bare
        results["sqlite_append"] = sqlite_append_cost()
        relay_us = 1e6 / small["msgs_per_relay_cpu_s"]
        floor_us = 1e6 / bare["msgs_per_server_cpu_s"]
        store_us = results["sqlite_append"]["us_per_append"]
        results["cost_us_per_msg"] = {
            "relay": relay_us,
            "aiohttp_floor": floor_us,
            "sqlite_append": store_us,
            "rest": relay_us - floor_us - store_us,
        }
        rows.append(
            (
                "  same load, bare aiohttp (floor)",
                f"{bare['msgs_per_s']:.0f} msg/s",
                f"{bare['msgs_per_server_cpu_s']:.0f} per server CPU-second",
            )
        )
        # With the Python relay alone, its cost is the framework's floor + the append + its
        # own Python; the native front replaces the first and the last, so only the two
        # references are shown beside it.
        breakdown = (
            f"aiohttp floor {floor_us:.0f} us + SQLite append {store_us:.0f} us "
            f"+ the relay's own Python {relay_us - floor_us - store_us:.0f} us"
            if relay_us > floor_us + store_us
            else f"references: bare aiohttp answering alone {floor_us:.0f} us, "
            f"a SQLite append alone {store_us:.0f} us"
        )
        rows.append(("  relay CPU per message", f"{relay_us:.0f} us", breakdown))
        batched = run_load(
            "small",
            {
                "url": url,
                "token": token,
                "mailboxes": boxes,
                "clients": 8,
                "batch": 64,
                "seconds": args.seconds,
            },
            relay.pid,
        )
        batched["msgs_per_relay_cpu_s"] = batched["messages"] / max(batched["server_cpu_s"], 1e-9)
        results["small_batched"] = batched
        rows.append(
            (
                "small messages, 64 per POST /v1/messages",
                f"{batched['msgs_per_s']:.0f} msg/s",
                "target >= 5000 msg/s",
            )
        )
        rows.append(
            (
                "  per relay CPU-second",
                f"{batched['msgs_per_relay_cpu_s']:.0f} msg",
                f"relay used {batched['server_cpu_s'] / batched['seconds']:.2f} CPU, "
                f"load generator {batched['loader_cpu_s'] / batched['seconds']:.2f}",
            )
        )
        rows.append(
            (
                "  upload -> WebSocket delivery",
                f"p50 {batched['p50_ms']:.1f} ms",
                f"p99 {batched['p99_ms']:.1f} ms",
            )
        )
        for size in () if args.only_small else (64 * 1024, 1024 * 1024):
            label = f"{size // 1024} KiB"
            put = run_load(
                "put",
                {
                    "url": url,
                    "token": token,
                    "mailbox": boxes[0],
                    "size": size,
                    "clients": args.clients,
                    "seconds": args.seconds,
                },
                relay.pid,
            )
            seqs = upload_blobs(url, token, boxes[1], size, 32)
            relay_urls = [f"{url}/v1/mailboxes/{boxes[1]}/messages/{s}" for s in seqs]
            got = run_load(
                "get",
                {
                    "urls": relay_urls,
                    "token": token,
                    "size": size,
                    "clients": args.clients,
                    "seconds": args.seconds,
                },
                relay.pid,
            )
            files = static_files(tmp / "static", size, 32)
            if nginx is None:
                nginx, nginx_port = start_nginx(tmp, tmp / "static", args.nginx_workers)
                wait_port(nginx_port)
            nginx_urls = [f"http://127.0.0.1:{nginx_port}/{p.name}" for p in files]
            ceiling = run_load(
                "get",
                {
                    "urls": nginx_urls,
                    "size": size,
                    "clients": args.clients,
                    "seconds": args.seconds,
                },
                nginx.pid,
            )
            ratio = got["mib_per_s"] / ceiling["mib_per_s"]
            put["server_cpu_ms_per_req"] = 1000 * put["server_cpu_s"] / max(put["requests"], 1)
            results[f"put_{size}"] = put
            results[f"get_{size}"] = got
            results[f"nginx_get_{size}"] = ceiling
            results[f"get_ratio_{size}"] = ratio
            rows.append(
                (
                    f"blob PUT {label}",
                    f"{put['mib_per_s']:.0f} MiB/s",
                    f"{put['req_per_s']:.0f} req/s, "
                    f"{put['server_cpu_ms_per_req']:.2f} ms relay CPU per request",
                )
            )
            rows.append(
                (
                    f"blob GET {label} relay",
                    f"{got['mib_per_s']:.0f} MiB/s",
                    f"{got['req_per_s']:.0f} req/s",
                )
            )
            rows.append(
                (
                    f"blob GET {label} nginx",
                    f"{ceiling['mib_per_s']:.0f} MiB/s",
                    f"{ceiling['req_per_s']:.0f} req/s",
                )
            )
            target = 0.5 if size <= 64 * 1024 else 0.8
            rows.append((f"blob GET {label} relay/nginx", f"{ratio:.2f}x", f"target >= {target}x"))
            per_cpu = (got["mib_per_s"] * got["seconds"] / max(got["server_cpu_s"], 1e-9)) / (
                ceiling["mib_per_s"] * ceiling["seconds"] / max(ceiling["server_cpu_s"], 1e-9)
            )
            results[f"get_ratio_per_cpu_{size}"] = per_cpu
            rows.append(("  same, per server CPU-second", f"{per_cpu:.2f}x", ""))
        if not args.only_small:
            idle = run_load(
                "sockets",
                {
                    "url": url,
                    "token": token,
                    "mailboxes": boxes[:1],
                    "count": 1000,
                    "pid": relay.pid,
                },
            )
            results["ws_idle_1000"] = idle
            rows.append(
                (
                    "1000 idle subscription WebSockets",
                    f"+{idle['rss_after_mib'] - idle['rss_before_mib']:.1f} MiB",
                    f"{idle['kib_per_socket']:.1f} KiB each (RSS {idle['rss_after_mib']:.0f} MiB)",
                )
            )
        results["loadavg_end"] = os.getloadavg()[0]
    finally:
        relay.terminate()
        relay.wait(30)
        if nginx is not None:
            nginx.terminate()
            nginx.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    width = max(len(r[0]) for r in rows)
    print(
        f"relay benchmark: {args.senders} small-message senders, {args.clients} blob clients, "
        f"{args.seconds:g} s per load, "
        f"{os.cpu_count()} CPUs shared by relay, nginx and the load generator; load average "
        f"{results['loadavg_start']:.1f} at start, {results.get('loadavg_end', 0.0):.1f} at end"
    )
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>14}  {note}")
    print(json.dumps(results, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
