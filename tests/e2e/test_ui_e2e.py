"""The web UI over a real client: paste the hub's pairing code into the pairing WebSocket,
then watch the camera, its events and a clip appear through the UI's API while the UI's own
receive loop decrypts them; `privastead-app status` asks the running UI over its local socket,
and a camera that hangs gets its "camera offline" state on its card. Real relay, camsim, and
hub processes on loopback."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

import aiohttp
import pytest
from e2e_harness import Home, app_cmd, run

from privastead.client.device import DataDir
from privastead.client.ui.client_source import ClientSource
from privastead.client.ui.server import UiServer
from privastead.clock import SystemClock

pytestmark = pytest.mark.slow


async def _until(http: aiohttp.ClientSession, url: str, done: Any, limit: float) -> Any:
    deadline = time.monotonic() + limit
    while True:
        async with http.get(url) as r:
            value = await r.json()
        if done(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.5)


async def test_pair_then_events_and_clip_through_the_ui(home: Home) -> None:
    source = ClientSource(
        DataDir(home.root / "laptop"), clock=SystemClock(), device_name="laptop", poll=0.5
    )
    await source.start()
    ui = UiServer(source)
    await ui.start()
    origin = {"Origin": f"http://127.0.0.1:{ui.port}"}
    try:
        async with aiohttp.ClientSession() as http:
            assert await (await http.get(ui.url + "api/cameras")).json() == []
            proc, code, _png = home.start_pairing()
            ws = await http.ws_connect(ui.url + "ws/pair", headers=origin)
            await ws.send_str(json.dumps({"code": code}))
            shown = asyncio.ensure_future(asyncio.to_thread(home.confirm, proc))
            steps = [json.loads(m.data) async for m in ws]
            hub_out, _ = await asyncio.to_thread(proc.communicate, timeout=60)
            hub_out = await shown + hub_out
            assert steps[-1]["safety_code"], steps
            assert steps[-1]["safety_code"] in hub_out  # the owner compares these

            home.start_hub()
            cams = await _until(
                http,
                ui.url + "api/cameras",
                lambda c: c and c[0]["health"] == "online" and c[0]["last_event"],
                90,
            )
            assert cams[0]["name"] == "door" and cams[0]["health"] == "online", cams
            events = await _until(
                http,
                ui.url + "api/cameras/door/events",
                lambda e: any(x["clip_state"] == "complete" for x in e),
                120,
            )
            # While the UI owns the data directory, the other commands ask it.
            laptop = str(home.root / "laptop")
            status = await asyncio.to_thread(run, app_cmd("status", "--data-dir", laptop))
            assert status.returncode == 0 and ": ok: " in status.stdout, status
            # A camera that hangs with its connection open: its card says so, with the time.
            assert home.camera is not None
            home.camera.signal(signal.SIGUSR1)
            cams = await _until(
                http, ui.url + "api/cameras", lambda c: c[0]["health"] == "camera_offline", 90
            )
            assert cams[0]["health"] == "camera_offline", cams
            assert cams[0]["offline_since"] and "camera door offline since" in cams[0]["detail"]
            home.camera.signal(signal.SIGUSR1)
            cams = await _until(
                http, ui.url + "api/cameras", lambda c: c[0]["health"] == "online", 90
            )
            assert cams[0]["health"] == "online" and cams[0]["offline_since"] is None, cams
            home.stop_hub()
            done = next(e for e in events if e["clip_state"] == "complete")
            async with http.get(ui.url + f"api/events/{done['event_id']}") as r:
                assert (await r.json())["clip"]["mime"].startswith("video/mp4; codecs=")
            async with http.get(ui.url + f"api/events/{done['event_id']}/clip.mp4") as r:
                clip = await r.read()
            assert clip in {p.read_bytes() for p in home.recorded_clips()}
            devices = await (await http.get(ui.url + "api/devices")).json()
            assert {d["name"] for d in devices} >= {"laptop"}
    finally:
        await ui.stop()
        await source.close()
