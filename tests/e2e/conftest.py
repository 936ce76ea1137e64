"""The running home every end-to-end test starts from: a relay process and a camsim camera."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_harness import Home, free_port, make_process

from support.procs import camsim


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    relay = make_process(tmp_path / "relay")
    try:
        with camsim(
            free_port(), tmp_path / "cache", scene="demo", size="320x180", fps=10, duration=14
        ) as cam:
            h = Home(tmp_path, relay, cam.urls[0])
            try:
                yield h
            finally:
                h.kill_hub()
    finally:
        relay.kill9()
