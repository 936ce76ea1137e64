"""Pairing, removal and `pair --replace` while `privastead-hub run` runs (its admin socket).

Real processes on loopback: relay, camsim, `privastead-hub run|pair|devices|reset` and
`privastead-app pair|resync`; the clients' receive loop runs in this process.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from e2e_harness import Home, app_cmd, close_stdin, env, hub_cmd, run, sync_until
from test_e2e import _readable_by

from privastead.client.device import DataDir
from privastead.client.eventlog import ClipState, EventLog
from privastead.clock import SystemClock
from privastead.crypto import Identity
from privastead.hub.admin.client import running_hub_pid
from privastead.hub.admin.wire import socket_path
from privastead.relay.client import RelayClient

pytestmark = pytest.mark.slow


def _complete(syncer) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for r in syncer.events.events() if r.clip_state is ClipState.COMPLETE)


def _stored(data: Path) -> int:
    with EventLog(data / "events.db", clock=SystemClock()) as log:
        return sum(1 for r in log.events() if r.clip_state is ClipState.COMPLETE)


async def _wait_admin(home: Home, limit: float = 90.0) -> int:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        pid = await running_hub_pid(home.data)
        if pid is not None:
            return pid
        assert home.hub is not None and home.hub.poll() is None, home.hub_log.read_text()[-3000:]
        await asyncio.sleep(0.3)
    raise AssertionError("the hub's admin socket never answered")


def _control_epoch(client: Path) -> int:
    entry = next(g for g in DataDir(client).load().groups if g.group == "control")
    with Identity.open(client / "mls" / entry.state) as identity:
        return identity.epoch(entry.group_id)


def _hub_list(home: Home) -> str:
    listed = run(hub_cmd("devices", "list", "--config", str(home.config)))
    assert listed.returncode == 0, listed.stderr
    return listed.stdout


async def test_pair_and_remove_while_the_hub_runs(home: Home) -> None:
    a, b = home.root / "phone-a", home.root / "phone-b"
    home.pair(a, "phone-a")  # hub stopped: done directly, as before
    home.start_hub()
    try:
        pid = await _wait_admin(home)
        reset = run(hub_cmd("reset", "--yes", "--config", str(home.config)))
        assert reset.returncode == 1 and f"kill -TERM {pid}" in reset.stderr, reset.stderr
        assert "Traceback" not in reset.stderr

        hub_code, client_code = home.pair(b, "phone-b")  # through the running hub
        assert hub_code == client_code
        assert "phone-a" in _hub_list(home) and "phone-b" in _hub_list(home)
        await sync_until([a, b], lambda s: all(_complete(x) >= 1 for x in s), limit=120)
        assert _stored(a) >= 1 and _stored(b) >= 1, home.hub_log.read_text()[-3000:]
        with EventLog(b / "events.db", clock=SystemClock()) as log:
            assert any(e.at is not None and e.score is not None for e in log.events())

        # Remove B while running; A keeps receiving, B's keys open nothing new.
        before_a, before_b = _stored(a), _stored(b)
        removed = run(hub_cmd("devices", "remove", "phone-b", "--config", str(home.config)))
        assert removed.returncode == 0, removed.stderr + home.hub_log.read_text()[-3000:]
        assert "phone-b" not in _hub_list(home)
        b_events = next(g for g in DataDir(b).load().groups if g.group == "events")
        async with RelayClient(home.relay.url, home.relay.owner_token) as owner:
            observer = await owner.create_device("observer")
        async with RelayClient(home.relay.url, observer.token) as watcher:
            await watcher.register(b_events.mailbox)
        await sync_until([a], lambda s: _complete(s[0]) > before_a, limit=120)
        assert _stored(a) > before_a, home.hub_log.read_text()[-3000:]
        await sync_until([b], lambda s: True, limit=5)
        assert _stored(b) == before_b
        assert await _readable_by(b, home, observer.token) == 0

        # kill -9: the socket file stays behind, but neither fools the CLI nor blocks a start.
        home.kill_hub()
        assert socket_path(home.data).exists()
        assert await running_hub_pid(home.data) is None
        assert "phone-a" in _hub_list(home)
        home.start_hub()
        assert await _wait_admin(home) == home.hub.pid  # type: ignore[union-attr]
    finally:
        home.stop_hub()
    assert not socket_path(home.data).exists()


def _replace(home: Home, device: str, client: Path) -> tuple[str, str]:
    proc, code, _png = home.start_pairing("--replace", device)
    app = subprocess.Popen(
        app_cmd("resync", "--code-file", "-", "--data-dir", str(client)),
        env=env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert app.stdin is not None
    app.stdin.write(code + "\n")
    close_stdin(app)
    shown = home.confirm(proc)  # a re-add is confirmed on the hub like a new device
    hub_out, hub_err = proc.communicate(timeout=60)
    out, err = app.communicate(timeout=60)
    assert app.returncode == 0, out + err + hub_err
    assert proc.returncode == 0, hub_err
    hub_safety = next(x for x in (shown + hub_out).splitlines() if x.startswith("safety code:"))
    app_safety = next(x for x in out.splitlines() if x.startswith("safety code:"))
    return hub_safety, app_safety


async def test_replace_a_device_whose_control_group_is_desynced(home: Home) -> None:
    a, b = home.root / "phone-a", home.root / "phone-b"
    home.pair(b, "phone-b")
    (control,) = (b / "mls").glob("*-control.mls")
    (events,) = (b / "mls").glob("*-events.mls")
    stale = home.root / "stale-control.mls"
    shutil.copy2(control, stale)  # before A joined: the hub commits to control after this
    home.pair(a, "phone-a")
    a_device = (a / "device.json").read_bytes()
    b_id = DataDir(b).load().device_id

    home.start_hub()
    try:
        await _wait_admin(home)
        await sync_until([a, b], lambda s: all(_complete(x) >= 1 for x in s), limit=120)
        assert _stored(a) >= 1 and _stored(b) >= 1, home.hub_log.read_text()[-3000:]

        # B's control group goes back before A's add (it can no longer authenticate a
        # re-add request there) and its events state is garbage.
        shutil.copy2(stale, control)
        events.write_bytes(b"\0" * 64)
        assert _control_epoch(b) < _control_epoch(a)  # really behind: a ReAddRequest can't help
        before_a, before_b = _stored(a), _stored(b)
        hub_safety, app_safety = _replace(home, "phone-b", b)  # through the running hub
        assert hub_safety == app_safety
        assert DataDir(b).load().device_id == b_id
        await sync_until(
            [a, b], lambda s: _complete(s[0]) > before_a and _complete(s[1]) > before_b, limit=120
        )
        assert _stored(b) > before_b, home.hub_log.read_text()[-3000:]
        assert _stored(a) > before_a
    finally:
        home.stop_hub()

    # The same with the hub stopped: B's control state is garbage this time.
    control.write_bytes(b"\0" * 64)
    hub_safety, app_safety = _replace(home, b_id, b)
    assert hub_safety == app_safety
    before_a, before_b = _stored(a), _stored(b)
    home.start_hub()
    try:
        await sync_until(
            [a, b], lambda s: _complete(s[0]) > before_a and _complete(s[1]) > before_b, limit=120
        )
        assert _stored(b) > before_b and _stored(a) > before_a, home.hub_log.read_text()[-3000:]
    finally:
        home.stop_hub()

    # A was never touched; B is still one device with its id.
    assert (a / "device.json").read_bytes() == a_device
    devices = json.loads((home.data / "devices.json").read_bytes())["devices"]
    assert len(devices) == 2 and b_id in devices
    listed = _hub_list(home)
    assert listed.count("phone-a") == 1 and listed.count("phone-b") == 1
