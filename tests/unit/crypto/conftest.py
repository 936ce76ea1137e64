"""Fixtures for the crypto facade: identities in a temporary directory, and ready groups."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from crypto_helpers import Group

from privastead.crypto import Identity


@pytest.fixture
def make_identity(tmp_path: Path) -> Iterator[Callable[[bytes], Identity]]:
    made: list[Identity] = []

    def make(name: bytes) -> Identity:
        ident = Identity.create(tmp_path / name.decode(), name)
        made.append(ident)
        return ident

    yield make
    for ident in made:
        ident.close()


@pytest.fixture
def make_group(
    make_identity: Callable[[bytes], Identity], tmp_path: Path
) -> Callable[[int], Group]:
    def make(n: int) -> Group:
        hub = make_identity(b"hub")
        gid = hub.create_group()
        clients: list[Identity] = []
        for i in range(n):
            client = make_identity(f"client{i}".encode())
            added = hub.add_members(gid, [client.key_package()])
            for earlier in clients:
                assert earlier.process(gid, added.commit).kind == "commit"
            assert client.join(added.welcome, inviter_identity=b"hub") == gid
            clients.append(client)
        paths = {ident.name: tmp_path / ident.name.decode() for ident in [hub, *clients]}
        return Group(hub, clients, gid, paths)

    return make
