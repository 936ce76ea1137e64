"""A client that can be asked while it runs: with `privastead-app listen` holding the data
directory, `status`, `devices`, `events`, `clip`, `sync` and `live` answer through its local
socket (real relay, camsim, hub and app processes); they still work once it stopped, and after
it was killed (a stale socket file left behind)."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import pytest
from e2e_harness import Home, Listener, app_cmd, run

from privastead.client.local_call import socket_path

pytestmark = pytest.mark.slow


def _app(client: Path, *args: str) -> tuple[int, str, str]:
    out = run(app_cmd(*args, "--data-dir", str(client)), timeout=90)
    return out.returncode, out.stdout, out.stderr


def _event_ids(lines: list[str]) -> list[str]:
    return [
        w.removeprefix("id=")
        for x in lines
        if x.startswith("event ")
        for w in x.split()
        if w.startswith("id=")
    ]


def _every_command_works(client: Path, event_id: str, out: Path, *, running: bool) -> None:
    code, text, err = _app(client, "status")
    assert ("answered by the running" in err) == running, err
    # The state itself is the hub's business here (a commit may be on its way: stale_epoch for
    # a moment); what counts is an answer: a state, the cameras, the safety code, no error.
    assert code != 1 and text.startswith("hub 'door' via "), text + err
    assert "camera door: connected" in text and "safety code (pairing): " in text, text
    code, text, err = _app(client, "devices")
    assert code == 0, text + err
    assert "Error" not in text and "door/events: 1 device(s), epoch" in text, text
    code, text, err = _app(client, "events")
    assert code == 0 and event_id in text.split(), text + err  # the full id, as listen printed
    code, text, err = _app(client, "clip", event_id, "--out", str(out))
    assert code == 0 or "run `privastead-app sync`" in err, text + err
    code, text, err = _app(client, "sync")
    assert code == 0 and "message(s) handled" in text, text + err
    code, text, err = _app(client, "live", "door", "--out", str(out), "--seconds", "3")
    assert code == 0, text + err
    assert out.read_bytes()[4:8] == b"ftyp", err  # a playable fMP4: init segment first


def test_commands_ask_a_running_listener_and_work_without_it(home: Home) -> None:
    phone = home.root / "phone"
    home.pair(phone, "phone")
    home.start_hub()
    try:
        listener = Listener(phone)
        try:
            got = listener.wait_for(lambda out: bool(_event_ids(out)), limit=120)
            assert got, listener.output() + home.hub_log.read_text()[-2000:]
            path = socket_path(phone)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
            event_id = _event_ids(listener.stdout)[0]
            assert len(event_id) == 32  # the one event id form: the full id
            _every_command_works(phone, event_id, home.root / "while-listening.mp4", running=True)
            assert listener.proc.poll() is None, listener.output()
        finally:
            assert listener.stop() == 0, listener.output()
        assert not socket_path(phone).exists()  # a clean stop removes it

        # Without a listener the commands open the data directory themselves.
        _every_command_works(phone, event_id, home.root / "alone.mp4", running=False)

        # A listener killed outright leaves its socket file: nobody answers, the commands
        # notice and do the work themselves; the next listener replaces the file.
        killed = Listener(phone)
        assert killed.wait_for(lambda out: any(x.startswith("health ") for x in out), 60)
        os.kill(killed.proc.pid, signal.SIGKILL)
        killed.stop()
        assert socket_path(phone).exists()
        _every_command_works(phone, event_id, home.root / "after-kill.mp4", running=False)
        again = Listener(phone)
        try:
            assert again.wait_for(lambda out: any(x.startswith("health ") for x in out), 60)
            code, text, err = _app(phone, "status")
            assert code == 0, text + err
        finally:
            assert again.stop() == 0, again.output()
    finally:
        home.stop_hub()
