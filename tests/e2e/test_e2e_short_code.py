"""Pairing with the short code, confirmed by the owner before the hub shares anything.

Real processes on loopback: `privastead-server serve`, camsim, `privastead-hub pair|run|devices`
and `privastead-app pair` (the code typed on its standard input, never in argv); the faulty
relay is a real proxy in front of the real relay. Each refusal is checked where it matters:
the refused device holds no token and no state, the relay issued it no device token, and the
hub's groups gained no member.
"""

from __future__ import annotations

import asyncio
import json
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest
from e2e_harness import Home, close_stdin, free_port, hub_cmd, run, sync_until
from test_e2e_admin import _wait_admin

from privastead.client.eventlog import ClipState, EventLog
from privastead.clock import SystemClock
from privastead.protocol.short_code import MAX_CODE_LENGTH, parse
from privastead.relay.client import RelayClient
from support.faulty_relay import FaultyRelay

pytestmark = pytest.mark.slow


def _line(text: str, prefix: str) -> str:
    for line in text.splitlines():
        if line.startswith(prefix):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {prefix!r} in {text!r}")


def _pending_id(shown: str) -> str:
    found = re.search(r"^pending id: ([0-9a-f]{32})$", shown, re.MULTILINE)
    assert found, shown
    return found.group(1)


async def _relay_devices(home: Home) -> int:
    async with RelayClient(home.relay.url, home.relay.owner_token) as owner:
        return len(await owner.list_devices())


def _nothing_paired(home: Home, client: Path) -> None:
    """The refused device got nothing, and the hub added nobody."""
    assert not (client / "device.json").exists() and not (client / "relay-token").exists()
    listed = run(hub_cmd("devices", "list", "--config", str(home.config)))
    assert listed.returncode == 0, listed.stderr
    assert "no paired devices" in listed.stdout and "PENDING" not in listed.stdout, listed.stdout
    assert "unknown member" not in listed.stdout, listed.stdout


def _clips(client: Path) -> int:
    """Clips the device decrypted and stored whole."""
    with EventLog(client / "events.db", clock=SystemClock()) as log:
        return sum(1 for r in log.events() if r.clip_state is ClipState.COMPLETE)


def _finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    out, err = proc.communicate(timeout=90)
    return out, err


async def test_short_code_pairing_confirmed_then_an_event_decrypts(home: Home) -> None:
    phone = home.root / "phone"
    hub, long_code, _png = home.start_pairing()
    short = home.last_short
    assert len(short) <= MAX_CODE_LENGTH and parse(short).nameplate >= 1
    app = home.start_app_pair(phone, "phone", "--relay", home.relay.url, code=short)
    shown = home.confirm(hub)
    _hub_out, hub_err = _finish(hub)
    out, err = _finish(app)
    assert hub.returncode == 0 and app.returncode == 0, hub_err + err
    # The owner compared the same two things the device showed before approving.
    assert _line(shown, "safety code:") == _line(out, "safety code:")
    assert _line(shown, "device key fingerprint:") == _line(out, "device key fingerprint:")
    assert "'phone' wants to join door" in shown and "approved: paired with door" in out
    assert "warning" not in err  # typed, not given in argv
    assert await _relay_devices(home) == 1

    home.start_hub()
    try:

        def done(syncers) -> bool:  # type: ignore[no-untyped-def]
            return any(r.clip_state is ClipState.COMPLETE for r in syncers[0].events.events())

        await sync_until([phone], done, limit=150)
    finally:
        home.stop_hub()
    assert _clips(phone), home.hub_log.read_text()[-3000:]
    assert long_code.startswith("privastead:")


async def test_a_wrong_guess_burns_the_code_on_both_sides(home: Home) -> None:
    phone = home.root / "phone"
    hub, _code, png = home.start_pairing()
    right = parse(home.last_short)
    other = next(w for w in ("zoom", "acid") if w != right.words[1])
    wrong = f"{right.nameplate}-{right.words[0]}-{other}"
    app = home.start_app_pair(phone, "phone", "--relay", home.relay.url, code=wrong)
    _out, err = _finish(app)
    _hub_out, hub_err = _finish(hub)
    assert app.returncode == 1 and "burned" in err and "Traceback" not in err, err
    assert hub.returncode == 1 and "SECURITY ALERT" in hub_err and "burned" in hub_err, hub_err
    assert not png.exists()  # the QR of a pairing that ended is gone too
    # The right code no longer works either: the nameplate was used.
    again = home.start_app_pair(home.root / "p2", "p2", "--relay", home.relay.url, code=str(right))
    _out2, err2 = _finish(again)
    assert again.returncode == 1 and "no pairing waits under number" in err2, err2
    _nothing_paired(home, phone)
    assert await _relay_devices(home) == 0


@pytest.mark.parametrize("side", ["hub", "device"])
async def test_a_relay_that_runs_the_exchange_itself_is_caught_on_both_sides(
    home: Home, side: str
) -> None:
    proxy = FaultyRelay(home.relay.url, substitute_pake=side)
    url = await proxy.start(free_port())
    home.config.write_text(home.config.read_text().replace(home.relay.url, url))
    phone = home.root / "phone"
    try:  # the proxy runs on this loop: the blocking harness calls run in threads
        hub, _code, _png = await asyncio.to_thread(home.start_pairing)
        app = home.start_app_pair(phone, "phone", "--relay", url, code=home.last_short)
        _out, err = await asyncio.to_thread(_finish, app)
        _hub_out, hub_err = await asyncio.to_thread(_finish, hub)
    finally:
        await proxy.stop()
    assert [kind for kind, _ in proxy.done] == ["substitute_pake"]
    assert app.returncode == 1 and "burned" in err and "tampered" in err, err
    assert hub.returncode == 1 and "SECURITY ALERT" in hub_err and "burned" in hub_err, hub_err
    _nothing_paired(home, phone)
    assert await _relay_devices(home) == 0


async def test_a_device_never_confirmed_gets_nothing_and_expires(home: Home) -> None:
    phone = home.root / "phone"
    hub, _code, _png = home.start_pairing("--ttl", "30")
    app = home.start_app_pair(phone, "phone", "--relay", home.relay.url, code=home.last_short)
    shown = home.await_pending(hub)
    close_stdin(hub)  # nobody answers at this terminal
    pending = _pending_id(shown)
    # While it waits, the pending device is listed (from devices.json: `pair` holds the groups).
    listed = run(hub_cmd("devices", "list", "--config", str(home.config)))
    assert pending in listed.stdout and "PENDING (waiting" in listed.stdout, listed
    assert _line(shown, "device key fingerprint:") in listed.stdout
    out, err = _finish(app)
    _hub_out, hub_err = _finish(hub)
    assert app.returncode == 1 and "did not confirm this device before the code expired" in err
    assert hub.returncode == 1 and "not confirmed before the code expired" in hub_err, hub_err
    assert _line(out, "safety code:") == _line(shown, "safety code:")  # it did wait, showing it
    _nothing_paired(home, phone)
    assert await _relay_devices(home) == 0
    late = run(hub_cmd("devices", "approve", pending, "--config", str(home.config)))
    assert late.returncode == 2 and "expired" in late.stdout + late.stderr


async def test_running_hub_rejects_then_approves_through_its_admin_socket(home: Home) -> None:
    """A hub without a terminal: `devices list|reject|approve` reach the running hub."""
    home.start_hub()
    try:
        hub_pid = await _wait_admin(home)
        stranger, phone = home.root / "stranger", home.root / "phone"
        hub, code, _png = home.start_pairing()
        app = home.start_app_pair(
            stranger, "stranger", "--relay", home.relay.url, code=home.last_short
        )
        shown = home.await_pending(hub)
        close_stdin(hub)
        pending = _pending_id(shown)
        # A second device that answers the same (long) code: the owner is alerted.
        second = home.start_app_pair(home.root / "second", "second", code=code)
        # `devices list` shows the pending device, then also the alert once the hub saw it.
        deadline = time.monotonic() + 90
        while True:
            listed = run(hub_cmd("devices", "list", "--config", str(home.config)))
            assert "'stranger'" in listed.stdout and "PENDING" in listed.stdout, listed
            if "a second device answered" in listed.stdout or time.monotonic() > deadline:
                break
        assert "a second device answered" in listed.stdout, listed
        rejected = run(hub_cmd("devices", "reject", "stranger", "--config", str(home.config)))
        assert rejected.returncode == 0, rejected.stderr
        _out, err = _finish(app)
        hub_out, hub_err = _finish(hub)
        second.kill()
        second.communicate()
        assert app.returncode == 1 and "rejected this device" in err, err
        assert hub.returncode == 1 and "you rejected device 'stranger'" in hub_err, hub_err
        assert "a second device answered this pairing code" in hub_err, hub_err
        assert pending not in run(hub_cmd("devices", "list", "--config", str(home.config))).stdout
        _nothing_paired(home, stranger)
        assert await _relay_devices(home) == 0

        # The owner's own phone, approved from another shell, works as today.
        hub, _code, _png = home.start_pairing()
        app = home.start_app_pair(phone, "phone", "--relay", home.relay.url, code=home.last_short)
        shown = home.await_pending(hub)
        approved = run(
            hub_cmd("devices", "approve", _pending_id(shown), "--config", str(home.config))
        )
        assert approved.returncode == 0 and "approved 'phone'" in approved.stdout, approved
        close_stdin(hub)
        _out, err = _finish(app)
        hub_out, hub_err = _finish(hub)
        assert app.returncode == 0 and hub.returncode == 0, err + hub_err
        assert "paired device 'phone'" in hub_out

        def done(syncers) -> bool:  # type: ignore[no-untyped-def]
            return any(r.clip_state is ClipState.COMPLETE for r in syncers[0].events.events())

        await sync_until([phone], done, limit=150)
        assert _clips(phone), home.hub_log.read_text()[-3000:]
        assert home.hub is not None and home.hub.pid == hub_pid  # one hub did all of it
    finally:
        home.stop_hub()


async def test_a_pending_device_survives_a_hub_restart(home: Home) -> None:
    """The hub restarts while the owner has not decided yet: the device stays pending (its
    record and pairing group are in the data directory), the restarted hub resumes waiting,
    and an approval then pairs it."""
    phone = home.root / "phone"
    home.start_hub()
    try:
        await _wait_admin(home)
        hub, _code, _png = home.start_pairing()
        app = home.start_app_pair(phone, "phone", "--relay", home.relay.url, code=home.last_short)
        shown = home.await_pending(hub)
        close_stdin(hub)
        pending = _pending_id(shown)
        home.stop_hub()  # SIGTERM, as a service manager restarts it
        _hub_out, hub_err = _finish(hub)
        assert hub.returncode == 1 and "closed the admin connection" in hub_err, hub_err
        devices = json.loads((home.data / "devices.json").read_text())
        assert set(devices["pending"]) == {pending}
        assert stat.S_IMODE((home.data / "devices.json").stat().st_mode) == 0o600
        assert stat.S_IMODE((home.data / "pairing").stat().st_mode) == 0o700

        home.start_hub()
        restarted = await _wait_admin(home)
        listed = run(hub_cmd("devices", "list", "--config", str(home.config)))
        assert pending in listed.stdout and "PENDING (waiting" in listed.stdout, listed
        approved = run(hub_cmd("devices", "approve", pending, "--config", str(home.config)))
        assert approved.returncode == 0, approved.stdout + approved.stderr
        out, err = _finish(app)
        assert app.returncode == 0, err + home.hub_log.read_text()[-3000:]
        assert _line(out, "safety code:") == _line(shown, "safety code:")
        # The device has its Welcome before the hub closes the pairing group: wait for that.
        pairing_dir = home.data / "pairing"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not list(pairing_dir.iterdir()):
                break
            await asyncio.sleep(0.2)
        assert not list(pairing_dir.iterdir())  # the pairing group is gone

        def done(syncers) -> bool:  # type: ignore[no-untyped-def]
            return any(r.clip_state is ClipState.COMPLETE for r in syncers[0].events.events())

        await sync_until([phone], done, limit=150)
        assert _clips(phone), home.hub_log.read_text()[-3000:]
        assert home.hub is not None and home.hub.pid == restarted
    finally:
        home.stop_hub()
