"""Relay test harness: a real `privastead-server serve` process on loopback, and an in-process
app with an injected FakeClock for tests of time (TTL, throttling)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from privastead.clock import FakeClock
from privastead.ports import free_port
from privastead.relay import accounts, config, db, schema
from privastead.relay.app import create_app
from privastead.relay.client import RelayClient
from privastead.relay.state import STATE, RelayState
from support.relay_storage import STORAGES, TestStorage, storage_for

SRC = Path(__file__).resolve().parents[2] / "src"
OPERATOR_TOKEN = "operator-token-for-tests-0123456789"


def run_cli(
    *args: str, data_dir: Path, config: Path | None = None, env: dict[str, str] | None = None
) -> str:
    where = ["--data-dir", str(data_dir)] + (["--config", str(config)] if config else [])
    out = subprocess.run(  # noqa: PLW1510 - the return code is checked below
        [sys.executable, "-m", "privastead.cli.server", *args, *where],
        env=_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if out.returncode != 0:
        raise RuntimeError(f"privastead-server {' '.join(args)} failed: {out.stderr}")
    return out.stdout


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ) | (extra or {})
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env["PRIVASTEAD_RELAY_METRICS_TOKEN"] = OPERATOR_TOKEN
    return env


@dataclass
class RelayProcess:
    """A relay subprocess; ``restart()`` keeps the data directory and port."""

    data_dir: Path
    config_text: str = ""
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    owner_token: str = ""
    log_level: str = "WARNING"
    env: dict[str, str] = field(default_factory=dict)  # e.g. the S3 secret of [storage.s3]
    storage: TestStorage | None = None  # None: SQLite and the data directory

    async def blob_names(self) -> set[str]:
        """Blobs stored now (files, or objects in the S3 store)."""
        storage = self.storage or TestStorage("sqlite", "", {})
        return await storage.blob_names(self.data_dir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        return self.data_dir.parent / "relay.toml"

    def cli(self, *args: str) -> str:
        """``privastead-server ARGS`` on this relay's config and storage."""
        self.config_file.write_text(self.config_text)
        return run_cli(*args, data_dir=self.data_dir, config=self.config_file, env=self.env)

    def start(self) -> None:
        cfg = self.config_file
        cfg.write_text(self.config_text)
        log = self.data_dir.parent / "relay.log"
        with log.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "privastead.cli.server",
                    "--log-level",
                    self.log_level,
                    "serve",
                    "--config",
                    str(cfg),
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    str(self.port),
                ],
                env=_env(self.env),
                stdout=out,
                stderr=out,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("relay exited early: " + log.read_text()[-2000:])
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("relay did not become healthy")

    def stop(self) -> int:
        """SIGTERM (graceful); returns the exit code."""
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.proc = None
        return code

    def kill9(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=30)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self, token: str | None = None) -> RelayClient:
        return RelayClient(self.url, token or self.owner_token)


def make_process(
    tmp_path: Path, config_text: str = "", env: dict[str, str] | None = None
) -> RelayProcess:
    data = tmp_path / "data"
    proc = RelayProcess(data_dir=data, config_text=config_text, env=env or {})
    out = proc.cli("accounts", "add", "home")
    proc.owner_token = out.strip().splitlines()[-1]
    proc.start()
    return proc


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayProcess]:
    proc = make_process(tmp_path, "[limits]\nidle_timeout = 2.0\nbody_timeout = 2.0\n")
    try:
        yield proc
    finally:
        proc.kill9()


@dataclass
class InProcess:
    server: TestServer
    state: RelayState
    clock: FakeClock
    owner_token: str

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def client(self, token: str | None = None) -> RelayClient:
        return RelayClient(self.url, token or self.owner_token)


async def start_inprocess(
    tmp_path: Path, clock: FakeClock, cfg: config.RelayConfig | None = None
) -> InProcess:
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    cfg = cfg or config.RelayConfig()
    import dataclasses

    cfg = dataclasses.replace(cfg, data_dir=data, sweep_interval_seconds=0, durability="normal")
    conn = db.connect(data / "relay.sqlite3")
    schema.init(conn)
    accounts.add_account(conn, "home", clock.time())
    token = accounts.issue_token(conn, "home", "owner", clock.time()).token
    conn.close()
    app = create_app(cfg, clock=clock, operator_token=OPERATOR_TOKEN)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return InProcess(server=server, state=app[STATE], clock=clock, owner_token=token)


@pytest.fixture
async def inproc(tmp_path: Path, clock: FakeClock) -> AsyncIterator[InProcess]:
    relay = await start_inprocess(tmp_path, clock)
    try:
        yield relay
    finally:
        await relay.server.close()


def post_head(box: str, token: str, length: int | None, extra: str = "") -> bytes:
    size = (
        f"Content-Length: {length}\r\n" if length is not None else "Transfer-Encoding: chunked\r\n"
    )
    return (
        f"POST /v1/mailboxes/{box}/messages HTTP/1.1\r\nHost: relay\r\n"
        f"Authorization: Bearer {token}\r\nPrivastead-Message-Id: m1\r\n{size}{extra}\r\n"
    ).encode()


def first_answer(port: int, head: bytes, wait: float = 3.0) -> bytes:
    """What the relay answers to ``head`` before any body byte is sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(head)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            pass
        return data


def slow_upload(port: int, token: str, box: str, msg_id: str) -> socket.socket:
    """An upload whose body has barely started: it holds an upload slot."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(
        f"POST /v1/mailboxes/{box}/messages HTTP/1.1\r\nHost: relay\r\n"
        f"Authorization: Bearer {token}\r\nPrivastead-Message-Id: {msg_id}\r\n"
        "Content-Length: 1000000\r\n\r\n".encode()
        + b"x" * 1000
    )
    return s


def mailbox_id() -> str:
    return os.urandom(16).hex()


async def wait_until(predicate: object, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


SHARED_CONFIG = (
    "[limits]\nidle_timeout = 2.0\nbody_timeout = 2.0\nbody_grace_seconds = 1.0\n"
    "[auth]\nmax_failures = 200\n"
)


@pytest.fixture(scope="session", params=STORAGES)
def any_relay(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RelayProcess]:
    """``shared_relay`` once on each storage backend: SQLite and a local directory, then
    PostgreSQL and Garage (S3). The relay's process tests that take it run on both."""
    root = tmp_path_factory.mktemp("relay-" + request.param)
    with storage_for(request.param, request) as storage:
        proc = make_process(root, SHARED_CONFIG + storage.toml, storage.env)
        proc.storage = storage
        try:
            yield proc
        finally:
            proc.kill9()


@pytest.fixture(scope="session")
def shared_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    """One relay process for the tests that neither restart it nor count its files: process
    start-up is most of their cost. Each test uses its own random mailboxes. The throttle is
    on: it never refuses the valid tokens of the tests sharing 127.0.0.1; its free failures
    are raised so that one test's bad tokens do not turn another's expected 401 into 429
    (tests/relay/test_relay_throttle.py covers the defaults)."""
    proc = make_process(tmp_path_factory.mktemp("shared"), SHARED_CONFIG)
    try:
        yield proc
    finally:
        proc.kill9()
