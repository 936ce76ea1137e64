"""Livestream end to end with real processes: `privastead-server`, `privastead-camsim` (demo
scene: a person walks through from 4.5 s to 11.5 s of every 14 s loop), `privastead-hub run`
and `privastead-app live`, plus viewers in this process (``client.live_request.open_live``).

Checked: the saved stream decodes and its pictures are what camsim drew; a second viewer
joins the running session; events keep arriving during a livestream; a viewer that never
reads grows neither the hub's nor the relay's memory without bound; a relay killed mid-session
ends the session with a clear message, and a new session works once the relay is back.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import numpy as np
import psutil
import pytest
from e2e_harness import Home, app_cmd, env, running_home, scan_for_plaintext
from live_support import decoded_frames, open_when_ready

from privastead.camsim.scene import make_scene
from privastead.client.app import Client
from privastead.client.device import DataDir
from privastead.client.eventlog import ClipState
from privastead.client.ui.client_source import ClientSource
from privastead.client.ui.server import UiServer
from privastead.clock import SystemClock
from support.luma import block_error, luma

pytestmark = pytest.mark.slow

FPS = 10
LOOP = 140  # frames in camsim's 14 s loop
SCENE = make_scene("demo", width=320, height=180, fps=FPS, duration=14)


def _live(client: Path, out: Path, seconds: float, *extra: str) -> subprocess.CompletedProcess[str]:
    """`privastead-app live`, retried while the hub's camera is still connecting."""
    deadline = time.monotonic() + 90
    while True:
        args = ["live", "door", "--out", str(out), "--seconds", str(seconds), *extra]
        done = subprocess.run(
            app_cmd(*args, "--data-dir", str(client)),
            env=env(),
            capture_output=True,
            text=True,
            timeout=seconds + 90,
            check=False,
        )
        if done.returncode == 0 or time.monotonic() > deadline:
            return done
        if "not connected" not in done.stderr and "no answer from the hub" not in done.stderr:
            return done
        time.sleep(1.0)


_RENDERED: dict[int, np.ndarray] = {}


def _scene(index: int) -> np.ndarray:
    index %= LOOP
    if index not in _RENDERED:
        _RENDERED[index] = SCENE.render(index)[0]
    return _RENDERED[index]


def _check_pictures(data: bytes) -> int:
    """The decoded stream shows camsim's scene, frame after frame; returns moving frames."""
    frames = decoded_frames(data)
    assert frames and frames[0].key_frame
    sample = [(round(f.time * FPS), luma(f)) for f in frames[::2]]
    # The stream starts wherever the camera was: find that offset in camsim's loop.
    offset = min(
        range(LOOP), key=lambda o: sum(block_error(y, _scene(o + t)) for t, y in sample[::3])
    )
    moving = 0
    for t, y in sample:
        index = offset + t
        right = block_error(y, _scene(index))
        assert right < 6.0, (index, right)
        if SCENE.objects_at(index % LOOP):
            neighbour = min(block_error(y, _scene(index + d)) for d in (-1, 1))
            assert neighbour > max(6.0, 2 * right), (index, right, neighbour)
            moving += 1
    return moving


async def _session_summary(home: Home) -> re.Match[str]:
    """The hub's log line for the end of the (first) session, once it is written."""
    for _ in range(100):
        found = re.search(r"(\d+) lagging signals, (\d+) skips", home.hub_log.read_text())
        if found is not None:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(home.hub_log.read_text()[-3000:])


def _rss(proc: subprocess.Popen[str] | subprocess.Popen[bytes] | None) -> int:
    assert proc is not None
    return int(psutil.Process(proc.pid).memory_info().rss)


async def test_live_out_matches_the_scene_second_viewer_joins_events_go_on(home: Home) -> None:
    a, b = home.root / "phone-a", home.root / "phone-b"
    home.pair(a, "phone-a")
    home.pair(b, "phone-b")
    home.start_hub()
    # B watches in this process (and keeps receiving events); A runs `privastead-app live`.
    syncer = Client(DataDir(b), clock=SystemClock())
    try:
        stream, first, status_b = await open_when_ready(syncer)
        watching_since = time.time()
        out = home.root / "a.mp4"
        cli = asyncio.create_task(asyncio.to_thread(_live, a, out, 15.0))
        got_b = bytearray(first)
        async for piece in stream:
            got_b += piece
            if cli.done() or status_b.fragments > 200:
                break
        done = await cli
        await stream.aclose()
        watching_until = time.time()
        await syncer.sync_once()
        events = syncer.events.events()
    finally:
        await syncer.close()
    hub_log = home.hub_log.read_text()
    print(done.stderr)  # status lines, with the time to the first picture (pytest -s)
    print(f"first viewer (started the session): first picture after {status_b.first_picture} s")
    assert done.returncode == 0, done.stderr + hub_log[-3000:]
    assert "first picture after" in done.stderr and "saved" in done.stderr, done.stderr
    # A joined the session B started: one session for both.
    assert status_b.session_id
    assert len(re.findall(r"live session \w+… started", hub_log)) == 1, hub_log[-3000:]
    assert _check_pictures(out.read_bytes()) >= 5  # the walk-through is in the recording
    _check_pictures(bytes(got_b))
    assert status_b.first_picture is not None
    # Detection and delivery went on: the walk-through became an event on B while it watched.
    during = [r for r in events if r.at is not None and watching_since <= r.at <= watching_until]
    assert during, (watching_since, watching_until, [r.at for r in events], hub_log[-3000:])
    assert any(r.clip_state in (ClipState.PARTIAL, ClipState.COMPLETE) for r in during)
    assert not scan_for_plaintext(home.relay.data_dir)


@pytest.fixture
def big_home(tmp_path: Path) -> Iterator[Home]:
    """Like ``home`` at a high bitrate: a stalled viewer's TCP path holds ~3 MB on loopback
    (kernel and transport buffers) before the relay's own queue fills; this gets past that."""
    # A short per-viewer queue at the relay (default 64 frames): the bound is what is tested.
    with running_home(
        tmp_path,
        "--bitrate",
        "16000000",
        relay_config="[limits]\nlive_queue_frames = 8\n",
        size="640x360",
        fps=15,
    ) as h:
        yield h


def _stalled_viewer(url: str, token: str, session_id: str) -> socket.socket:
    """A viewer that joins the live channel and then never reads: a WebSocket handshake by
    hand on a socket with a tiny receive buffer, so the relay's side fills up quickly."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /v1/live/{session_id}?role=viewer HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    assert sock.recv(12) == b"HTTP/1.1 101"
    return sock


async def test_a_stalled_viewer_costs_bounded_memory_and_the_other_keeps_playing(
    big_home: Home,
) -> None:
    home = big_home
    a = home.root / "phone-a"
    home.pair(a, "phone-a")
    home.start_hub()
    syncer = Client(DataDir(a), clock=SystemClock())
    try:
        stream, _first, status = await open_when_ready(syncer)
        stalled = _stalled_viewer(home.relay.url, DataDir(a).token(), status.session_id)
        samples: list[tuple[int, int]] = []
        start, got = status.fragments, 0
        async for piece in stream:
            got += len(piece)
            if status.fragments % 10 == 0:
                samples.append((_rss(home.relay.proc), _rss(home.hub)))
            if status.fragments - start >= 100:  # 300 frames: 20 s of camera
                break
        stalled.close()
        await stream.aclose()
    finally:
        await syncer.close()
    lag = await _session_summary(home)
    # The relay dropped frames for the stalled viewer (and said so) ...
    assert int(lag.group(1)) > 0, got
    # ... for it alone: the other viewer lost nothing and the session never skipped.
    assert status.dropped == 0 and int(lag.group(2)) == 0
    # Tens of megabytes went by, most of them never read by the stalled viewer: a relay that
    # queued them would have grown by about that much. Its bound is 8 frames plus ~3 MB of
    # socket buffers; the hub's growth is mostly its packet ring filling at this bitrate.
    print(f"stalled viewer: {got} bytes played, relay/hub RSS samples {samples}")
    assert got > 20 * 2**20, got
    relay_growth = max(r for r, _ in samples) - samples[0][0]
    hub_growth = max(h for _, h in samples) - samples[0][1]
    assert relay_growth < 12 * 2**20, (relay_growth, got)
    assert hub_growth < 100 * 2**20, (hub_growth, got)


async def test_a_relay_restart_mid_stream_resumes_the_same_session(home: Home) -> None:
    """The relay dies (SIGKILL) and comes back while a client watches: the hub and the viewer
    both join the same session id again by themselves and the picture goes on, in the same
    playable stream, from a keyframe; no new request, no new session."""
    a = home.root / "phone-a"
    home.pair(a, "phone-a")
    home.start_hub()
    syncer = Client(DataDir(a), clock=SystemClock())
    phases: list[str] = []
    try:
        stream, first, status = await open_when_ready(syncer)
        status.on_change = lambda st: phases.append(st.phase)
        got, pieces, before = bytearray(first), 0, 0
        async for piece in stream:
            got += piece
            pieces += 1
            if pieces == 10:
                home.relay.kill9()
                home.relay.start()
                before = len(decoded_frames(bytes(got)))
            if pieces >= 40:
                break
        await stream.aclose()
        assert "reconnecting" in phases and status.ended == "stopped"
        frames = decoded_frames(bytes(got))  # one stream, decodable from its start to its end
        assert len(frames) >= before + 30, (before, len(frames))
        assert all(f1.time > f0.time for f0, f1 in itertools.pairwise(frames))
        resumed = re.findall(r"live session (\w+)… resumed", home.hub_log.read_text())
        assert resumed == [status.session_id[:8]]
        # A new request after that one gets a new session.
        stream2, first2, status2 = await open_when_ready(syncer)
        got = bytearray(first2)
        async for piece in stream2:
            got += piece
            if status2.fragments >= 30:
                break
        await stream2.aclose()
    finally:
        await syncer.close()
    assert status2.session_id != status.session_id
    assert 0 < status2.arrived <= time.time()  # the hub's arrival time of the newest frame
    assert len(decoded_frames(bytes(got))) >= 30
    assert home.hub is not None and home.hub.poll() is None  # the hub kept running

    # `--pipe` writes the decrypted stream to stdout, as a player reads it.
    piped = await asyncio.to_thread(
        subprocess.run,
        app_cmd("live", "door", "--pipe", "--seconds", "4", "--data-dir", str(a)),
        env=env(),
        capture_output=True,
        timeout=90,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr.decode()
    assert len(decoded_frames(piped.stdout)) >= 10

    # Ctrl-C ends a session cleanly: exit 0, a playable file, the hub's session over.
    out = home.root / "interrupted.mp4"
    with (home.root / "live.err").open("w+") as err:
        proc = await asyncio.create_subprocess_exec(
            *app_cmd("live", "door", "--out", str(out), "--data-dir", str(a)),
            env=env(),
            stderr=err,
        )
        try:
            for _ in range(300):
                if "first picture" in (home.root / "live.err").read_text():
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            proc.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        err.seek(0)
        text = err.read()
    assert "ended (interrupted)" in text and "Traceback" not in text, text
    assert len(decoded_frames(out.read_bytes())) >= 3
    for _ in range(100):
        # relay loss, in-process, pipe, ^C
        if len(re.findall(r"live session \w+… ended \(", home.hub_log.read_text())) >= 4:
            break
        await asyncio.sleep(0.2)
    # Each session's own line (a session paused and then stopped logs no publisher "ended").
    assert len(re.findall(r"live session \w+… ended \(", home.hub_log.read_text())) >= 4


async def test_the_web_ui_live_socket_plays_the_hubs_stream(home: Home) -> None:
    """`privastead-app ui`'s live WebSocket over a real client: its receive loop and the
    livestream share one Client (keys, lock)."""
    laptop = home.root / "laptop"
    home.pair(laptop, "laptop")
    home.start_hub()
    source = ClientSource(DataDir(laptop), clock=SystemClock(), device_name="laptop", poll=0.5)
    await source.start()
    ui = UiServer(source)
    await ui.start()
    origin = {"Origin": f"http://127.0.0.1:{ui.port}"}
    got, mime = bytearray(), None
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 90
            while mime is None:
                ws = await http.ws_connect(ui.url + "ws/live/door", headers=origin)
                first = json.loads((await ws.receive(timeout=60)).data)
                if "mime" in first:
                    mime = first["mime"]
                    break
                await ws.close()
                assert "not connected" in first["error"] and time.monotonic() < deadline, first
                await asyncio.sleep(1.0)
            while len(got) < 100_000 or len(decoded_frames(bytes(got))) < 20:
                msg = await ws.receive(timeout=30)
                assert msg.type == aiohttp.WSMsgType.BINARY, msg
                got += msg.data
            await ws.close()
    finally:
        await ui.stop()
        await source.close()
    assert mime.startswith('video/mp4; codecs="avc1')
    _check_pictures(bytes(got))
