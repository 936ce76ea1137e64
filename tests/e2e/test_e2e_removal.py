"""Removal that removes: a departing device cannot keep a leaf, and `devices remove` proves
its result or says loudly what still holds the device.

Real processes on loopback (relay, camsim, `privastead-hub run|pair|devices`); the departing
device ("thief") talks to the hub through the real relay with its own, authenticated control
leaf, as an attacker who holds a paired laptop would. Its crafted requests are ordinary
`ReAddRequest`s whose KeyPackages claim another member's credential (the hub's, phone-a's).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from e2e_harness import Home, Listener, app_cmd, hub_cmd, run, sync_until

from privastead.client.app import Client, ClientOptions
from privastead.client.device import DataDir
from privastead.client.eventlog import ClipState, EventLog
from privastead.clock import SystemClock
from privastead.crypto import Identity
from privastead.errors import CryptoError
from privastead.hub.delivery.outbox import Outbox
from privastead.hub.state.groups import HubGroups
from privastead.protocol.pairing_messages import ReAddRequest
from privastead.relay.client import RelayClient

pytestmark = pytest.mark.slow


def _clips(data: Path) -> int:
    with EventLog(data / "events.db", clock=SystemClock()) as log:
        return sum(1 for r in log.events() if r.clip_state is ClipState.COMPLETE)


def _wait_log(home: Home, text: str, count: int, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if home.hub_log.read_text().count(text) >= count:
            return
        time.sleep(0.3)
    raise AssertionError(f"hub log has no {count}x {text!r}:\n" + home.hub_log.read_text()[-3000:])


def _identity_name(client: Path, group: str) -> bytes:
    (path,) = (client / "mls").glob(f"*-{group}.mls")
    with Identity.open(path) as ident:
        return ident.name


async def _opened_after_removal(client: Path, group: str, home: Home, token: str) -> int:
    """How many application messages sent after ``client``'s removal its keys open, read with
    an observer's token (as a relay or a thief could). The thief is smart: it does not apply
    the commit that removes it (it keeps the state from just before) and tries its keys on
    everything that follows."""
    data = DataDir(client)
    entry = next(g for g in data.load().groups if g.group == group)
    cursor = int(data.sync_state(entry).get("cursor", 0))
    state = data.mls / entry.state
    before = state.with_name(state.name + ".before")
    opened, removed = 0, False
    async with RelayClient(home.relay.url, token) as relay:
        page = await relay.list_messages(entry.mailbox, after=cursor, limit=1000)
        assert page.messages, "the hub sent nothing after the removal"
        for info in page.messages:
            body = await relay.body_of(entry.mailbox, info)
            shutil.copy2(state, before)
            with Identity.open(state) as identity:
                try:
                    got = identity.process(entry.group_id, body)
                except CryptoError:
                    continue
            if got.commit is not None and got.commit.removed_self:
                removed = True
                shutil.copy2(before, state)  # keep the keys it had, skip its removal
                continue
            opened += removed and got.kind == "application"
    assert removed, f"{group}: no commit removed the device"
    return opened


async def test_a_device_that_readds_itself_as_another_member_is_still_removed(home: Home) -> None:
    a, thief = home.root / "phone-a", home.root / "thief"
    home.pair(a, "phone-a")
    home.pair(thief, "thief")
    camera = DataDir(thief).load().groups[0].camera
    a_live = _identity_name(a, "live")
    home.start_hub()
    try:
        # The thief expects to be removed: it re-adds its leaves with KeyPackages that claim
        # the hub's credential (events) and phone-a's (live), hoping that the hub's registry
        # keeps naming its old leaves. Then an honest-looking re-add of live.
        syncer = Client(
            DataDir(thief), clock=SystemClock(), options=ClientOptions(auto_resync=False)
        )
        try:
            fakes = {
                "events": Identity.create(thief / "fake-events.mls", b"hub"),
                "live": Identity.create(thief / "fake-live.mls", a_live),
            }
            kps = {name: ident.key_package() for name, ident in fakes.items()}
            for ident in fakes.values():
                ident.close()
            request = ReAddRequest(syncer.info.device_id, camera, kps, "leaving soon")
            await syncer.send_control(camera, request)
            _wait_log(home, "re-add refused", 2)
            await syncer.request_readd(camera, ["live"], "looks honest")
            deadline = time.monotonic() + 60
            while f"{camera}/live" not in syncer.readded and time.monotonic() < deadline:
                await syncer.sync_once()
        finally:
            await syncer.close()
        assert f"{camera}/live" in syncer.readded, home.hub_log.read_text()[-3000:]

        listed = run(hub_cmd("devices", "list", "--config", str(home.config)))
        assert listed.returncode == 0, listed.stderr
        assert "unknown member" not in listed.stdout, listed.stdout
        assert "thief" in listed.stdout and "phone-a" in listed.stdout
        # The device names reached the hub inside MLS only: the relay stores random ids.
        async with RelayClient(home.relay.url, home.relay.owner_token) as owner:
            assert all(not d.get("name") for d in await owner.list_devices())
        for path in home.relay.data_dir.rglob("*"):
            if path.is_file():
                assert b"phone-a" not in path.read_bytes(), path

        # Removed through the running hub's admin socket; it proves the result itself.
        removed = run(hub_cmd("devices", "remove", "thief", "--config", str(home.config)))
        assert removed.returncode == 0, removed.stdout + removed.stderr
        assert f"{camera}/live" in removed.stdout and f"{camera}/control" in removed.stdout
        listed = run(hub_cmd("devices", "list", "--config", str(home.config)))
        assert "thief" not in listed.stdout and "unknown member" not in listed.stdout

        # An observer keeps what the others acknowledge, to try the thief's keys on it.
        entries = {g.group: g for g in DataDir(thief).load().groups}
        async with RelayClient(home.relay.url, home.relay.owner_token) as owner:
            observer = await owner.create_device()
        async with RelayClient(home.relay.url, observer.token) as watcher:
            for entry in entries.values():
                await watcher.register(entry.mailbox)
        before = _clips(a)
        await sync_until([a], lambda s: _clips(a) > before, limit=120)
        assert _clips(a) > before, home.hub_log.read_text()[-3000:]
    finally:
        home.stop_hub()
    # Nothing the hub sent after the removal opens with the thief's keys (control: heartbeats
    # and grants; live: only commits, which it cannot follow either).
    for group in ("control", "live"):
        assert await _opened_after_removal(thief, group, home, observer.token) == 0, group


def _set_camera_name(home: Home, old: str, new: str) -> None:
    home.config.write_text(home.config.read_text().replace(f'name = "{old}"', f'name = "{new}"'))


async def test_an_unprovable_removal_fails_loudly_and_stays_listed(home: Home) -> None:
    phone = home.root / "phone"
    home.pair(phone, "phone")
    camera = DataDir(phone).load().groups[0].camera
    # The device's groups are not open: its camera left hub.toml (the hub is stopped, so the
    # command opens the state itself). The removal cannot reach them and must say so.
    _set_camera_name(home, camera, "porch")
    failed = run(hub_cmd("devices", "remove", "phone", "--config", str(home.config)))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "NOT fully removed" in failed.stderr and "Traceback" not in failed.stderr
    for group in ("control", "events", "live"):
        assert f"{camera}/{group}" in failed.stderr
    listed = run(hub_cmd("devices", "list", "--config", str(home.config)))
    assert "REMOVAL INCOMPLETE" in listed.stdout and f"{camera}/events" in listed.stdout
    # Put the camera back: the removal goes through now, and proves it.
    _set_camera_name(home, "porch", camera)
    done = run(hub_cmd("devices", "remove", "phone", "--config", str(home.config)))
    assert done.returncode == 0, done.stdout + done.stderr
    listed = run(hub_cmd("devices", "list", "--config", str(home.config)))
    assert "phone" not in listed.stdout and "unknown member" not in listed.stdout


async def test_unknown_members_are_listed_and_removed_through_the_running_hub(
    home: Home,
) -> None:
    phone = home.root / "phone"
    home.pair(phone, "phone")
    camera = DataDir(phone).load().groups[0].camera
    # A leaf nobody registered (as an older hub, or a crash mid-pairing, could leave).
    outbox = Outbox(home.data / "outbox", quota_bytes=1 << 30)
    groups = HubGroups(home.data, outbox, [camera])
    stray = Identity.create(home.root / "stray.mls", b"stray")
    try:
        groups.get(camera, "events").add(stray.key_package())
    finally:
        groups.close()
        stray.close()
    home.start_hub()
    try:
        listed = run(hub_cmd("devices", "list", "--config", str(home.config)))
        assert f"unknown member in {camera}/events" in listed.stdout, listed.stdout
        removed = run(hub_cmd("devices", "remove", "--unknown", "--config", str(home.config)))
        assert removed.returncode == 0, removed.stdout + removed.stderr
        assert f"removed 1 unknown member(s) from {camera}/events" in removed.stdout
        listed = run(hub_cmd("devices", "list", "--config", str(home.config)))
        assert "unknown member" not in listed.stdout and "phone" in listed.stdout
        # The paired device still receives.
        await sync_until([phone], lambda s: _clips(phone) >= 1, limit=120)
        assert _clips(phone) >= 1, home.hub_log.read_text()[-3000:]
    finally:
        home.stop_hub()


def test_a_removed_device_is_told_why_its_listen_stops_and_its_socket_closes(home: Home) -> None:
    """`devices remove` while the device's `listen` runs: the relay closes the device's socket
    at once (listen polls only every 60 s here, so only the closed socket can wake it), listen
    says the device was removed and exits with status 3 instead of retrying; `status` and
    `sync` say the same."""
    phone = home.root / "phone"
    home.pair(phone, "phone")
    home.start_hub()
    try:
        listener = Listener(phone, "--poll", "60")
        try:
            started = listener.wait_for(lambda out: any(s.startswith("health ok") for s in out))
            assert started, listener.output()
            time.sleep(3)  # subscribed
            removed = run(hub_cmd("devices", "remove", "phone", "--config", str(home.config)))
            assert removed.returncode == 0, removed.stdout + removed.stderr
            gone_at = time.monotonic()
            assert listener.proc.wait(timeout=40) == 3, listener.output()
            assert time.monotonic() - gone_at < 30, listener.output()
        finally:
            listener.stop()
        assert any(
            s.startswith("health removed: this device was removed from") for s in listener.stdout
        ), listener.output()
        assert any("it stops here" in s for s in listener.stderr), listener.output()
        status = run(app_cmd("status", "--data-dir", str(phone)))
        assert status.returncode == 3, status.stdout + status.stderr
        assert ": removed: this device was removed from" in status.stdout
        synced = run(app_cmd("sync", "--data-dir", str(phone)))
        assert synced.returncode == 3 and "removed" in synced.stderr, synced.stderr
    finally:
        home.stop_hub()
