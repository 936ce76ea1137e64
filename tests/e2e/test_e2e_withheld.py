"""A relay cannot hide events or a dead hub: the client notices, through real processes.

Real relay, camsim, `privastead-hub run` and `privastead-app listen|status` processes; between
the hub and the relay sits a fault-injecting proxy (``support.faulty_relay``) that reads only
what a relay reads (MLS framing in the clear, mailbox ids). Intervals are short: heartbeats
every 2 s (``loopback_config``), `listen --offline-after 10 --withheld-after 4`; "an hour"
becomes a few times the offline threshold. Each fault must lead to the right state within the
interval plus the grace period, and must not be mistaken for "ok":

- dropping only the ``events`` group's application messages (notifications, clips and every
  resend of them): ``withheld``, and back to ``ok`` once the relay lets them through;
- holding back only the newest ``events`` message (no later seq reveals it): ``withheld``;
- capturing the heartbeats, then replaying the old backlog slowly while the hub is down:
  ``hub_offline`` throughout;
- delaying everything the hub sends: ``hub_offline``, not ``ok`` and not a clock problem.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from e2e_harness import Home, Listener, app_cmd, free_port, run, running_home

from privastead.client.device import DataDir
from support.faulty_relay import FaultyRelay

pytestmark = pytest.mark.slow

FLAGS = ("--offline-after", "10", "--withheld-after", "4", "--skew-allowance", "5")


@pytest.fixture
def quiet_home(tmp_path: Path) -> Iterator[Home]:
    """One walk across the yard every 30 s: a long quiet spell after each event."""
    with running_home(tmp_path, duration=30) as h:
        yield h


async def _until(listener: Listener, done: Callable[[list[str]], bool], limit: float) -> bool:
    """Poll ``done(stdout lines)`` without blocking the proxy's event loop."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if done(list(listener.stdout)):
            return True
        if listener.proc.poll() is not None:
            break
        await asyncio.sleep(0.3)
    return done(list(listener.stdout))


def _health(lines: list[str]) -> list[str]:
    return [
        line.split(":", 1)[0].removeprefix("health ")
        for line in lines
        if line.startswith("health ")
    ]


def _mailboxes(home: Home) -> dict[str, str]:
    manifest = json.loads((home.data / "groups.json").read_text())
    return {key.split("/", 1)[1]: entry["mailbox"] for key, entry in manifest.items()}


async def _start(home: Home) -> tuple[FaultyRelay, Listener]:
    """Pair a phone on the real relay, then put the proxy between hub and relay; start the
    hub and `listen`, and wait until the phone has heard a heartbeat."""
    phone = home.root / "phone"
    home.pair(phone, "phone")
    proxy = FaultyRelay(home.relay.url)
    url = await proxy.start(free_port())
    home.config.write_text(home.config.read_text().replace(home.relay.url, url))
    home.start_hub()
    listener = Listener(phone, *FLAGS)

    def heard(out: list[str]) -> bool:
        saved = DataDir(phone).sync_state_raw("health")
        return _health(out)[-1:] == ["ok"] and saved.get("hub_time") is not None

    assert await _until(listener, heard, 60), listener.output() + home.hub_log.read_text()[-3000:]
    return proxy, listener


async def _status(home: Home) -> tuple[int, str]:
    out = await asyncio.to_thread(
        run, app_cmd("status", "--data-dir", str(home.root / "phone"), *FLAGS), 60
    )
    return out.returncode, out.stdout + out.stderr


async def _finish(home: Home, proxy: FaultyRelay, listener: Listener) -> None:
    await asyncio.to_thread(listener.stop)
    await asyncio.to_thread(home.stop_hub)
    await proxy.stop()


async def test_dropping_the_events_groups_messages_is_reported_as_withheld(home: Home) -> None:
    proxy, listener = await _start(home)
    try:
        proxy.drop_app.add(_mailboxes(home)["events"])
        started = time.monotonic()
        withheld = await _until(listener, lambda out: "withheld" in _health(out), 90)
        assert withheld, listener.output() + home.hub_log.read_text()[-3000:]
        line = next(s for s in listener.stdout if s.startswith("health withheld"))
        assert "the relay is withholding" in line and "of door since" in line
        # Not by luck: heartbeats kept coming (no "hub offline" on the way), and the hub was
        # asked to resend what the relay kept dropping.
        assert "hub_offline" not in _health(listener.stdout), listener.output()
        assert any(kind == "drop_app" for kind, _ in proxy.done)
        assert time.monotonic() - started < 90
        # The relay lets them through again: the resends arrive and the state is ok.
        proxy.drop_app.clear()
        back = await _until(listener, lambda out: _health(out)[-1] == "ok", 60)
        assert back, listener.output() + home.hub_log.read_text()[-3000:]
    finally:
        await _finish(home, proxy, listener)


async def test_holding_back_only_the_newest_message_is_noticed(quiet_home: Home) -> None:
    home = quiet_home
    proxy, listener = await _start(home)
    try:
        proxy.hold_newest.add(_mailboxes(home)["events"])
        # The walk ends; its last message stays held, and nothing later comes to reveal it.
        withheld = await _until(listener, lambda out: "withheld" in _health(out), 90)
        assert withheld, listener.output() + home.hub_log.read_text()[-3000:]
        assert any(kind == "drop_resend" for kind, _ in proxy.done), proxy.done
    finally:
        await asyncio.to_thread(listener.stop)
    code, text = await _status(home)
    try:
        assert code == 5 and ": withheld: the relay is withholding" in text, text
    finally:
        await asyncio.to_thread(home.stop_hub)
        await proxy.stop()


async def test_an_old_backlog_of_heartbeats_replayed_slowly_does_not_revive_the_hub(
    home: Home,
) -> None:
    proxy, listener = await _start(home)
    try:
        proxy.capture.add(_mailboxes(home)["control"])
        offline = await _until(listener, lambda out: _health(out)[-1] == "hub_offline", 40)
        assert offline, listener.output()
        await asyncio.to_thread(home.stop_hub)  # the hub dies; its last words are captured
        captured = len(proxy.backlog)
        assert captured >= 3, proxy.done
        await asyncio.sleep(12)  # the backlog is now older than --offline-after
        seen = len(listener.stdout)
        assert await proxy.replay(pause=1.0) == captured
        await asyncio.sleep(3)
        after = _health(listener.stdout[seen:])
        assert "ok" not in after, listener.output()  # never "alive" on old heartbeats
        assert _health(listener.stdout)[-1] == "hub_offline"
    finally:
        await _finish(home, proxy, listener)
    code, text = await _status(home)
    assert code == 4 and "the newest heartbeat is from" in text, text


async def test_a_relay_delaying_everything_makes_the_hub_offline_not_ok(home: Home) -> None:
    proxy, listener = await _start(home)
    try:
        proxy.delay = 25.0  # far beyond --offline-after: "an hour", scaled
        offline = await _until(listener, lambda out: _health(out)[-1] == "hub_offline", 40)
        assert offline, listener.output()
        seen = len(listener.stdout)
        await asyncio.sleep(35)  # the delayed heartbeats (and probe answers) now arrive
        assert any(kind == "delay" for kind, _ in proxy.done)
        after = _health(listener.stdout[seen:])
        assert "ok" not in after and "hub_clock" not in after, listener.output()
        assert _health(listener.stdout)[-1] == "hub_offline", listener.output()
    finally:
        await _finish(home, proxy, listener)
