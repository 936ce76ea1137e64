"""RTP over TCP, UDP and auto, and Basic/Digest logins, from hub.toml to a real RTSP server.

camsim runs in-process on loopback (its UDP path sends real datagrams; ``udp_loss`` drops a
seeded share of them like a lossy network); GStreamer's RTSP server is the third-party camera.
Credentials come from hub.toml's ``password_file`` as in production, and no test ever finds
the password in a log line, a health report or an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from privastead.camsim.audio import tone
from privastead.camsim.auth import BasicAuth, DigestAuth
from privastead.camsim.server import RtspServer
from privastead.hub import config as hubconfig
from privastead.media.ingest import (
    Disconnected,
    Health,
    Ingest,
    IngestEvent,
    IngestSettings,
    MediaPacket,
    StreamInfo,
)
from privastead.media.transport import LossSettings
from privastead.ports import free_port
from support.procs import gstreamer, gstreamer_available
from support.rtsp import box_stream

SECRET = "Hunter2-not-in-logs"
FAST = IngestSettings(open_timeout=3.0, read_timeout=1.5, backoff_initial=0.1, backoff_max=0.5)


class Captured:
    """What an ingest hands its sink, thread-safe."""

    def __init__(self) -> None:
        self.events: list[IngestEvent] = []
        self.lock = threading.Lock()

    def __call__(self, event: IngestEvent) -> None:
        with self.lock:
            self.events.append(event)

    def packets(self, kind: str) -> list[MediaPacket]:
        with self.lock:
            return [e for e in self.events if isinstance(e, MediaPacket) and e.kind == kind]

    def infos(self) -> list[StreamInfo]:
        with self.lock:
            return [e for e in self.events if isinstance(e, StreamInfo)]


async def _until(predicate: Callable[[], bool], limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


def _camera(
    url: str,
    tmp_path: Path,
    transport: str,
    password: str | None = SECRET,
    base: IngestSettings = FAST,
) -> tuple[str, IngestSettings]:
    """A hub.toml camera for ``url`` with the password in a file: the URL with credentials
    and the ingest settings the hub would use for it."""
    secret = tmp_path / "cam.pass"
    secret.write_text((password or "") + "\n")
    secret.chmod(0o600)
    login = f'username = "admin"\npassword_file = "{secret}"\n' if password is not None else ""
    text = f'[[cameras]]\nname = "porch"\nurl = "{url}"\ntransport = "{transport}"\n{login}'
    camera = hubconfig.parse(text).cameras[0]
    assert camera.transport == transport
    return camera.with_credentials(url), camera.ingest_settings(base)


async def _serve(**kwargs: object) -> RtspServer:
    stream = box_stream("h264", duration=2.0, motion=(0.2, 1.8))
    server = RtspServer({"/main": stream}, port=0, **kwargs)  # type: ignore[arg-type]
    await server.start()
    return server


@contextlib.asynccontextmanager
async def _reading(
    server: RtspServer, camera: tuple[str, IngestSettings]
) -> AsyncIterator[tuple[Ingest, Captured]]:
    """The hub's ingest reading ``camera`` (URL with credentials, settings) from ``server``;
    both stop at the end."""
    captured = Captured()
    ingest = Ingest(camera[0], captured, camera[1], name="porch")
    ingest.start()
    try:
        yield ingest, captured
    finally:
        await asyncio.to_thread(ingest.stop)
        await server.close()


def _assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text


async def test_auto_stays_on_udp_when_nothing_is_lost_and_carries_audio(tmp_path: Path) -> None:
    server = await _serve(audio=tone(2.0, codec="pcmu"), auth=DigestAuth("admin", SECRET))
    async with _reading(server, _camera(server.urls()[0], tmp_path, "auto")) as (ingest, captured):
        assert await _until(lambda: len(captured.packets("video")) >= 45, 20)
    health = ingest.health()
    info = captured.infos()[0]
    assert server.plays == ["udp"]
    assert info.transport == "udp" and health.transport == "udp" and health.loss == 0.0
    assert info.camera_audio == "pcm_mulaw"  # the camera's G.711 ...
    assert info.audio is not None and info.audio.codec_context.name == "aac"  # ... as AAC
    assert len(captured.packets("audio")) >= 20


async def test_auto_moves_to_tcp_when_udp_loses_packets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # 8 % of the datagrams never arrive; G.711's 50 packets/s make the loss visible quickly
    server = await _serve(udp_loss=0.08, audio=tone(2.0, codec="pcma"))
    base = IngestSettings(
        open_timeout=3.0,
        read_timeout=1.5,
        loss=LossSettings(window=10.0, threshold=0.02, min_expected=80),
    )
    async with _reading(
        server, _camera(server.urls()[0], tmp_path, "auto", password=None, base=base)
    ) as (ingest, captured):
        assert await _until(lambda: ingest.health().transport == "tcp", 30)
        switched = len(captured.packets("video"))
        assert await _until(lambda: len(captured.packets("video")) >= switched + 30, 20)
    health = ingest.health()
    assert server.plays[:2] == ["udp", "tcp"]
    assert "UDP lost" in health.transport_note
    assert [i.transport for i in captured.infos()][:2] == ["udp", "tcp"]
    video = captured.packets("video")
    assert all(b.pts > a.pts for a, b in itertools.pairwise(video))  # one timeline
    assert any("using TCP" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("server_options", "why"),
    [({"udp": False}, "461"), ({"udp_loss": 1.0}, "firewall")],
    ids=["camera-refuses-udp", "udp-blocked"],
)
async def test_auto_uses_tcp_when_udp_does_not_work_at_all(
    tmp_path: Path, server_options: dict[str, object], why: str
) -> None:
    server = await _serve(**server_options)
    async with _reading(server, _camera(server.urls()[0], tmp_path, "auto", password=None)) as (
        ingest,
        captured,
    ):
        assert await _until(lambda: len(captured.packets("video")) >= 20, 30)
    assert server.plays[-1] == "tcp"
    assert why in ingest.health().transport_note


@pytest.mark.parametrize("scheme", ["basic", "digest"])
@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_login_with_each_scheme_over_each_transport(
    tmp_path: Path, scheme: str, transport: str
) -> None:
    auth = BasicAuth("admin", SECRET) if scheme == "basic" else DigestAuth("admin", SECRET)
    server = await _serve(auth=auth)
    async with _reading(server, _camera(server.urls()[0], tmp_path, transport)) as (
        ingest,
        captured,
    ):
        assert await _until(lambda: len(captured.packets("video")) >= 15, 20)
    assert server.plays == [transport]
    assert ingest.health().reconnects == 0


@pytest.mark.parametrize("scheme", ["basic", "digest"])
async def test_wrong_password_is_a_health_state_not_a_reconnect_loop(
    tmp_path: Path, scheme: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    auth = BasicAuth("admin", "the-right-one") if scheme == "basic" else DigestAuth("admin", "x")
    server = await _serve(auth=auth)
    # Ordinary reconnects would come every 0.1 s; a refused login waits a minute.
    camera = _camera(server.urls()[0], tmp_path, "tcp")
    async with _reading(server, camera) as (ingest, captured):
        assert await _until(lambda: ingest.health().state == "unauthorized", 15)
        refused = auth.refused
        await asyncio.sleep(1.5)  # fifteen ordinary backoff periods
        assert auth.refused == refused  # no retry yet
        health = ingest.health()
    assert health.state == "unauthorized"
    assert "camera porch" in health.last_error and "password_file" in health.last_error
    assert not server.plays
    disconnects = [e.reason for e in captured.events if isinstance(e, Disconnected)]
    assert len(disconnects) == 1
    _assert_no_secret(health.last_error, *disconnects, caplog.text)
    assert any(
        r.levelno == logging.ERROR and "camera porch" in r.getMessage() for r in caplog.records
    )


async def test_a_camera_that_wants_a_login_says_so_when_none_is_configured(
    tmp_path: Path,
) -> None:
    server = await _serve(auth=DigestAuth("admin", SECRET))
    camera = _camera(server.urls()[0], tmp_path, "tcp", password=None)
    async with _reading(server, camera) as (ingest, _):
        assert await _until(lambda: ingest.health().state == "unauthorized", 15)
    assert "asks for a login" in ingest.health().last_error


def _health_after(
    camera: tuple[str, IngestSettings], until: Callable[[Captured, Health], bool]
) -> tuple[Captured, Health]:
    captured = Captured()
    ingest = Ingest(camera[0], captured, camera[1], name="porch")
    ingest.start()
    deadline = time.monotonic() + 25
    try:
        health = ingest.health()
        while time.monotonic() < deadline and not until(captured, health):
            time.sleep(0.05)
            health = ingest.health()
    finally:
        ingest.stop()
    return captured, health


@pytest.mark.gstreamer
@pytest.mark.parametrize(
    ("scheme", "transport", "audio"),
    [("basic", "udp", "pcma"), ("digest", "tcp", "opus"), ("digest", "auto", "aac")],
)
def test_gstreamer_server_with_each_scheme_and_transport(
    tmp_path: Path, scheme: str, transport: str, audio: str
) -> None:
    missing = gstreamer_available()
    if missing:
        pytest.skip(missing)
    stream = box_stream("h264", duration=2.0)
    h264 = tmp_path / "cam.h264"
    h264.write_bytes(b"".join(u.data for u in stream.units))
    secret = tmp_path / "gst.pass"
    secret.write_text(SECRET + "\n")
    port = free_port()
    with gstreamer(port, h264, 15.0, auth=scheme, password_file=secret, audio=audio) as server:
        url = server.urls[0]
        good = _camera(url, tmp_path, transport)
        captured, health = _health_after(
            good, lambda c, _h: len(c.packets("video")) >= 30 and len(c.packets("audio")) >= 5
        )
        bad = _camera(url, tmp_path, transport, password="wrong")
        _, refused = _health_after(bad, lambda _c, h: h.state == "unauthorized")
    assert len(captured.packets("video")) >= 30
    info = captured.infos()[0]
    assert info.transport == ("udp" if transport == "auto" else transport)
    expected = {"pcma": "pcm_alaw", "opus": "opus", "aac": "aac"}[audio]
    assert info.camera_audio == expected
    assert info.audio is not None
    assert info.audio.codec_context.name == ("opus" if audio == "opus" else "aac")
    assert health.state == "connected"
    assert refused.state == "unauthorized" and "camera porch" in refused.last_error
    _assert_no_secret(refused.last_error)
