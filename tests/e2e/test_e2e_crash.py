"""kill -9 of the relay during an upload, of the hub with ciphertext still queued, and of a
client during download: after restarts every clip arrives exactly once, byte for byte."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from e2e_harness import Home, app_cmd, env

from privastead.client.eventlog import ClipState, EventLog
from privastead.clock import SystemClock

pytestmark = pytest.mark.slow


def _listen(client: Path, log: Path) -> subprocess.Popen[str]:
    with log.open("a") as out:
        return subprocess.Popen(
            app_cmd("listen", "--poll", "1", "--data-dir", str(client)),
            env=env(),
            stdout=out,
            stderr=out,
            text=True,
        )


def _until(predicate, limit: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False


def _clips(client: Path) -> list[tuple[str, str | None, Path | None]]:
    if not (client / "events.db").exists():
        return []
    with EventLog(client / "events.db", clock=SystemClock()) as log:
        return [
            (r.event_id, r.clip_id, r.clip_path)
            for r in log.events()
            if r.clip_state is ClipState.COMPLETE
        ]


def test_kill9_relay_hub_and_client_then_every_clip_arrives_once(home: Home) -> None:
    client = home.root / "phone"
    home.pair(client, "phone")
    out = home.root / "listen.log"
    listener = _listen(client, out)
    try:
        home.start_hub()
        assert _until(lambda: "event door" in out.read_text(), 90), home.hub_log.read_text()[-2000:]
        home.relay.kill9()  # the clip is being recorded and uploaded right now
        sidecars = lambda: list((home.data / "clips").glob("*/*.json"))  # noqa: E731
        assert _until(lambda: len(sidecars()) >= 1, 60), home.hub_log.read_text()[-2000:]
        home.kill_hub()  # its outbox still holds the clip's ciphertext
        recorded = {p.with_suffix(".mp4").read_bytes() for p in sidecars()}
        home.relay.start()
        home.start_hub()
        # Kill the client in the middle of the download, then let it finish.
        assert _until(lambda: any((client / "clips" / "partial").iterdir()) or _clips(client), 60)
        listener.kill()
        listener.wait(10)
        listener = _listen(client, out)
        assert _until(lambda: len(_clips(client)) >= len(recorded), 120), out.read_text()[-2000:]
        home.stop_hub()
    finally:
        listener.kill()
        listener.wait(10)
    clips = _clips(client)
    clip_ids = [c for _, c, _ in clips]
    assert len(clip_ids) == len(set(clip_ids))  # once each
    recorded_now = {p.read_bytes() for p in home.recorded_clips()}
    for _, _, path in clips:
        assert path is not None and path.read_bytes() in recorded_now
    assert recorded <= {path.read_bytes() for _, _, path in clips if path is not None}
