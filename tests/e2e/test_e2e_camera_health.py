"""Camera health end to end, with real processes: a camsim camera that hangs (keeps its RTSP
connection open but sends no frame: SIGUSR1) and one that is killed, a hub, a relay and
`privastead-app listen --exec` / `status` / `ui`'s data. The hub judges a camera by its frames
and sends a heartbeat at once when one goes away, inside the MLS ciphertext; the client shows
"camera NAME offline since TIME" as a line, runs --exec with the state, and `status` exits 9
(also while `listen` holds the data directory: it answers over its local socket). A relay
that drops the heartbeats to hide the news makes the hub look offline, never fine."""

from __future__ import annotations

import shlex
import signal
import time
from pathlib import Path

import pytest
from e2e_harness import Home, Listener, app_cmd, run
from test_e2e_withheld import _finish, _health, _mailboxes, _start, _until

from privastead.client.local_call import socket_path

pytestmark = pytest.mark.slow


def _status(client: Path) -> tuple[int, str]:
    out = run(app_cmd("status", "--data-dir", str(client)), timeout=60)
    return out.returncode, out.stdout + out.stderr


def _cameras(client: Path) -> str:
    out = run(app_cmd("cameras", "--data-dir", str(client)), timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _until_status(client: Path, text: str, limit: float = 120) -> tuple[int, str]:
    deadline = time.monotonic() + limit
    code, out = _status(client)
    while text not in out and time.monotonic() < deadline:
        time.sleep(1)
        code, out = _status(client)
    return code, out


def _wait_path(path: Path, limit: float = 60) -> bool:
    deadline = time.monotonic() + limit
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return path.exists()


def _lines(out: list[str], prefix: str) -> list[str]:
    return [line for line in out if line.startswith(prefix)]


def test_a_hung_then_a_killed_camera_is_reported_offline(home: Home) -> None:
    phone = home.root / "phone"
    home.pair(phone, "phone")
    ran = home.root / "camera-exec.txt"
    command = (
        'if [ "$PRIVASTEAD_KIND" = camera ]; then echo "$PRIVASTEAD_CAMERA $PRIVASTEAD_STATE '
        f'$PRIVASTEAD_SINCE|$PRIVASTEAD_DETAIL" >> {shlex.quote(str(ran))}; fi'
    )
    assert home.camera is not None
    home.start_hub()
    listener = Listener(phone, "--exec", command)
    try:
        assert _wait_path(socket_path(phone)), listener.output()
        # The camera streams: the hub's heartbeats say so, the client is ok (`status` asks
        # the running listener).
        code, text = _until_status(phone, "camera door: connected")
        assert code == 0 and "camera door: connected" in text, (
            text + listener.output() + home.hub_log.read_text()[-2000:]
        )

        # 1. A camera that hangs with its connection open.
        home.camera.signal(signal.SIGUSR1)
        offline = listener.wait_for(lambda out: any("camera door offline since" in x for x in out))
        assert offline, listener.output() + home.hub_log.read_text()[-3000:]
        code, text = _status(phone)
        assert code == 9, text
        assert "camera_offline: camera door offline since" in text, text
        home.camera.signal(signal.SIGUSR1)  # it comes back
        back = listener.wait_for(lambda out: "camera door back online" in out)
        assert back, listener.output() + home.hub_log.read_text()[-3000:]
        code, text = _status(phone)
        assert code == 0, text

        # 2. A camera that dies.
        home.camera.stop()
        again = listener.wait_for(lambda out: len(_lines(out, "camera door offline")) >= 2)
        assert again, listener.output() + home.hub_log.read_text()[-3000:]
        code, text = _status(phone)
        assert code == 9 and "camera door offline since" in text, text
        assert "door  (groups:" in _cameras(phone) and "OFFLINE since" in _cameras(phone)
        time.sleep(1)  # --exec runs in the background
    finally:
        assert listener.stop() == 0, listener.output()
        home.stop_hub()

    # Without a running listener, status still says so (the last heartbeat's word is kept).
    assert "OFFLINE since" in _cameras(phone)  # what this directory last heard, no lock
    code, text = _status(phone)
    assert code == 9 and "camera door offline since" in text, text
    runs = [line.split("|", 1) for line in ran.read_text().splitlines()]
    states = [head.split()[:2] for head, _ in runs]
    assert states == [["door", "offline"], ["door", "online"], ["door", "offline"]], runs
    offline_run = runs[0][0].split()
    since = float(offline_run[2])
    assert abs(since - time.time()) < 3600, runs  # a Unix time on this device's clock
    assert runs[0][1].startswith("camera door offline since "), runs
    # The health state changed with it.
    assert any(x.startswith("health camera_offline: camera door") for x in listener.stdout)


async def test_a_relay_hiding_the_news_of_a_dead_camera_shows_the_hub_offline(
    home: Home,
) -> None:
    """Every heartbeat carries the camera's presence (inside the ciphertext), so a relay can
    hide a camera going away only by hiding every heartbeat: the hub then looks offline, never
    fine. Between hub and relay: the fault-injecting proxy, dropping the control group's
    application messages."""
    proxy, listener = await _start(home)
    assert home.camera is not None
    try:
        proxy.drop_app.add(_mailboxes(home)["control"])
        home.camera.signal(signal.SIGUSR1)  # the camera hangs
        offline = await _until(listener, lambda out: "hub_offline" in _health(out), 90)
        assert offline, listener.output() + home.hub_log.read_text()[-3000:]
        assert not any(x.startswith("camera door") for x in listener.stdout), listener.output()
        proxy.drop_app.clear()  # the relay delivers again: the hub's word arrives
        told = await _until(
            listener, lambda out: any("camera door offline since" in x for x in out), 90
        )
        assert told, listener.output() + home.hub_log.read_text()[-3000:]
        back = await _until(listener, lambda out: _health(out)[-1:] == ["camera_offline"], 60)
        assert back, listener.output()
    finally:
        await _finish(home, proxy, listener)
