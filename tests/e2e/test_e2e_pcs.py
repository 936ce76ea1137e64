"""Post-compromise security on every group: a stolen copy of a client's state is locked out of
all three groups once the victim next runs, and every group changes keys on the hub's schedule
with nobody doing anything.

Real processes on loopback (relay, camsim, `privastead-hub run`, `privastead-app pair|sync`).
A thief copies the victim's whole data directory (MLS states, relay token) while the hub is
stopped. The victim then runs `privastead-app sync` once, which proposes fresh leaf keys for
each of its groups; the running hub folds each proposal into a commit. An observer device
keeps everything the hub sends, and the thief's copy is tried on all of it: it cannot follow
the folding commits and opens nothing sent after them, while the victim keeps receiving.
`key_rotation_interval = 4` in hub.toml shows the schedule: every group's epoch advances
although no client does anything.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import pytest
from e2e_harness import Home, app_cmd, run

from privastead.client.device import DataDir
from privastead.client.eventlog import ClipState, EventLog
from privastead.clock import SystemClock
from privastead.crypto import Identity
from privastead.errors import CryptoError
from privastead.relay.client import RelayClient

pytestmark = pytest.mark.slow

GROUPS = ("events", "live", "control")


def _clips(data: Path) -> int:
    with EventLog(data / "events.db", clock=SystemClock()) as log:
        return sum(1 for r in log.events() if r.clip_state is ClipState.COMPLETE)


def _epochs(client: Path) -> dict[str, int]:
    data = DataDir(client)
    out = {}
    for entry in data.load().groups:
        with Identity.open(data.mls / entry.state) as ident:
            out[entry.group] = ident.epoch(entry.group_id)
    return out


async def test_a_stolen_state_is_locked_out_of_every_group_after_the_victims_update(
    home: Home,
) -> None:
    victim, thief = home.root / "victim", home.root / "thief"
    home.pair(victim, "victim")
    entries = {e.group: e for e in DataDir(victim).load().groups}
    async with RelayClient(home.relay.url, home.relay.owner_token) as owner:
        observer = await owner.create_device()
    async with RelayClient(home.relay.url, observer.token) as watcher:
        for entry in entries.values():
            await watcher.register(entry.mailbox)
    shutil.copytree(victim, thief)  # the theft
    stolen_epochs = _epochs(thief)
    text = home.config.read_text().replace(
        "heartbeat_interval = 2.0", "heartbeat_interval = 2.0\nkey_rotation_interval = 8.0"
    )
    home.config.write_text(text)

    # The victim runs once (the hub is down: the proposals wait in the mailboxes); the hub's
    # first read folds them, before anything else changes a group.
    first = run(app_cmd("sync", "--data-dir", str(victim)))
    assert first.returncode == 0, first.stderr
    state = json.loads((victim / "sync" / "updates.json").read_text())
    assert state["last"] > 0  # the victim proposed fresh keys for its groups
    home.start_hub()
    try:
        # The victim keeps receiving: follow the commits and wait for a new clip.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _clips(victim) < 1:
            out = run(app_cmd("sync", "--data-dir", str(victim)))
            assert out.returncode == 0, out.stderr
            await asyncio.sleep(1)
        assert _clips(victim) >= 1, home.hub_log.read_text()[-3000:]
        await asyncio.sleep(18)  # scheduled rotations
    finally:
        home.stop_hub()
    assert "rotated the keys of" in home.hub_log.read_text()
    out = run(app_cmd("sync", "--data-dir", str(victim)))
    assert out.returncode == 0
    now = _epochs(victim)
    for group in GROUPS:
        # Scheduled rotations and the folding commit: several epochs in every group.
        assert now[group] >= stolen_epochs[group] + 3, (group, stolen_epochs, now)

    # The thief tries its copy on everything the hub sent since the theft.
    async with RelayClient(home.relay.url, observer.token) as relay:
        for group, entry in entries.items():
            page = await relay.list_messages(entry.mailbox, limit=1000)
            assert page.messages, group
            opened, followed = 0, 0
            with Identity.open(thief / "mls" / entry.state) as ident:
                for info in page.messages:
                    body = await relay.body_of(entry.mailbox, info)
                    try:
                        got = ident.process(entry.group_id, body)
                    except CryptoError:
                        continue
                    followed += got.kind == "commit"
                    # What the hub sent before the victim's update may open; nothing after.
                    opened += got.kind == "application" and got.epoch > stolen_epochs[group]
                stuck_at = ident.epoch(entry.group_id)
            assert opened == 0, (group, opened)
            assert followed == 0, (group, followed)  # not even the commit with the update
            assert stuck_at == stolen_epochs[group], group
