"""Who holds the hub's state (hub/state/service.py, hub/admin/ops.py ``on_hub``).

A `privastead-hub run` started while a `devices` command briefly holds the group state waits
for it instead of failing; a command that finds a `run` still starting (its admin socket not
yet up) asks again; a `pair` that may hold the state for minutes is named at once. The holders
are real processes holding the real locks; no relay is contacted (the URL is never reached).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from privastead.errors import StateLockedError
from privastead.hub.admin.ops import HubAdmin, on_hub
from privastead.hub.config import CameraConfig, HubConfig, HubSection, RelaySection
from privastead.hub.state.service import StateHolder, open_hub, state_holder
from privastead.relay.accounts import new_token

HOLDER = """
import asyncio, sys
from pathlib import Path
from privastead.hub.config import CameraConfig, HubConfig, HubSection, RelaySection
from privastead.hub.state.service import open_hub

async def main() -> None:
    root, token, command, seconds = sys.argv[1:]
    config = HubConfig(
        HubSection(data_dir=Path(root), status_interval=0),
        (CameraConfig(name="porch", url="rtsp://127.0.0.1:1/cam"),),
        RelaySection(url="http://127.0.0.1:1", token_file=Path(token)),
    )
    async with open_hub(config, command):
        print("held", flush=True)
        await asyncio.sleep(float(seconds))

asyncio.run(main())
"""


def _config(tmp_path: Path) -> HubConfig:
    token = tmp_path / "token"
    if not token.exists():
        token.write_text(new_token()[2] + "\n")
    return HubConfig(
        HubSection(data_dir=tmp_path / "hub", status_interval=0),
        (CameraConfig(name="porch", url="rtsp://127.0.0.1:1/cam"),),
        RelaySection(url="http://127.0.0.1:1", token_file=token),
    )


@contextlib.contextmanager
def _hold(config: HubConfig, command: str, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """A process that holds the hub's groups as ``command`` for ``seconds`` (killed after)."""
    assert config.relay.token_file is not None
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            HOLDER,
            str(config.hub.data_dir),
            str(config.relay.token_file),
            command,
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        try:
            assert proc.stdout.readline().strip() == "held"
            yield proc
        finally:
            proc.kill()


@pytest.fixture
def config(tmp_path: Path) -> HubConfig:
    return _config(tmp_path)


async def test_run_waits_for_a_devices_command_that_holds_the_state(config: HubConfig) -> None:
    told: list[StateHolder | None] = []
    with _hold(config, "devices", 1.5) as holder:
        started = time.monotonic()
        async with open_hub(config, "run", wait=30, on_wait=told.append) as hub:
            assert time.monotonic() - started > 0.5  # it did wait
            assert state_holder(hub.config.hub.paths()) == StateHolder(os.getpid(), "run")
        assert told == [StateHolder(holder.pid, "devices")]
        assert not config.hub.paths().holder.exists()  # let go: nobody holds it


async def test_a_long_holder_is_named_at_once(config: HubConfig) -> None:
    with _hold(config, "pair", 30) as holder:
        started = time.monotonic()
        with pytest.raises(StateLockedError, match=rf"`privastead-hub pair` \(pid {holder.pid}\)"):
            async with open_hub(config, "run", wait=30):
                pass
        assert time.monotonic() - started < 10  # not the 30 s it was allowed
        # A command needing the groups is told the same; nothing of the holder's was touched.
        with pytest.raises(StateLockedError, match="privastead-hub pair"):
            await on_hub(config, "devices", "devices", {}, local=_devices, wait=30)
        assert state_holder(config.hub.paths()) == StateHolder(holder.pid, "pair")


async def test_a_command_asks_again_while_a_run_is_starting(config: HubConfig) -> None:
    # A `run` that holds the groups and has no admin socket yet (it is starting): the
    # command neither fails nor opens the state under it, it waits until it can.
    with _hold(config, "run", 1.5):
        started = time.monotonic()
        report = await on_hub(config, "devices", "devices", {}, local=_devices, wait=30)
        assert report["devices"] == {} and time.monotonic() - started > 0.5


async def test_a_command_gives_up_after_its_wait(config: HubConfig) -> None:
    with _hold(config, "run", 30), pytest.raises(StateLockedError, match="starting or stopping"):
        await on_hub(config, "devices", "devices", {}, local=_devices, wait=1)


async def _devices(admin: HubAdmin) -> dict[str, Any]:
    return admin.devices()
