"""The running home every end-to-end test starts from: a relay process and a camsim camera."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_harness import Home, running_home


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    with running_home(tmp_path) as h:
        yield h
