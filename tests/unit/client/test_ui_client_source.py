"""``ClientSource`` before pairing: the live page gets a sentence saying what to do, not a
crash (the livestream itself, with a real hub, is tested in tests/e2e/test_ui_live_e2e.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from privastead.client.device import DataDir
from privastead.client.ui.client_source import ClientSource
from privastead.client.ui.source import UnavailableError
from privastead.clock import FakeClock


async def test_live_before_pairing_says_to_pair_first(tmp_path: Path, clock: FakeClock) -> None:
    source = ClientSource(DataDir(tmp_path / "laptop"), clock=clock, device_name="laptop")
    await source.start()
    try:
        with pytest.raises(UnavailableError, match="not paired with a hub yet"):
            source.live("door")
        assert await source.cameras() == []
    finally:
        await source.close()
