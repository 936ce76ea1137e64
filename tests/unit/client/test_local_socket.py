"""The running client's local socket against bad input, over a real Unix socket: every bad
request gets an error frame naming what is wrong, nothing is allocated for an oversized
length prefix, and the server goes on answering. (The commands through a running `listen`
with a real relay and hub: ``tests/e2e/test_e2e_local_socket.py``.)"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import struct
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from privastead.client.device import DataDir
from privastead.client.local_call import MAX_REQUEST, call_running_client, socket_path
from privastead.client.local_socket import LocalServer
from privastead.errors import LocalSocketError
from privastead.protocol.frames import encode_frame, read_frame


def _server(root: Path, *, exist_ok: bool = False) -> LocalServer:
    root.mkdir(mode=0o700, exist_ok=exist_ok)
    # Only ``ping`` and malformed requests here: they never touch the client's stores.
    client: Any = SimpleNamespace(data=DataDir(root))
    return LocalServer(client)


async def _raw(root: Path, data: bytes) -> dict[str, Any] | None:
    reader, writer = await asyncio.open_unix_connection(str(socket_path(root)))
    try:
        writer.write(data)
        await writer.drain()
        return await read_frame(reader, 1 << 20, LocalSocketError, "test")
    finally:
        writer.close()


async def test_bad_requests_get_errors_and_the_server_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "app"
    server = _server(root)
    assert await server.start()
    try:
        path = socket_path(root)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        too_big = await _raw(root, struct.pack(">I", MAX_REQUEST + 1))
        assert too_big is not None and too_big["error"] == "LocalSocketError"
        assert "over the" in too_big["message"]
        not_json = await _raw(root, struct.pack(">I", 3) + b"{{{")
        assert not_json is not None and "not JSON" in not_json["message"]
        not_object = await _raw(root, struct.pack(">I", 2) + b"[]")
        assert not_object is not None and "not a JSON object" in not_object["message"]
        unknown = await _raw(root, encode_frame({"op": "format-disk"}))
        assert unknown is not None and "unknown client socket request" in unknown["message"]
        bad_args = await _raw(root, encode_frame({"op": "events", "args": []}))
        assert bad_args is not None and "args must be an object" in bad_args["message"]
        bad_limit = await _raw(root, encode_frame({"op": "events", "args": {"limit": "all"}}))
        assert bad_limit is not None and "limit must be an integer" in bad_limit["message"]
        with pytest.raises(LocalSocketError, match="camera must be a string"):
            await call_running_client(root, "live", {"camera": 7})
        answer = await call_running_client(root, "ping")
        assert answer == {"pid": os.getpid()}
    finally:
        await server.close()
    assert not socket_path(root).exists()


async def test_a_stale_socket_file_means_no_client_runs(tmp_path: Path) -> None:
    root = tmp_path / "app"
    path = socket_path(root)
    path.parent.mkdir(mode=0o700, parents=True)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))  # what a killed client leaves: a socket file nobody listens on
    dead.close()
    assert path.exists()
    assert await call_running_client(root, "status") is None
    server = _server(root, exist_ok=True)
    assert await server.start()  # the next owner replaces it
    try:
        assert await call_running_client(root, "ping") == {"pid": os.getpid()}
    finally:
        await server.close()


async def test_no_socket_means_no_client_runs(tmp_path: Path) -> None:
    assert await call_running_client(tmp_path, "status") is None
