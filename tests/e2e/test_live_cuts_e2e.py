"""A relay that cuts live sockets, through real processes: `privastead-server`, the faulty
proxy in front of it (``support.faulty_relay``: it aborts the TCP connection of a viewer's or
the hub's live socket after a number of frames), `privastead-camsim`, `privastead-hub run`,
and a viewer in this process (``client.live_request.open_live``) or `privastead-app live`.

Checked: a viewer's socket cut mid-stream, then the hub's: the same session goes on each time
(no new request, no new session), and what the viewer wrote is one decodable stream whose
timestamps keep increasing; a relay that cuts forever is given up on by both ends after
``LIVE_MAX_RESUMES`` resumes, the viewer with a clear message; a viewer that stops on purpose
ends the session at once, and one whose process is killed ends it after the grace period
(the hub's log and its metrics: no session left running).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import signal
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from e2e_harness import Home, app_cmd, env, free_port
from live_support import decoded_frames, open_when_ready

from privastead.client.app import Client
from privastead.client.device import DataDir
from privastead.client.live_request import LiveStatus, LiveStream
from privastead.clock import SystemClock
from privastead.errors import RelayUnavailableError
from privastead.relay.client import LIVE_MAX_RESUMES
from support.faulty_relay import FaultyRelay

pytestmark = pytest.mark.slow


@pytest.fixture
async def cutting(home: Home) -> AsyncIterator[FaultyRelay]:
    """The faulty proxy in front of the relay, for the hub and (paired through it) the phone
    ``phone-a``; the hub running. Cuts are switched on by each test."""
    proxy = FaultyRelay(home.relay.url)
    url = await proxy.start(free_port())
    metrics = f'\n[metrics]\nenabled = true\nlisten = "127.0.0.1:{free_port()}"\n'
    home.config.write_text(home.config.read_text().replace(home.relay.url, url) + metrics)
    try:
        # The phone's relay URL is the proxy's; pairing blocks, the proxy runs on this loop.
        await asyncio.to_thread(home.pair, home.root / "phone-a", "phone-a")
        home.start_hub()
        yield proxy
    finally:
        home.kill_hub()
        await proxy.stop()


async def _read(stream: LiveStream, status: LiveStatus, got: bytearray, fragments: int) -> None:
    """Append what the viewer plays to ``got`` until ``fragments`` more were written."""
    until = status.fragments + fragments
    async for piece in stream:
        got += piece
        if status.fragments >= until:
            return


def _one_increasing_stream(data: bytes) -> int:
    """``data`` decodes from its start to its end, timestamps always increasing: frames."""
    frames = decoded_frames(data)
    assert frames and frames[0].key_frame
    assert all(f1.time > f0.time for f0, f1 in itertools.pairwise(frames))
    return len(frames)


async def _hub_log(home: Home, pattern: str) -> re.Match[str]:
    """The first match of ``pattern`` in the hub's log, once it is written."""
    for _ in range(300):
        found = re.search(pattern, home.hub_log.read_text())
        if found is not None:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(pattern + "\n" + home.hub_log.read_text()[-3000:])


async def _live_metrics(home: Home) -> dict[str, float]:
    """The hub's livestream metrics (its ``/metrics``, Prometheus text), by name and labels."""
    port = re.search(r'listen = "127.0.0.1:(\d+)"', home.config.read_text())
    assert port is not None
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port.group(1)}/metrics") as resp,
    ):
        text = await resp.text()
    return {
        name: float(value)
        for name, value in re.findall(r"^(privastead_hub_live_\S+) (\S+)$", text, re.M)
    }


async def test_cut_viewer_then_hub_sockets_resume_one_session_and_leaving_ends_it(
    home: Home, cutting: FaultyRelay
) -> None:
    proxy = cutting
    syncer = Client(DataDir(home.root / "phone-a"), clock=SystemClock())
    phases: list[str] = []
    try:
        stream, first, status = await open_when_ready(syncer)
        status.on_change = lambda st: phases.append(st.phase)
        got = bytearray(first)
        await _read(stream, status, got, 5)
        # The viewer's socket is cut (the relay lives): the hub keeps the session for it.
        proxy.live_cuts, proxy.live_cut_viewer = proxy.live_cut + 1, 3
        await _read(stream, status, got, 15)
        assert proxy.done == [("live_cut_viewer", 0)]
        between = _one_increasing_stream(bytes(got))
        # Then the hub's socket: the viewer keeps its own and waits for the hub's return.
        proxy.live_cut_viewer = 0
        proxy.live_cuts, proxy.live_cut_publisher = proxy.live_cut + 1, 3
        await _read(stream, status, got, 15)
        assert proxy.done == [("live_cut_viewer", 0), ("live_cut_publisher", 1)]
        await stream.aclose()
        log = home.hub_log.read_text()
        assert status.interruptions == 2 and phases.count("reconnecting") == 2, phases
        assert phases[-2:] == ["playing", "ended"] and status.ended == "stopped", phases
        assert _one_increasing_stream(bytes(got)) >= between + 30
        session = status.session_id[:8]
        assert re.findall(r"live session (\w+)… resumed", log) == [session, session], log[-3000:]
        assert len(re.findall(r"live session \w+… started", log)) == 1, log[-3000:]
        # LiveStop from its only viewer: ended at once, not after a grace period.
        await _hub_log(home, rf"live session {session}… ended \(stopped by its viewers\)")
    finally:
        await syncer.close()  # `privastead-app live` needs the phone's state files

    # A viewer whose process is killed sends no LiveStop: the relay's no_viewers starts the
    # grace period, after which the hub ends the session and frees the camera's.
    proxy.live_cut_publisher = 0
    err_path = home.root / "killed.err"
    with err_path.open("w") as err:
        proc = await asyncio.create_subprocess_exec(
            *app_cmd("live", "door", "--out", str(home.root / "killed.mp4")),
            "--data-dir",
            str(home.root / "phone-a"),
            env=env(),
            stderr=err,
        )
        try:
            for _ in range(900):
                if re.search(r"first picture after \d", err_path.read_text()):
                    break
                await asyncio.sleep(0.1)
            assert re.search(r"first picture after \d", err_path.read_text()), err_path.read_text()
            proc.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    ended = await _hub_log(home, r"live session (\w+)… ended \(no viewers\)")
    print(f"killed viewer: session ended {time.monotonic() - killed:.1f} s after the kill")
    log = home.hub_log.read_text()
    assert ended.group(1) != session
    assert len(re.findall(r"live session \w+… started", log)) == 2
    assert re.findall(rf"live session {ended.group(1)}… resumed", log) == []
    # Nothing of the two sessions is left running; the hub counted what happened.
    assert await _live_metrics(home) == {
        'privastead_hub_live_sessions{state="publishing"}': 0,
        'privastead_hub_live_sessions{state="paused"}': 0,
        "privastead_hub_live_sessions_started_total": 2,
        "privastead_hub_live_sessions_ended_total": 2,
        "privastead_hub_live_resumes_total": 2,
    }

    # The camera's sessions are over and the hub kept running: a new one starts at once.
    syncer = Client(DataDir(home.root / "phone-a"), clock=SystemClock())
    try:
        stream, first, status = await open_when_ready(syncer)
        got = bytearray(first)
        await _read(stream, status, got, 10)
        await stream.aclose()
    finally:
        await syncer.close()
    assert status.interruptions == 0 and _one_increasing_stream(bytes(got)) >= 10
    assert home.hub is not None and home.hub.poll() is None


async def test_a_relay_that_cuts_forever_is_given_up_on_by_both_ends(
    home: Home, cutting: FaultyRelay
) -> None:
    """Every viewer socket is cut after a few frames: the session resumes each time, in one
    decodable stream, until both ends stop after ``LIVE_MAX_RESUMES`` resumes: the viewer
    with a message that says what happened and what to do, the hub ending its session."""
    proxy = cutting
    syncer = Client(DataDir(home.root / "phone-a"), clock=SystemClock())
    try:
        stream, first, status = await open_when_ready(syncer)
        got = bytearray(first)
        proxy.live_cuts, proxy.live_cut_viewer = proxy.live_cut + 1_000, 4
        with pytest.raises(RelayUnavailableError) as gave_up:
            async for piece in stream:
                got += piece
        await stream.aclose()
    finally:
        await syncer.close()
    message = str(gave_up.value)
    assert f"cut {LIVE_MAX_RESUMES + 1} times" in message and "ask for the livestream again" in (
        message
    )
    assert status.interruptions == LIVE_MAX_RESUMES + 1
    assert status.ended == "the relay kept cutting the stream"
    assert len(proxy.done) == LIVE_MAX_RESUMES + 1  # no rejoin after the last cut
    # Each resume played on from a keyframe: one stream, timestamps increasing throughout.
    assert _one_increasing_stream(bytes(got)) > LIVE_MAX_RESUMES
    session = status.session_id[:8]
    ended = await _hub_log(home, rf"live session {session}… ended \(([^)]*)\)")
    log = home.hub_log.read_text()
    resumed = re.findall(rf"live session {session}… resumed", log)
    # The hub counted each cut as the viewer did and gave up at the same one; should the
    # relay ever have seen the rejoin before the cut socket's close (no pause at the hub for
    # that cut), the viewer gave up first and its LiveStop ended the session.
    assert (ended.group(1), len(resumed)) == (
        f"gave up after {LIVE_MAX_RESUMES} resumes",
        LIVE_MAX_RESUMES,
    ) or (ended.group(1) == "stopped by its viewers" and len(resumed) <= LIVE_MAX_RESUMES), (
        ended.group(1),
        len(resumed),
    )
    assert home.hub is not None and home.hub.poll() is None
