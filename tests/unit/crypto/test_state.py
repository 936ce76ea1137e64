"""The state file: atomic, private, locked, self-checking; and calls serialised across threads."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from crypto_helpers import Group

from privastead.crypto import Identity
from privastead.errors import (
    DecodeError,
    GroupStateError,
    StateLockedError,
    StorageError,
)


def test_state_file_is_0600_and_no_tmp_or_old_copies_remain(
    make_group: Callable[[int], Group], tmp_path: Path
) -> None:
    old_umask = os.umask(0o022)
    try:
        g = make_group(1)
        for _ in range(3):
            g.clients[0].process(g.gid, g.hub.self_update(g.gid))
    finally:
        os.umask(old_umask)
    for name in ("hub", "client0"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "client0",
        "client0.lock",
        "hub",
        "hub.lock",
    ]


def test_a_second_process_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state"
    with Identity.create(path, b"hub"):
        code = (
            "import sys\n"
            "from privastead.crypto import Identity\n"
            "from privastead.errors import StateLockedError\n"
            "try:\n"
            f"    Identity.open({str(path)!r})\n"
            "except StateLockedError as e:\n"
            "    print(e); sys.exit(3)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 3, done.stderr
        assert "in use by another process" in done.stdout
    # Released on close: now it opens.
    with Identity.open(path) as again:
        assert again.name == b"hub"


def test_same_process_second_handle_and_create_over_existing_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "state"
    ident = Identity.create(path, b"x")
    with pytest.raises(StateLockedError):
        Identity.open(path)
    ident.close()
    assert ident.closed
    with pytest.raises(GroupStateError):
        ident.key_package()
    with pytest.raises(StorageError):
        Identity.create(path, b"x")
    with pytest.raises(StorageError):
        Identity.open(tmp_path / "missing")


def live_slot(data: bytes) -> tuple[int, int]:
    """Offset and payload length of the live slot of a format-2 state file (see state-file.md:
    a header page, then two slots of u64 seq, u32 length, SHA-256, payload)."""
    assert data[:8] == b"PRVSTATE"
    slot = int.from_bytes(data[12:16], "big")
    slots = [4096, 4096 + slot]
    seqs = [int.from_bytes(data[o : o + 8], "big") for o in slots]
    offset = slots[seqs.index(max(seqs))]
    return offset, int.from_bytes(data[offset + 8 : offset + 12], "big")


DAMAGE = ["flip payload", "flip digest", "flip seq", "flip header", "truncate", "empty", "junk"]


@pytest.mark.parametrize("damage", DAMAGE)
def test_corrupt_state_is_a_storage_error(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "state"
    with Identity.create(path, b"x") as ident:
        ident.create_group()
    data = bytearray(path.read_bytes())
    offset, length = live_slot(bytes(data))
    if damage == "flip payload":
        data[offset + 44 + length // 2] ^= 1
    elif damage == "flip digest":
        data[offset + 12 + 31] ^= 0x80
    elif damage == "flip seq":
        data[offset + 7] ^= 1
    elif damage == "flip header":
        data[9] ^= 1  # the format number
    elif damage == "truncate":
        data = data[:-10]
    elif damage == "empty":
        data = bytearray()
    else:
        data = bytearray(b"PRVSTMLS" + bytes(100))
    path.write_bytes(bytes(data))
    with pytest.raises(StorageError, match="state"):
        Identity.open(path)


def test_damage_outside_the_live_state_changes_nothing(tmp_path: Path) -> None:
    """Bytes that are no part of the live state (the wiped slot, the padding after the
    payload, the header page's reserve) are not read: flipping them loses nothing."""
    path = tmp_path / "state"
    with Identity.create(path, b"x") as ident:
        gid = ident.create_group()
        code = ident.safety_code(gid)
    data = bytearray(path.read_bytes())
    offset, length = live_slot(bytes(data))
    other = 4096 if offset != 4096 else 4096 + int.from_bytes(data[12:16], "big")
    for i in (100, 4000, other, other + 50, offset + 44 + length + 1, len(data) - 1):
        if offset <= i < offset + 44 + length:
            continue
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with Identity.open(path) as again:
        assert again.safety_code(gid) == code


def test_app_data_is_stored_with_the_state_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "hub"
    with Identity.create(path, b"hub") as hub:
        gid = hub.create_group(app_data=b"outbox: []")
        commit = hub.self_update(gid, app_data=b"outbox: [commit]")
        assert hub.app_data == b"outbox: [commit]"
        assert hub.last_handshake.messages == (commit,)
        seq = hub.last_handshake.seq
    with Identity.open(path) as hub:
        assert hub.app_data == b"outbox: [commit]"
        assert hub.last_handshake.seq == seq and hub.last_handshake.messages == (commit,)
        hub.set_app_data(b"")
        assert hub.app_data == b""
        # A failing call does not store its app_data.
        with pytest.raises(GroupStateError):
            hub.self_update(b"no such group", app_data=b"never")
        assert hub.app_data == b""


def test_inputs_above_the_size_limit_are_refused_before_decoding(tmp_path: Path) -> None:
    with Identity.create(tmp_path / "s", b"x", max_message_size=1000) as ident:
        gid = ident.create_group()
        with pytest.raises(DecodeError, match="limit"):
            ident.process(gid, bytes(1001))
        with pytest.raises(DecodeError, match="limit"):
            ident.join(bytes(5000), inviter_identity=b"hub")
        with pytest.raises(ValueError):
            ident.encrypt(gid, bytes(2000))


def test_concurrent_threads_are_serialised(make_group: Callable[[int], Group]) -> None:
    g = make_group(1)
    (c,) = g.clients
    per_thread, threads = 15, 4  # 60 < the out-of-order tolerance of 64
    outputs: list[list[bytes]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []

    def send(k: int) -> None:
        try:
            for i in range(per_thread):
                outputs[k].append(g.hub.encrypt(g.gid, f"{k}:{i}".encode()))
        except BaseException as e:
            errors.append(e)

    workers = [threading.Thread(target=send, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    # Every ciphertext used a distinct generation: all decrypt, in any order, exactly once.
    received = set()
    for k in reversed(range(threads)):
        for ct in outputs[k]:
            received.add(c.process(g.gid, ct).data)
    assert received == {f"{k}:{i}".encode() for k in range(threads) for i in range(per_thread)}


def test_the_gil_is_released_during_crypto_work(make_group: Callable[[int], Group]) -> None:
    g = make_group(1)
    payloads = [bytes(1024 * 1024)] * 8
    ticks = 0
    stop = threading.Event()

    def spin() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    # A long switch interval: without a GIL release the spinner cannot run during the call.
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(0.5)
    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        # The spinner can only run while this thread is inside the extension if the
        # extension released the GIL (the call itself is one bytecode in this thread).
        before = ticks
        g.hub.encrypt_batch(g.gid, payloads)
        during = ticks - before
    finally:
        stop.set()
        spinner.join()
        sys.setswitchinterval(old_interval)
    assert during > 0
