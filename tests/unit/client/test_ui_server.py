"""The local UI server over real loopback HTTP: the guard (secret, Host, Origin), the API,
ranges, the live and pairing WebSockets, and LocalSource over a real event log."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from privastead.client.eventlog import ClipState, EventLog
from privastead.client.health import HealthMonitor
from privastead.client.ui.fake import FakeSource, demo_source, synthetic_clip
from privastead.client.ui.server import UiServer
from privastead.client.ui.source import Health, LocalSource
from privastead.clock import FakeClock
from privastead.errors import ConfigError
from privastead.media.fmp4 import mime_codec
from privastead.protocol.messages import Notification


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> FakeSource:
    return demo_source(tmp_path_factory.mktemp("demo"), now=time.time(), events_per_camera=2)


@pytest.fixture
async def server(demo: FakeSource) -> AsyncIterator[UiServer]:
    ui = UiServer(demo)
    await ui.start()
    try:
        yield ui
    finally:
        await ui.stop()


def origin(ui: UiServer) -> str:
    return f"http://127.0.0.1:{ui.port}"


async def test_serves_pages_and_api_with_the_secret(server: UiServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url) as r:
            assert r.status == 200
            assert "<title>Privastead</title>" in await r.text()
            assert "script-src 'self'" in r.headers["Content-Security-Policy"]
            assert r.headers["Referrer-Policy"] == "no-referrer"
            assert "Access-Control-Allow-Origin" not in r.headers
        for name in ("app.js", "app.css", "icon.svg"):
            async with http.get(server.url + "static/" + name) as r:
                assert r.status == 200
        async with http.get(server.url + "api/cameras") as r:
            cams = await r.json()
        assert [c["name"] for c in cams] == ["front-door", "garden", "garage"]
        assert cams[2]["health"] == "offline"
        (box,) = cams[0]["last_event"]["boxes"]
        assert len(box) == 4 and all(0 <= v <= 1 for v in box)
        async with http.get(server.url + "api/cameras/garden/events") as r:
            events = await r.json()
        assert len(events) == 2 and events[0]["at"] > events[1]["at"]
        event_id = events[0]["event_id"]
        async with http.get(server.url + f"api/events/{event_id}") as r:
            assert (await r.json())["clip"]["mime"].startswith('video/mp4; codecs="avc1.')
        async with http.get(server.url + f"api/events/{event_id}/thumbnail.jpg") as r:
            assert r.content_type == "image/jpeg" and (await r.read())[:2] == b"\xff\xd8"
        async with http.get(server.url + "api/devices") as r:
            assert {d["role"] for d in await r.json()} == {"hub", "this device", "other device"}
        async with http.get(server.url + "api/events/" + "0" * 32) as r:
            assert r.status == 404


async def test_clip_answers_range_requests(server: UiServer, demo: FakeSource) -> None:
    event_id, path = next(iter(demo.clips.items()))
    whole = path.read_bytes()
    async with aiohttp.ClientSession() as http:
        url = server.url + f"api/events/{event_id}/clip.mp4"
        async with http.get(url, headers={"Range": "bytes=100-199"}) as r:
            assert r.status == 206
            assert await r.read() == whole[100:200]
            assert r.headers["Content-Range"] == f"bytes 100-199/{len(whole)}"
        async with http.get(url) as r:
            assert r.status == 200 and await r.read() == whole


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("", {}),  # no secret
        ("api/cameras", {}),
        ("wrong-secret/api/cameras", {}),
        ("{secret}/api/cameras", {"Origin": "http://evil.example"}),
        ("{secret}/api/cameras", {"Origin": "null"}),
        ("{secret}/api/cameras", {"Host": "evil.example:{port}"}),  # DNS rebinding
        ("{secret}/api/cameras", {"Sec-Fetch-Site": "cross-site"}),
        ("{secret}/", {"Host": "127.0.0.1:1"}),
    ],
)
async def test_rejects_without_secret_or_from_elsewhere(
    server: UiServer, path: str, headers: dict[str, str]
) -> None:
    path = path.format(secret=server.secret)
    headers = {k: v.format(port=server.port) for k, v in headers.items()}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{origin(server)}/{path}", headers=headers) as r,
    ):
        assert r.status == 403
        assert await r.text() == "forbidden\n"  # says nothing about the secret
        assert "Access-Control-Allow-Origin" not in r.headers


async def test_websockets_need_this_origin(server: UiServer, demo: FakeSource) -> None:
    started = demo.live_started
    url = server.url + "ws/live/front-door"
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Origin": "http://evil.example"}, {"Origin": "http://localhost:1"}):
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await http.ws_connect(url, headers=headers)
            assert info.value.status == 403
    assert demo.live_started == started


async def test_live_websocket_sends_mime_then_fragments_and_stops(
    server: UiServer, demo: FakeSource
) -> None:
    stopped = demo.live_stopped
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(
            server.url + "ws/live/front-door", headers={"Origin": origin(server)}
        )
        hello = await ws.receive_json()
        init = await ws.receive_bytes()
        assert hello["mime"] == f'video/mp4; codecs="{mime_codec(init)}"'
        fragment = await ws.receive_bytes()
        assert fragment[4:8] == b"moof"
        await ws.close()
    for _ in range(100):  # the server notices the close and stops the stream
        if demo.live_stopped > stopped:
            break
        await asyncio.sleep(0.02)
    assert demo.live_stopped == stopped + 1


async def test_live_of_camera_without_stream_says_why(server: UiServer) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(
            server.url + "ws/live/garage", headers={"Origin": origin(server)}
        )
        assert "no livestream" in (await ws.receive_json())["error"]
        await ws.close()


async def test_pairing_websocket_reports_progress(server: UiServer, demo: FakeSource) -> None:
    demo.pair_delay = 0.0
    async with aiohttp.ClientSession() as http:
        for code, last in (("privastead:abc", "safety_code"), ("hello", "error")):
            ws = await http.ws_connect(server.url + "ws/pair", headers={"Origin": origin(server)})
            await ws.send_str(json.dumps({"code": code}))
            steps = [json.loads(m.data) async for m in ws]
            assert steps[0]["progress"] == 0.0
            assert steps[-1][last]


def test_refuses_non_loopback_hosts(demo: FakeSource) -> None:
    for host in ("0.0.0.0", "192.168.1.2", "example.com", "::"):
        with pytest.raises(ConfigError):
            UiServer(demo, host=host)
    assert UiServer(demo, host="::1").host == "::1"


# -- LocalSource over the client's real event log -----------------------------------------------


def _note(camera: str, event_id: str, at: float) -> Notification:
    return Notification(
        camera=camera, event_id=event_id, at=at, score=0.7, boxes=((0.1, 0.2, 0.3, 0.4),), seq=1
    )


async def test_local_source_reads_event_log_health_and_transcodes_h265(tmp_path: Path) -> None:
    clock = FakeClock(1_000_000.0)
    monitor = HealthMonitor(clock, offline_after=900)
    thumb = tmp_path / "t.jpg"
    thumb.write_bytes(b"\xff\xd8jpeg")
    hevc = tmp_path / "hevc.mp4"
    hevc.write_bytes(b"".join(synthetic_clip(1.0, codec="hevc")))
    calls: list[tuple[Path, Path]] = []

    def transcode(src: Path, dst: Path) -> None:
        calls.append((src, dst))
        dst.write_bytes(b"".join(synthetic_clip(1.0)))

    with EventLog(tmp_path / "events.sqlite", clock=clock) as log:
        log.record_notification(_note("porch", "a" * 32, clock.time() - 60), thumb)
        log.record_clip(
            camera="porch", event_id="a" * 32, clip_id="b" * 32, state=ClipState.COMPLETE, path=hevc
        )
        source = LocalSource(
            log,
            cache_dir=tmp_path / "cache",
            hubs={"home": monitor},
            camera_hubs={"porch": "home", "yard": "home"},
            transcode_clip=transcode,
        )
        cams = {c.name: c for c in await source.cameras()}
        assert cams["porch"].health is Health.ONLINE
        assert cams["porch"].last_event is not None and cams["porch"].last_event.has_thumbnail
        assert cams["yard"].last_event is None
        clock.advance(1000)
        assert (await source.cameras())[0].health is Health.OFFLINE
        monitor.relay_failed()
        clock.advance(200)
        assert (await source.cameras())[0].health is Health.RELAY_UNREACHABLE

        assert await source.thumbnail("a" * 32) == b"\xff\xd8jpeg"
        original = await source.clip("a" * 32)
        assert original is not None and "hvc1" in original.mime and original.path == hevc
        converted = await source.clip("a" * 32, h264=True)
        assert converted is not None and "avc1" in converted.mime and converted.complete
        again = await source.clip("a" * 32, h264=True)
        assert again is not None and again.path == converted.path
        assert len(calls) == 1  # cached


async def test_local_source_with_the_real_transcoder(tmp_path: Path) -> None:
    from privastead.media.transcode import transcode_clip

    hevc = tmp_path / "hevc.mp4"
    hevc.write_bytes(b"".join(synthetic_clip(1.0, codec="hevc")))
    with EventLog(tmp_path / "events.sqlite", clock=FakeClock()) as log:
        log.record_clip(
            camera="porch", event_id="c" * 32, clip_id="d" * 32, state=ClipState.COMPLETE, path=hevc
        )
        source = LocalSource(log, cache_dir=tmp_path / "cache", transcode_clip=transcode_clip)
        clip = await source.clip("c" * 32, h264=True)
    assert clip is not None and "avc1" in clip.mime
