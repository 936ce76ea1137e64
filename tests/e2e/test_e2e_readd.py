"""A desynced device is re-added by `privastead-app resync` while the hub runs; nobody re-pairs.

Real processes on loopback (relay, camsim, `privastead-hub run`, `privastead-app pair|resync`);
the clients' receive loop runs in this process. Phone B's ``events`` state is rolled back to a
copy from before the first clip (the hub committed since: B can read nothing new there), then
B asks for a re-add in its ``control`` group; the next clip reaches both phones, and phone A's
pairing and state stay as they were.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from e2e_harness import Home, app_cmd, hub_cmd, run, sync_until

from privastead.client.eventlog import ClipState, EventLog
from privastead.clock import SystemClock

pytestmark = pytest.mark.slow


def _clips(n: int):  # type: ignore[no-untyped-def]
    return lambda syncers: all(
        sum(1 for r in s.events.events() if r.clip_state is ClipState.COMPLETE) >= n
        for s in syncers
    )


def _complete(syncer) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for r in syncer.events.events() if r.clip_state is ClipState.COMPLETE)


def _stored(data: Path) -> int:
    with EventLog(data / "events.db", clock=SystemClock()) as log:
        return sum(1 for r in log.events() if r.clip_state is ClipState.COMPLETE)


async def test_desynced_device_is_readded_without_repairing_the_others(home: Home) -> None:
    a, b = home.root / "phone-a", home.root / "phone-b"
    home.pair(a, "phone-a")
    home.pair(b, "phone-b")
    (events_state,) = (b / "mls").glob("*-events.mls")
    camera = events_state.name.removesuffix("-events.mls")
    stale = home.root / "stale-events.mls"
    shutil.copy2(events_state, stale)
    a_device = (a / "device.json").read_bytes()

    home.start_hub()
    try:
        await sync_until([a, b], _clips(1), limit=120)
        assert _stored(a) >= 1 and _stored(b) >= 1, home.hub_log.read_text()[-3000:]

        # Desync B: its events state goes back to before the hub's later commits.
        shutil.copy2(stale, events_state)
        await sync_until([b], lambda s: False, limit=3)
        before_b = _stored(b)

        out = run(app_cmd("resync", "--data-dir", str(b), "--camera", camera, "--group", "events"))
        assert out.returncode == 0, out.stdout + out.stderr + home.hub_log.read_text()[-3000:]
        assert f"{camera}/events" in out.stdout

        await sync_until(
            [a, b], lambda s: _complete(s[1]) > before_b and _complete(s[0]) >= 2, limit=120
        )
        assert _stored(b) > before_b, home.hub_log.read_text()[-3000:]
        assert _stored(a) >= 2
    finally:
        home.stop_hub()

    # A was never touched: same pairing, still listed; B is still one device, not two.
    assert (a / "device.json").read_bytes() == a_device
    listed = run(hub_cmd("devices", "list", "--config", str(home.config)))
    assert listed.stdout.count("phone-a") == 1 and listed.stdout.count("phone-b") == 1
    devices = json.loads((home.data / "devices.json").read_bytes())["devices"]
    assert len(devices) == 2
