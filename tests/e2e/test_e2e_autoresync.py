"""`privastead-app listen` re-adds a desynced device by itself: nobody runs `resync`.

Real processes on loopback (relay, camsim, `privastead-hub run`, `privastead-app listen`). The
phone's ``events`` state is rolled back to a copy from before the first clip (as a restored
backup would be) between two runs of `listen`; the hub has committed since, so the phone can
read nothing new there. The second `listen` notices (heartbeats name a later epoch, its mailbox
waits on an epoch it never reached), sends one ``ReAddRequest``, joins the answer and stores the
next clip. Before that, a relay outage while `listen` runs in sync requests nothing.
`--resync-after 4` keeps the test short; the default is a minute.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from e2e_harness import Home, Listener, app_cmd, run

pytestmark = pytest.mark.slow


def _clips(lines: list[str]) -> list[str]:
    """Complete clips (`clip CAMERA EVENT PATH`); a clip begun before the re-add ends
    incomplete at this device (path None): its first fragments are of epochs it never had."""
    return [line for line in lines if line.startswith("clip ") and not line.endswith(" None")]


def _index(lines: list[str], prefix: str) -> int:
    return next((i for i, line in enumerate(lines) if line.startswith(prefix)), -1)


def test_listen_readds_a_desynced_group_by_itself(home: Home) -> None:
    phone = home.root / "phone"
    home.pair(phone, "phone")
    (events_state,) = (phone / "mls").glob("*-events.mls")
    camera = events_state.name.removesuffix("-events.mls")
    stale = home.root / "stale-events.mls"
    shutil.copy2(events_state, stale)
    flags = ("--resync-after", "4")

    home.start_hub()
    try:
        first = Listener(phone, *flags)
        try:
            assert first.wait_for(lambda out: len(_clips(out)) >= 1), first.output()
            # A relay outage is not a desync: nothing may be requested for it.
            home.relay.kill9()
            time.sleep(8)
            home.relay.start()
            clips = len(_clips(first.stdout))
            assert first.wait_for(lambda out: len(_clips(out)) > clips), first.output()
            assert not any(line.startswith("resync") for line in first.stdout), first.output()
        finally:
            assert first.stop() == 0, first.output()

        shutil.copy2(stale, events_state)  # the phone's events state goes back in time

        second = Listener(phone, *flags)
        try:
            readded = f"resync {camera}/events: re-added by the hub"
            assert second.wait_for(lambda out: _index(out, readded) >= 0), (
                second.output() + home.hub_log.read_text()[-3000:]
            )
            assert second.wait_for(
                lambda out: bool(_clips(out[_index(out, readded) :])), limit=150
            ), second.output() + home.hub_log.read_text()[-3000:]
        finally:
            assert second.stop() == 0, second.output()
    finally:
        home.stop_hub()

    requests = [line for line in second.stdout if "asked the hub to re-add" in line]
    assert len(requests) == 1, second.output()  # once, not per round
    assert requests[0].startswith(f"resync {camera}/events: this device lost sync")
    assert not any(f"{camera}/live" in line for line in second.stdout)  # live was in sync
    # The clip after the re-add is on disk, byte for byte what the hub recorded.
    path = Path(_clips(second.stdout)[-1].split()[3])
    assert path.read_bytes() in {p.read_bytes() for p in home.recorded_clips()}
    saved = json.loads((phone / "sync" / "resync.json").read_bytes())
    assert saved[f"{camera}/events"]["attempts"] == 1  # persisted: a restart waits it out
    shown = run(app_cmd("status", "--data-dir", str(phone)))
    assert f"re-add of {camera}/events last requested" in shown.stdout, shown.stdout
