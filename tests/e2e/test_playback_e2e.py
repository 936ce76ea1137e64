"""Playback of continuous recording end to end with real processes: `privastead-server`,
`privastead-camsim`, `privastead-hub run` and `privastead-app playback|recordings`.

The recording is written before the hub starts, with the hub's own ``SegmentWriter``, from
frames that show their own number (``support.recordings``): the test knows which picture
belongs to which second. Checked: the listing names what is recorded; a range comes back as
a file PyAV opens, starting at the keyframe before it, at zero, with the right duration and
the right pictures; a range with nothing recorded is answered with what exists nearby; the
relay stores no plaintext; a removed device's request is refused; a relay that drops,
replays or reorders playback frames (``support.faulty_relay``) never makes the client write a
corrupt file: it asks again, skips what does not decrypt, or fails saying so.
"""

from __future__ import annotations

import asyncio
import datetime
import io
import json
import re
import time
from pathlib import Path

import av
import pytest
from e2e_harness import Home, Listener, app_cmd, free_port, hub_cmd, run, scan_for_plaintext

from support.faulty_relay import FaultyRelay
from support.recordings import frame_number, record

pytestmark = pytest.mark.slow

FPS = 10
GOP = 1.0  # seconds between keyframes in the recording


def _iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat()


def _playback(client: Path, start: float, end: float, out: Path, *extra: str):  # type: ignore[no-untyped-def]
    """`privastead-app playback`, retried while the hub is still starting."""
    deadline = time.monotonic() + 90
    while True:
        done = run(
            app_cmd(
                "playback",
                "door",
                "--from",
                _iso(start),
                "--to",
                _iso(end),
                "--out",
                str(out),
                "--timeout",
                "10",
                "--data-dir",
                str(client),
                *extra,
            ),
            timeout=150,
        )
        if "no answer from the hub" not in done.stderr or time.monotonic() > deadline:
            return done
        time.sleep(1.0)


def _decoded(path: Path) -> tuple[float, list[int], list[float]]:
    with av.open(io.BytesIO(path.read_bytes())) as c:
        frames = list(c.decode(video=0))
        return (
            float(c.duration or 0) / 1e6,
            [frame_number(f) for f in frames],
            [f.time for f in frames],
        )


def _playback_sessions(home: Home) -> int:
    """How many playback sessions the hub's log says it started."""
    return len(re.findall(r": playback \S+ of .* started$", home.hub_log.read_text(), re.M))


def test_playback_lists_fetches_and_refuses(home: Home) -> None:
    a, b = home.root / "phone-a", home.root / "phone-b"
    home.pair(a, "phone-a")
    home.pair(b, "phone-b")
    wall = round(time.time()) - 600.0  # ten minutes ago: 60 s of recording, 10 s segments
    record(home.data / "recordings", "door", wall, 60.0, fps=FPS)
    home.start_hub()

    out = home.root / "range.mp4"
    done = _playback(a, wall + 12.5, wall + 31.0, out)
    hub_log = home.hub_log.read_text()
    assert done.returncode == 0, done.stderr + hub_log[-3000:]
    assert "first picture after" in done.stderr and "saved" in done.stderr, done.stderr
    duration, numbers, times = _decoded(out)
    assert numbers[0] == 120 and times[0] == 0.0  # the keyframe at 12 s, at zero
    assert numbers == list(range(120, 120 + len(numbers)))  # every picture, in order
    assert 18.5 - GOP <= duration <= 18.5 + 2 * GOP  # 12.5-31 s, whole GOPs either side
    assert duration == pytest.approx(len(numbers) / FPS)
    assert not (home.root / "range.mp4.part").exists()

    listing = run(
        app_cmd(
            "recordings",
            "door",
            "--from",
            _iso(wall - 3600),
            "--to",
            "now",
            "--json",
            "--data-dir",
            str(a),
        ),
    )
    assert listing.returncode == 0, listing.stderr
    spans = json.loads(listing.stdout)["spans"]
    assert spans == [[pytest.approx(wall), pytest.approx(wall + 60.0)]]

    # The same through a running `listen` (it holds the state: only its socket can answer).
    listener = Listener(a)
    try:
        for _ in range(100):
            if (a / "run" / "app.sock").exists():
                break
            time.sleep(0.2)
        through = home.root / "through-listen.mp4"
        done = _playback(a, wall + 40.0, wall + 50.0, through)
        assert done.returncode == 0, done.stderr + listener.output()
        _duration, numbers, _times = _decoded(through)
        assert numbers[0] == 400 and numbers == list(range(400, 400 + len(numbers)))
        listing = run(
            app_cmd("recordings", "door", "--from", _iso(wall - 60), "--data-dir", str(a))
        )
        assert listing.returncode == 0 and "recordings: 1 span(s)" in listing.stdout, listing
    finally:
        listener.stop()

    nothing = home.root / "nothing.mp4"
    done = _playback(a, wall - 400, wall - 300, nothing)
    assert done.returncode == 3, done.stderr
    assert "nothing of door is recorded" in done.stderr and "recorded nearby" in done.stderr
    assert datetime.datetime.fromtimestamp(wall).astimezone().isoformat(timespec="seconds") in (
        done.stderr
    )
    assert not nothing.exists() and not (home.root / "nothing.mp4.part").exists()

    # Playback sessions only: the camera's own motion events log "started" too.
    started = _playback_sessions(home)
    assert started >= 2  # the range and the one through `listen`
    removed = run(hub_cmd("devices", "remove", "phone-b", "--config", str(home.config)))
    assert removed.returncode == 0, removed.stderr
    refused = home.root / "refused.mp4"
    done = _playback(b, wall, wall + 10, refused)
    assert done.returncode != 0 and not refused.exists(), done.stderr
    assert "removed" in done.stderr, done.stderr
    assert _playback_sessions(home) == started  # no session for it
    assert not scan_for_plaintext(home.relay.data_dir)


async def test_a_relay_that_drops_reorders_or_replays_never_yields_a_corrupt_file(
    home: Home,
) -> None:
    client = home.root / "phone"
    home.pair(client, "phone")
    wall = round(time.time()) - 600.0
    record(home.data / "recordings", "door", wall, 30.0, fps=FPS)
    proxy = FaultyRelay(home.relay.url, live_drop={5}, live_faulty_sessions=1)
    url = await proxy.start(free_port())
    home.config.write_text(home.config.read_text().replace(home.relay.url, url))
    try:
        home.start_hub()
        # A dropped frame: the client notices the gap, throws the attempt away, asks again.
        out = home.root / "retried.mp4"
        done = await asyncio.to_thread(_playback, client, wall + 2.0, wall + 25.0, out)
        assert done.returncode == 0, done.stderr + home.hub_log.read_text()[-3000:]
        assert ("live_drop", 5) in proxy.done
        assert "missing" in done.stderr and "after 2 attempts" in done.stderr, done.stderr
        _duration, numbers, _times = _decoded(out)
        assert numbers == list(range(20, 20 + len(numbers))) and len(numbers) >= 230

        # A replayed frame does not decrypt twice: skipped, the file is still exact.
        proxy.live_faulty_sessions, proxy.live_drop = proxy.live_sessions + 1, set()
        proxy.live_duplicate = {4}
        out = home.root / "replayed.mp4"
        done = await asyncio.to_thread(_playback, client, wall + 2.0, wall + 25.0, out)
        assert done.returncode == 0, done.stderr
        assert ("live_duplicate", 4) in proxy.done and "skipped" in done.stderr, done.stderr
        _duration, numbers, _times = _decoded(out)
        assert numbers == list(range(20, 20 + len(numbers))) and len(numbers) >= 230

        # Reordered on every attempt: the client gives up, clearly, and writes nothing.
        proxy.live_faulty_sessions, proxy.live_duplicate = 1_000_000, set()
        proxy.live_swap = {3}
        out = home.root / "reordered.mp4"
        done = await asyncio.to_thread(
            _playback, client, wall + 2.0, wall + 25.0, out, "--retries", "1"
        )
        assert done.returncode == 1, done.stderr
        assert "did not arrive whole" in done.stderr and "ask again" in done.stderr, done.stderr
        assert not out.exists() and not (home.root / "reordered.mp4.part").exists()
    finally:
        home.kill_hub()
        await proxy.stop()
