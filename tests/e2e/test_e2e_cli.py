"""CLI commands with real processes on loopback: `privastead-hub reset`, `privastead-app
status` and `privastead-app listen --exec` (relay, camsim, hub and app as processes)."""

from __future__ import annotations

import asyncio
import json
import shlex
import subprocess
import time
from pathlib import Path

import pytest
from e2e_harness import Home, Listener, app_cmd, env, hub_cmd, run, sync_until

from privastead.client.eventlog import EventLog
from privastead.client.sync import Syncer
from privastead.clock import SystemClock
from privastead.errors import RelayRejectedError
from privastead.relay.client import RelayClient

pytestmark = pytest.mark.slow


def _reset(home: Home, *args: str, answer: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        hub_cmd("reset", "--config", str(home.config), *args),
        env=env(),
        input=answer,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _gone(url: str, token: str, mailbox: str) -> int:
    async with RelayClient(url, token) as relay:
        try:
            await relay.mailbox_info(mailbox)
        except RelayRejectedError as e:
            return e.status
        return 200


async def _whoami(url: str, token: str) -> int:
    async with RelayClient(url, token) as relay:
        try:
            await relay.me()
        except RelayRejectedError as e:
            return e.status
        return 200


def test_hub_reset_asks_wipes_and_pairing_works_again(home: Home) -> None:
    old = home.root / "old-phone"
    home.pair(old, "old-phone")
    mailboxes = [g["mailbox"] for g in json.loads((old / "device.json").read_bytes())["groups"]]
    old_token = (old / "relay-token").read_text().strip()
    state = sorted(p.name for p in home.data.iterdir())
    assert asyncio.run(_whoami(home.relay.url, old_token)) == 200

    refused = _reset(home, answer="no\n")
    assert refused.returncode == 1 and "nothing changed" in refused.stderr
    assert "Type 'reset'" in refused.stdout
    assert sorted(p.name for p in home.data.iterdir()) == state
    assert asyncio.run(_gone(home.relay.url, home.relay.owner_token, mailboxes[0])) == 200

    done = _reset(home, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pair your clients again" in done.stdout
    for name in ("mls", "outbox", "groups.json", "devices.json"):
        assert not (home.data / name).exists(), name
    for mailbox in mailboxes:  # the hub's mailboxes are gone from the relay ...
        assert asyncio.run(_gone(home.relay.url, home.relay.owner_token, mailbox)) == 404
    # ... and so is the old device's relay access.
    assert asyncio.run(_whoami(home.relay.url, old_token)) == 401

    new = home.root / "new-phone"
    hub_code, phone_code = home.pair(new, "new-phone")
    assert hub_code == phone_code
    listed = run(hub_cmd("devices", "list", "--config", str(home.config)))
    assert "new-phone" in listed.stdout and "old-phone" not in listed.stdout
    received: list[str] = []

    def notified(syncers: list[Syncer]) -> bool:
        received[:] = [r.event_id for r in syncers[0].events.events()]
        return bool(received)

    home.start_hub()
    try:
        asyncio.run(sync_until([new], notified, limit=90))
    finally:
        home.stop_hub()
    assert received, home.hub_log.read_text()[-3000:]

    # Typing the confirmation word works as --yes does.
    typed = _reset(home, answer="reset\n")
    assert typed.returncode == 0, typed.stdout + typed.stderr
    assert not (home.data / "groups.json").exists()


def _status(client: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(app_cmd("status", "--data-dir", str(client), *args), timeout=60)


def test_app_status_shows_health_safety_code_and_a_silent_hub(home: Home) -> None:
    phone = home.root / "phone"
    _, safety = home.pair(phone, "phone")
    home.start_hub()  # heartbeats every 2 s (loopback_config)
    try:
        deadline = time.monotonic() + 60
        out = _status(phone)
        while "last heartbeat" not in out.stdout and time.monotonic() < deadline:
            time.sleep(1)
            out = _status(phone)
        assert out.returncode == 0, out.stdout + out.stderr + home.hub_log.read_text()[-2000:]
        assert ": ok: last heartbeat" in out.stdout
        assert f"safety code (pairing): {safety}" in out.stdout
    finally:
        home.stop_hub()

    time.sleep(4)  # the hub is silent for longer than --offline-after
    silent = _status(phone, "--offline-after", "3")
    assert silent.returncode == 4, silent.stdout + silent.stderr
    assert ": hub_offline: the newest heartbeat is from" in silent.stdout
    assert f"safety code (pairing): {safety}" in silent.stdout

    home.relay.kill9()  # and a relay that does not answer is told apart from a silent hub
    unreachable = _status(phone, "--offline-after", "3")
    assert unreachable.returncode == 6, unreachable.stdout + unreachable.stderr
    assert "unreachable" in unreachable.stdout and "hub_offline" not in unreachable.stdout


def _events(lines: list[str]) -> list[str]:
    """Event ids from `listen`'s `event CAMERA DATE TIME score=S id=ID [thumbnail]` lines."""
    ids = []
    for line in lines:
        if line.startswith("event "):
            (ident,) = (w for w in line.split() if w.startswith("id="))
            ids.append(ident.removeprefix("id="))
    return ids


def test_listen_exec_runs_once_per_event_and_survives_a_failing_command(home: Home) -> None:
    phone = home.root / "phone"
    home.pair(phone, "phone")
    ran, health = home.root / "ran.txt", home.root / "health.txt"
    fields = "$PRIVASTEAD_CAMERA $PRIVASTEAD_EVENT_ID $PRIVASTEAD_SCORE $PRIVASTEAD_AT"
    command = (
        f'if [ "$PRIVASTEAD_KIND" = health ]; then echo "$PRIVASTEAD_HUB $PRIVASTEAD_STATE" '
        f">> {shlex.quote(str(health))}; exit 0; fi; "
        f'echo "{fields} thumb=$PRIVASTEAD_THUMBNAIL" >> {shlex.quote(str(ran))}; exit 3'
    )
    home.start_hub()
    try:
        listener = Listener(phone, "--exec", command)
        try:
            got_two = listener.wait_for(lambda out: len(set(_events(out))) >= 2, limit=120)
            assert got_two, listener.output() + home.hub_log.read_text()[-2000:]
            time.sleep(1)  # the command runs in the background
            assert listener.proc.poll() is None  # still listening after failed commands
        finally:
            assert listener.stop() == 0, listener.output()
    finally:
        home.stop_hub()

    events = _events(listener.stdout)
    runs = [line.split() for line in ran.read_text().splitlines()]
    # Once per event although the hub notifies twice (then with the thumbnail).
    assert sorted(r[1] for r in runs) == sorted(set(events)), (runs, listener.output())
    with EventLog(phone / "events.db", clock=SystemClock()) as log:
        for camera, event_id, score, at, _thumb in runs:
            record = log.get(event_id)
            assert record is not None and camera == "door" == record.camera
            assert float(score) == pytest.approx(record.score, abs=1e-5)
            assert float(at) == pytest.approx(record.at, abs=1e-3)
    failures = [line for line in listener.stderr if line.startswith("exec failed")]
    assert sorted(failures) == sorted(
        f"exec failed for event {r[1]}: exit status 3" for r in runs
    ), listener.output()
    # The health state ran the command too (first "ok"), with the hub's name; and listen
    # printed the same as a line.
    assert health.read_text().splitlines()[0] == "door ok", health.read_text()
    assert any(line.startswith("health ok: ") for line in listener.stdout), listener.output()
