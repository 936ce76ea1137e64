"""The hub's admin socket (hub/admin/server.py, hub/admin/client.py): real Unix sockets, a stand-in
for the hub's operations (the real ones are exercised end to end in tests/e2e/test_e2e_admin.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import stat
import struct
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from privastead.clock import SystemClock
from privastead.errors import AdminError, ConfigError, RemovalIncompleteError
from privastead.hub.admin.client import call_running_hub, running_hub_pid
from privastead.hub.admin.devices import Removed
from privastead.hub.admin.pairing import Paired
from privastead.hub.admin.server import AdminServer, check_peer
from privastead.hub.admin.wire import MAX_REQUEST, socket_path
from privastead.hub.state.pending import PendingDevice
from privastead.protocol.pairing_code import PairingCode
from privastead.protocol.short_code import parse

PENDING = PendingDevice("ef" * 16, "phone", 1.0, 2e9, ("cam",), None, "12345 67890", "ab12 cd34")


class FakeAdmin:
    """Stands in for HubAdmin: records calls; ``pair`` shows a code and waits to be released."""

    def __init__(self) -> None:
        self.removed: list[str] = []
        self.release = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.decided = asyncio.Event()
        self.decisions: list[tuple[str, bool]] = []

    def devices(self) -> dict[str, Any]:
        leaf = {"index": 1, "signature_key": "00"}
        return {
            "devices": {"ab" * 16: {"name": "phone", "leaves": {"cam/events": leaf}}},
            "unknown": {},
        }

    async def remove(self, wanted: str) -> Removed:
        if wanted != "phone":
            raise ConfigError(f"no single device {wanted!r}")
        self.removed.append(wanted)
        return Removed(wanted, ("cam/events",))

    async def remove_unknown(self) -> dict[str, list[int]]:
        raise RemovalIncompleteError("unknown members are NOT all removed: cam/live: failed")

    async def pair(
        self,
        cameras: Sequence[str],
        ttl: float,
        replace: str | None,
        events: Any,
        *,
        short: bool = True,
    ) -> Paired:
        code = PairingCode.new(
            relay_url="http://127.0.0.1:1",
            token="t" * 43,
            hub_name="cam",
            ttl=ttl,
            clock=SystemClock(),
        )
        await events.code(code, parse("417-acorn-shiny") if short else None, ["cam"])
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        events.safety("12345 67890")
        events.pending(PENDING)
        events.alert("SECURITY ALERT: test")
        await self.decided.wait()
        return Paired("cd" * 16, replace or "new-phone", "12345 67890", ("cam",))

    async def decide(self, wanted: str, approve: bool) -> PendingDevice:
        if wanted != PENDING.pending_id:
            raise ConfigError(f"no pending device {wanted!r}")
        self.decisions.append((wanted, approve))
        self.decided.set()
        return PENDING


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[AdminServer, FakeAdmin]]:
    fake = FakeAdmin()
    server = AdminServer(socket_path(tmp_path), fake)  # type: ignore[arg-type]
    assert await server.start()
    try:
        yield server, fake
    finally:
        await server.close()


async def test_socket_is_private_and_answers(
    tmp_path: Path, served: tuple[AdminServer, FakeAdmin]
) -> None:
    server, fake = served
    assert stat.S_IMODE(server.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(server.path.parent.stat().st_mode) == 0o700
    assert await running_hub_pid(tmp_path) == os.getpid()
    devices = await call_running_hub(tmp_path, "devices")
    assert devices is not None and devices["devices"]["ab" * 16]["name"] == "phone"
    removed = await call_running_hub(tmp_path, "remove", {"device": "phone"})
    assert removed == {"name": "phone", "groups": ["cam/events"]}
    assert fake.removed == ["phone"]
    # A removal the hub cannot prove comes back as the same error class, naming the group.
    with pytest.raises(RemovalIncompleteError, match="cam/live"):
        await call_running_hub(tmp_path, "remove_unknown")
    # The hub's error comes back as the same class, with its text.
    with pytest.raises(ConfigError, match="no single device 'tablet'"):
        await call_running_hub(tmp_path, "remove", {"device": "tablet"})
    with pytest.raises(AdminError, match="unknown admin request"):
        await call_running_hub(tmp_path, "format-disk")


async def test_pairing_streams_the_code_first_then_the_outcome(
    tmp_path: Path, served: tuple[AdminServer, FakeAdmin]
) -> None:
    _, fake = served
    seen: list[dict[str, Any]] = []

    async def progress(frame: dict[str, Any]) -> None:
        seen.append(frame)
        if frame["event"] == "code":
            assert PairingCode.parse(frame["code"]).hub_name == "cam"
            assert frame["short_code"] == "417-acorn-shiny"
            fake.release.set()  # the code was shown before the hub finished
        if frame["event"] == "pending":
            # The owner's answer comes on its own connection while the pairing waits for it.
            with pytest.raises(ConfigError, match="no pending device"):
                await call_running_hub(tmp_path, "approve", {"device": "tablet"})
            answer = await call_running_hub(tmp_path, "approve", {"device": frame["pending_id"]})
            assert answer == {"pending_id": PENDING.pending_id, "name": "phone"}

    result = await call_running_hub(tmp_path, "pair", {"cameras": [], "ttl": 60}, progress)
    assert [f["event"] for f in seen] == ["code", "safety", "pending", "alert"]
    assert seen[2]["device"]["fingerprint"] == "ab12 cd34"
    assert fake.decisions == [(PENDING.pending_id, True)]
    assert result is not None and result["safety"] == "12345 67890"


async def test_one_pairing_at_a_time_and_a_vanished_cli_cancels_it(
    tmp_path: Path, served: tuple[AdminServer, FakeAdmin]
) -> None:
    _, fake = served
    shown = asyncio.Event()
    first = asyncio.create_task(
        call_running_hub(tmp_path, "pair", {"ttl": 60}, lambda _f: shown.set())
    )
    await asyncio.wait_for(shown.wait(), 10)
    with pytest.raises(AdminError, match="another pairing or removal"):
        await call_running_hub(tmp_path, "pair", {"ttl": 60})
    first.cancel()  # Ctrl-C in the CLI: its connection closes
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(fake.cancelled.wait(), 10)
    # ... and the hub takes the next request.
    assert await call_running_hub(tmp_path, "devices") is not None


async def test_malformed_and_oversized_requests_are_refused(
    tmp_path: Path, served: tuple[AdminServer, FakeAdmin]
) -> None:
    async def raw(payload: bytes) -> bytes:
        reader, writer = await asyncio.open_unix_connection(str(socket_path(tmp_path)))
        writer.write(payload)
        await writer.drain()
        answer = await reader.read()
        writer.close()
        return answer

    too_big = await raw(struct.pack(">I", MAX_REQUEST + 1))
    assert b"AdminError" in too_big and b"limit" in too_big
    not_json = await raw(struct.pack(">I", 3) + b"{{{")
    assert b"not JSON" in not_json
    not_object = await raw(struct.pack(">I", 2) + b"[]")
    assert b"not a JSON object" in not_object
    body = b'{"op":"pair","args":{"ttl":"x"}}'
    bad_args = await raw(struct.pack(">I", len(body)) + body)
    assert b"AdminError" in bad_args


async def test_a_dead_hubs_socket_neither_fools_the_cli_nor_blocks_a_new_hub(
    tmp_path: Path,
) -> None:
    path = socket_path(tmp_path)
    path.parent.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))  # bound, then the process "dies": the file stays, nobody listens
    dead.close()
    assert path.exists()
    assert await call_running_hub(tmp_path, "ping") is None
    server = AdminServer(path, FakeAdmin())  # type: ignore[arg-type]
    assert await server.start()
    try:
        assert await running_hub_pid(tmp_path) == os.getpid()
    finally:
        await server.close()
    assert not path.exists()


def test_only_the_hubs_user_and_root_are_allowed() -> None:
    check_peer(1000, 1000)
    check_peer(0, 1000)
    with pytest.raises(AdminError, match="uid 1001 may not administer"):
        check_peer(1001, 1000)


def _connect_as(uid: int, path: Path) -> int:
    """In a forked child: become ``uid``, ask for the device list; exit code says what
    happened (0 answered with devices, 3 refused by the hub, 4 no permission to connect)."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        os.setgid(uid)
        os.setuid(uid)
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(str(path))
        except PermissionError:
            os._exit(4)
        body = b'{"op":"devices","args":{}}'
        answer = b""
        with contextlib.suppress(OSError):  # the hub may answer and close before reading
            s.sendall(struct.pack(">I", len(body)) + body)
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except OSError:
            pass
        code = 3 if b"may not administer" in answer else 0 if b"phone" in answer else 1
    finally:
        os._exit(code)


def _traversable_dir() -> Path:
    """Outside pytest's private tmp tree, so that only our own permissions are in the way."""
    root = Path(tempfile.mkdtemp(prefix="privastead-admin-"))
    root.chmod(0o711)
    return root


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another uid")
async def test_another_uid_cannot_use_the_socket() -> None:
    root = _traversable_dir()
    server = AdminServer(socket_path(root), FakeAdmin())  # type: ignore[arg-type]
    assert await server.start()
    nobody = 65534
    try:
        # As installed (directory 0700, socket 0600) another user cannot even connect.
        pid = _connect_as(nobody, server.path)
        _, status = await asyncio.to_thread(os.waitpid, pid, 0)
        assert os.waitstatus_to_exitcode(status) == 4
        # With the file permissions opened up, the kernel's peer credentials still refuse it.
        server.path.parent.chmod(0o711)
        server.path.chmod(0o666)
        pid = _connect_as(nobody, server.path)
        _, status = await asyncio.to_thread(os.waitpid, pid, 0)
        assert os.waitstatus_to_exitcode(status) == 3
    finally:
        await server.close()
        shutil.rmtree(root, ignore_errors=True)


async def test_a_connection_that_sends_nothing_is_dropped(
    tmp_path: Path, served: tuple[AdminServer, FakeAdmin], monkeypatch: pytest.MonkeyPatch
) -> None:
    from privastead.hub.admin import server as admin

    monkeypatch.setattr(admin, "REQUEST_TIMEOUT", 0.2)
    reader, writer = await asyncio.open_unix_connection(str(socket_path(tmp_path)))
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert b"no complete request" in answer
