"""Batches through the facade: one durable write for many messages, per-message results, all
or nothing for encryption; and the state file written in place."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from crypto_helpers import Group

from privastead.crypto import Received
from privastead.errors import (
    DecodeError,
    DuplicateMessageError,
    PolicyError,
    WrongEpochError,
)


def durable_writes(path: Path) -> int:
    """The live slot's sequence number: how many durable writes the state file has had."""
    data = path.read_bytes()
    slot = int.from_bytes(data[12:16], "big")
    return max(int.from_bytes(data[o : o + 8], "big") for o in (4096, 4096 + slot))


def test_process_batch_returns_what_process_would_with_one_write(
    make_group: Callable[[int], Group],
) -> None:
    g = make_group(2)
    phone, other = g.clients
    first = g.hub.encrypt(g.gid, b"first")
    commit = g.hub.self_update(g.gid)
    second = g.hub.encrypt(g.gid, b"second")
    path = g.paths[phone.name]
    before = durable_writes(path)
    results = phone.process_batch(g.gid, [first, commit, second, first, b"\x00junk"])
    assert durable_writes(path) == before + 1
    assert [r.kind for r in results[:3] if isinstance(r, Received)] == [
        "application",
        "commit",
        "application",
    ]
    assert [r.data for r in results[:3] if isinstance(r, Received)][::2] == [b"first", b"second"]
    assert isinstance(results[3], DuplicateMessageError)
    assert isinstance(results[4], DecodeError)
    # The other client has not seen the commit yet: the new epoch's message is "future".
    ahead = other.process_batch(g.gid, [second, first])
    assert isinstance(ahead[0], WrongEpochError)
    epoch = g.hub.epoch(g.gid)
    assert (ahead[0].message_epoch, ahead[0].group_epoch) == (epoch, epoch - 1)
    assert isinstance(ahead[1], Received) and ahead[1].data == b"first"
    assert phone.process_batch(g.gid, []) == []


def test_a_refused_message_in_a_batch_changes_nothing(make_group: Callable[[int], Group]) -> None:
    g = make_group(1)
    (phone,) = g.clients
    update = phone.propose_update(g.gid)
    other_gid = g.hub.create_group()
    foreign = g.hub.encrypt(other_gid, b"not for this group")
    results = g.hub.process_batch(g.gid, [foreign, update])
    assert isinstance(results[0], PolicyError)
    assert isinstance(results[1], Received) and results[1].kind == "proposal"


def test_encrypt_batch_is_all_or_nothing(make_group: Callable[[int], Group]) -> None:
    g = make_group(1)
    (phone,) = g.clients
    hub_path = g.paths[b"hub"]
    before = hub_path.read_bytes()
    too_big = bytes(g.hub.max_message_size + 1)
    with pytest.raises(ValueError, match="max_message_size"):
        g.hub.encrypt_batch(g.gid, [b"fine", too_big, b"also fine"], app_data=b"never")
    assert hub_path.read_bytes() == before and g.hub.app_data == b""
    writes = durable_writes(hub_path)
    cts = g.hub.encrypt_batch(g.gid, [b"a", b"b", b"c"], app_data=b"3 sent")
    assert durable_writes(hub_path) == writes + 1 and g.hub.app_data == b"3 sent"
    results = phone.process_batch(g.gid, cts)
    assert [r.data for r in results if isinstance(r, Received)] == [b"a", b"b", b"c"]


def test_the_state_file_is_rewritten_in_place(make_group: Callable[[int], Group]) -> None:
    g = make_group(1)
    (phone,) = g.clients
    path = g.paths[phone.name]
    inode, size = path.stat().st_ino, path.stat().st_size
    for i in range(5):
        phone.process(g.gid, g.hub.encrypt(g.gid, b"%d" % i))
    assert (path.stat().st_ino, path.stat().st_size) == (inode, size)
    # A state that outgrows its slot is moved to a new, larger file (atomic rename).
    phone.set_app_data(bytes(size))
    assert path.stat().st_ino != inode and path.stat().st_size > size
    assert phone.app_data == bytes(size)
