"""Property tests: random and mutated bytes at every parsing entry point give a clean
``PrivasteadError`` (or ``ValueError`` for caller mistakes), never a crash or a panic, and never
change the state."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privastead.crypto import Identity, peek
from privastead.errors import PrivasteadError

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@dataclass
class World:
    hub: Identity
    phone: Identity
    gid: bytes
    samples: list[bytes]
    dir: Path


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with tempfile.TemporaryDirectory() as d:
        hub = Identity.create(Path(d) / "hub", b"hub")
        phone = Identity.create(Path(d) / "phone", b"phone")
        spare = Identity.create(Path(d) / "spare", b"spare")
        gid = hub.create_group()
        added = hub.add_members(gid, [phone.key_package()])
        phone.join(added.welcome, inviter_identity=b"hub")
        samples = [
            hub.encrypt(gid, b"x" * 100, b"aad"),
            hub.self_update(gid),
            phone.propose_update(gid),
            added.welcome,
            spare.key_package(),
            (Path(d) / "spare").read_bytes(),
        ]
        yield World(hub, phone, gid, samples, Path(d))
        for ident in (hub, phone, spare):
            ident.close()


@st.composite
def mutated(draw: st.DrawFn, world: World) -> bytes:
    base = bytearray(draw(st.sampled_from(world.samples)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "set"]))
        pos = draw(st.integers(0, max(len(base) - 1, 0)))
        if op == "flip" and base:
            base[pos] ^= draw(st.integers(1, 255))
        elif op == "cut":
            base = base[:pos]
        elif op == "insert":
            base[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "set" and base:
            base[pos] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, 0x40]))
    return bytes(base)


def inputs(world: World) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=2048), mutated(world))


def _clean(call: object, *args: object, **kwargs: object) -> None:
    with contextlib.suppress(PrivasteadError, ValueError):
        call(*args, **kwargs)  # type: ignore[operator]


def test_process_peek_join_and_key_packages_fail_cleanly(world: World) -> None:
    epoch = world.phone.epoch(world.gid)

    @SETTINGS
    @given(data=inputs(world))
    def check(data: bytes) -> None:
        _clean(peek, data)
        _clean(world.phone.process, world.gid, data)
        _clean(world.phone.join, data, inviter_identity=b"hub")
        _clean(world.hub.add_members, world.gid, [data])

    check()
    # Whatever got through did not move the phone off its epoch by accident of garbage.
    assert world.phone.epoch(world.gid) >= epoch


def test_state_file_bytes_fail_cleanly(world: World) -> None:
    counter = iter(range(10**9))

    @SETTINGS
    @given(data=inputs(world))
    def check(data: bytes) -> None:
        path = world.dir / f"fuzz-{next(counter)}"
        path.write_bytes(data)
        try:
            Identity.open(path).close()
        except PrivasteadError:
            pass
        finally:
            path.unlink()
            Path(f"{path}.lock").unlink(missing_ok=True)

    check()
