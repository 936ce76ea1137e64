"""Camera sound in a real browser: a clip and the live page of the web UI play an audio track.

The media path is real: camsim sends its stepping tone as G.711 mu-law over RTSP, the hub's
ingest transcodes it to AAC beside the stream-copied H.264, the clip writer records a clip and
a ``LiveSession`` cuts live fragments from the running stream. The UI server serves both, its
page plays them in Debian's headless Chromium (Playwright), and the page listens: Chromium's
decoded-audio counter grows, and a Web Audio analyser tapped on the <video> hears the tone.
The source is an in-memory ``FakeSource`` (no relay, no MLS: those are tested end to end
elsewhere) whose livestream is the real ``LiveSession``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from privastead.camsim.audio import tone
from privastead.camsim.server import RtspServer
from privastead.client.ui.fake import FakeCamera, FakeSource
from privastead.client.ui.server import UiServer
from privastead.client.ui.source import Camera, Event, Health, LiveStream
from privastead.media.ingest import Ingest, IngestEvent, MediaPacket, StreamInfo
from privastead.media.live import LiveSession
from privastead.media.recorder import ClipWriter
from support.browser import chromium, needs_chromium
from support.rtsp import box_stream, capture

pytestmark = [pytest.mark.browser, needs_chromium]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the dev extra)")

EVENT = "a" * 32
# Unmute, tap the element with an analyser, listen for a second: decoded audio bytes, the
# loudest frequency and the level. Functions, not strings: the page's CSP forbids eval.
LISTEN = """
async (selector) => {
  const video = document.querySelector(selector);
  video.muted = false;
  video.volume = 1;
  const context = new AudioContext();
  const tap = context.createMediaElementSource(video);
  const analyser = context.createAnalyser();
  analyser.fftSize = 8192;
  tap.connect(analyser);
  analyser.connect(context.destination);
  await context.resume();
  const before = video.webkitAudioDecodedByteCount;
  const bins = new Float32Array(analyser.frequencyBinCount);
  const wave = new Float32Array(analyser.fftSize);
  let peak = 0, level = 0;
  for (let i = 0; i < 10; i++) {
    await new Promise(r => setTimeout(r, 100));
    analyser.getFloatFrequencyData(bins);
    analyser.getFloatTimeDomainData(wave);
    let best = 0;
    for (let b = 1; b < bins.length; b++) if (bins[b] > bins[best]) best = b;
    const rms = Math.sqrt(wave.reduce((s, x) => s + x * x, 0) / wave.length);
    if (rms > level) { level = rms; peak = best * context.sampleRate / analyser.fftSize; }
  }
  return {decoded: video.webkitAudioDecodedByteCount - before, peak, level,
          state: context.state, time: video.currentTime};
}
"""


class LiveCamsim:
    """camsim on the UI's loop and a hub-side ``LiveSession`` per viewer, fed by ``Ingest``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        stream = box_stream("h264", duration=4.0, motion=(0.5, 3.5))
        self.server = RtspServer({"/main": stream}, port=0, audio=tone(4.0, codec="pcmu"))
        asyncio.run_coroutine_threadsafe(self.server.start(), loop).result(30)
        self.loop = loop
        self.sessions: list[LiveSession] = []

    async def live(self) -> AsyncIterator[bytes]:
        box: dict[str, LiveSession] = {}
        started = asyncio.Event()
        loop = asyncio.get_running_loop()

        def sink(event: IngestEvent) -> None:
            if isinstance(event, StreamInfo) and "s" not in box:
                box["s"] = LiveSession(event)
                self.sessions.append(box["s"])
                loop.call_soon_threadsafe(started.set)
            elif isinstance(event, MediaPacket) and "s" in box:
                box["s"].push(event)

        ingest = Ingest(self.server.urls()[0], sink, name="porch")
        ingest.start()
        try:
            await started.wait()
            session = box["s"]
            while session.ended is None or session.queued:
                fragment = await asyncio.to_thread(session.get, 0.5)
                if fragment is not None:
                    yield fragment.data
        finally:
            await asyncio.to_thread(ingest.stop)
            if "s" in box:
                box["s"].stop()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(30)


class Source(FakeSource):
    camsim: LiveCamsim | None = None

    def live(self, camera: str, *, h264: bool = False) -> LiveStream:
        assert self.camsim is not None and camera == "porch" and not h264
        self.live_started += 1
        return self.camsim.live()


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Source]]:
    info, packets = capture(box_stream("h264", duration=4.0), 3.2, audio=tone(4.0, codec="pcmu"))
    writer = ClipWriter("c", info, tmp_path_factory.mktemp("clip") / "clip.mp4")
    for packet in packets:
        writer.write(packet)
    clip = writer.close().path
    event = Event(EVENT, "porch", time.time() - 60, 0.8, (), False, "complete")
    source = Source(clips={EVENT: clip})
    camera = Camera("porch", "home", Health.ONLINE, "ok", time.time(), None)
    source.cameras_["porch"] = FakeCamera(camera, [event], live=[])
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    source.camsim = LiveCamsim(loop)
    server = UiServer(source)
    url = asyncio.run_coroutine_threadsafe(server.start(), loop).result(30)
    yield url, source
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
    source.camsim.close()
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def _playing(page: Any, selector: str) -> None:
    page.wait_for_function(
        "s => document.querySelector(s)?.readyState >= 2", arg=selector, timeout=30000
    )
    start = page.evaluate("s => document.querySelector(s).currentTime", selector)
    page.wait_for_function(
        "([s, t]) => document.querySelector(s).currentTime > t + 0.2",
        arg=[selector, start],
        timeout=30000,
    )


def _assert_hears_the_tone(result: dict[str, Any]) -> None:
    assert result["state"] == "running", result
    assert result["decoded"] > 0, result  # Chromium decoded audio while we listened
    assert result["level"] > 0.01, result  # ... and it reached the audio graph
    assert 400 < result["peak"] < 820, result  # camsim's tone: 440-770 Hz


def test_a_clip_with_camera_sound_plays_its_audio(browser: Any, ui: tuple[str, Source]) -> None:
    url, _ = ui
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(url + "#/event/" + EVENT)
        _playing(page, "#clip")
        info = page.evaluate(
            "async id => (await fetch(location.pathname + 'api/events/' + id)).json()", EVENT
        )
        assert info["clip"]["mime"].endswith(', mp4a.40.2"')  # the UI declares both codecs
        _assert_hears_the_tone(page.evaluate(LISTEN, "#clip"))
    finally:
        context.close()


def test_the_live_page_plays_the_camera_sound(browser: Any, ui: tuple[str, Source]) -> None:
    url, source = ui
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(url + "#/live/porch")
        page.wait_for_selector("#sound")  # the page offers sound: the stream declares audio
        _playing(page, "#live")
        page.click("#sound")
        assert page.evaluate("() => document.querySelector('#live').muted") is False
        _assert_hears_the_tone(page.evaluate(LISTEN, "#live"))
    finally:
        context.close()
    assert source.camsim is not None and source.camsim.sessions
