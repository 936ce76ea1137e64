"""The local web UI in a real browser: Debian's headless Chromium driven by Playwright (no
browser download). Loads every page and saves a screenshot of each under artifacts/ui/, plays
a clip (``readyState >= 2``, ``currentTime`` advances), plays a livestream through Media Source
Extensions, pairs, and checks that a page of another origin cannot reach the UI."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from privastead.client.ui.fake import FakeCamera, FakeSource, demo_source, synthetic_clip
from privastead.client.ui.server import UiServer
from privastead.client.ui.source import Camera, Event, Health
from support.browser import chromium, needs_chromium

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the dev extra)")


class Running:
    """The UI server on its own event loop in a thread (Playwright's sync API owns the test's)."""

    def __init__(self, source: FakeSource) -> None:
        self.source = source
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = UiServer(source)
        self.url = asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(30)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    source = demo_source(tmp_path_factory.mktemp("ui"), now=time.time(), events_per_camera=4)
    running = Running(source)
    yield running
    running.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1180, "height": 800})
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    yield p
    context.close()
    assert errors == []


@pytest.fixture
def shots(artifacts_dir: Path) -> Path:
    path = artifacts_dir / "ui"
    path.mkdir(exist_ok=True)
    return path


IMAGES_LOADED = (
    "() => [...document.querySelectorAll('.thumb img')].every(i => i.complete && i.naturalWidth)"
)


def _open(page: Any, ui: Running, route: str) -> None:
    page.goto(ui.url + "#/" + route)
    name = route.split("/", maxsplit=1)[0]
    page.wait_for_selector(f"body[data-ready='{name}']")


def _plays(page: Any, selector: str) -> None:
    """The video reaches HAVE_CURRENT_DATA and its time moves forward."""
    # Function predicates, not expression strings: the page's CSP forbids eval, as it should.
    page.wait_for_function(
        "s => document.querySelector(s)?.readyState >= 2", arg=selector, timeout=20000
    )
    start = page.evaluate("s => document.querySelector(s).currentTime", selector)
    page.wait_for_function(
        "([s, t]) => document.querySelector(s).currentTime > t + 0.3",
        arg=[selector, start],
        timeout=20000,
    )
    assert page.evaluate("s => document.querySelector(s).error", selector) is None


def test_cameras_page(page: Any, ui: Running, shots: Path) -> None:
    _open(page, ui, "cameras")
    page.wait_for_function(IMAGES_LOADED)
    cards = page.locator("[data-camera]")
    assert cards.count() == 3
    assert page.locator("[data-camera='garage'] .badge").inner_text() == "Hub offline"
    assert "cabin is offline" in page.locator("#banner").inner_text()
    assert page.locator("[data-camera='front-door'] .box").count() == 1  # boxes over the thumb
    page.screenshot(path=shots / "cameras.png", full_page=True)
    page.emulate_media(color_scheme="dark")
    page.screenshot(path=shots / "cameras-dark.png", full_page=True)


def test_event_timeline(page: Any, ui: Running, shots: Path) -> None:
    _open(page, ui, "camera/garden")
    page.wait_for_function(IMAGES_LOADED)
    assert page.locator("[data-event]").count() == 4
    assert page.locator("[data-event] .score").first.inner_text().startswith("score 0.")
    page.screenshot(path=shots / "timeline.png", full_page=True)


def test_clip_plays(page: Any, ui: Running, shots: Path) -> None:
    _open(page, ui, "camera/front-door")
    page.locator("[data-event]").first.click()
    page.wait_for_selector("body[data-ready='event']")
    _plays(page, "#clip")
    page.wait_for_selector("text=Download MP4")
    page.screenshot(path=shots / "clip.png", full_page=True)


def test_live_view_plays_and_stops(page: Any, ui: Running, shots: Path) -> None:
    stopped = ui.source.live_stopped
    _open(page, ui, "live/garden")
    _plays(page, "#live")
    page.wait_for_selector(".pill.live")
    page.screenshot(path=shots / "live.png", full_page=True)
    page.goto(ui.url + "#/cameras")  # leaving the page closes the socket: the stream stops
    page.wait_for_selector("body[data-ready='cameras']")
    deadline = time.monotonic() + 10
    while ui.source.live_stopped == stopped and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ui.source.live_stopped == stopped + 1


def test_a_page_still_loading_does_not_draw_over_the_live_view(page: Any, ui: Running) -> None:
    """Leave the cameras page before its data arrives: it must neither replace the live page
    nor its cleanup (which would leave the livestream running after the live page is left)."""
    _open(page, ui, "devices")
    held: list[Any] = []
    # Playwright needs a Python function here, not a builtin method: hence the lambda.
    page.route("**/api/cameras", lambda route: held.append(route))  # noqa: PLW0108
    page.evaluate("() => { location.hash = '#/cameras'; }")
    while not held:
        page.wait_for_timeout(20)
    page.evaluate("() => { location.hash = '#/live/garden'; }")
    _plays(page, "#live")
    for request in held:
        request.continue_()
    page.unroute("**/api/cameras")
    page.wait_for_timeout(1000)  # the cameras page's data has arrived by now
    assert page.locator("#live").count() == 1 and page.locator("[data-camera]").count() == 0
    assert page.evaluate("() => document.body.dataset.ready") == "live"
    page.evaluate("() => { location.hash = '#/devices'; }")
    page.wait_for_selector("body[data-ready='devices']")
    deadline = time.monotonic() + 10
    while ui.source.live_stopped < ui.source.live_started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ui.source.live_stopped == ui.source.live_started  # no livestream left running


def test_live_view_of_offline_camera_says_so(page: Any, ui: Running) -> None:
    _open(page, ui, "live/garage")
    page.wait_for_selector(".status.error")
    assert "no livestream" in page.locator(".status.error").inner_text()


def test_devices_page(page: Any, ui: Running, shots: Path) -> None:
    _open(page, ui, "devices")
    page.wait_for_selector("td.code")
    assert "31842 90517" in page.locator("td.code").first.inner_text()
    page.screenshot(path=shots / "devices.png", full_page=True)


def test_pairing_page(page: Any, ui: Running, shots: Path) -> None:
    _open(page, ui, "pair")
    approval = asyncio.Event()
    ui.source.pair_approval = approval
    try:
        page.fill("#code", "privastead:EXAMPLE-PAIRING-CODE")
        page.click("#pair")
        # While the hub's owner confirms, the page shows what to compare with the hub.
        page.wait_for_selector("#waiting-safety")
        assert page.locator("#waiting-safety").inner_text() == "31842 90517 22406 77153"
        assert page.locator("#fingerprint").inner_text() == "d461 2729 5f5a 8ffa"
        assert page.locator("#safety").count() == 0  # not paired before the owner decides
        page.screenshot(path=shots / "pair-waiting.png", full_page=True)
        ui.loop.call_soon_threadsafe(approval.set)  # the owner approves on the hub
        page.wait_for_selector("#safety")
    finally:
        ui.source.pair_approval = None
    assert page.locator("#safety").inner_text() == "31842 90517 22406 77153"
    assert page.locator("#waiting").count() == 0  # the waiting panel goes once decided
    assert page.locator(".steps li").count() == 5
    page.screenshot(path=shots / "pair.png", full_page=True)


def test_pairing_page_with_a_short_code_asks_for_the_relay(page: Any, ui: Running) -> None:
    _open(page, ui, "pair")
    page.fill("#code", "417-acorn-shiny")
    page.click("#pair")
    page.wait_for_selector("#pair-error")
    assert "relay URL" in page.locator("#pair-error").inner_text()
    page.fill("#relay", "https://relay.example.org")
    page.click("#pair")
    page.wait_for_selector("#safety")
    assert page.locator("#safety").inner_text() == "31842 90517 22406 77153"


def test_requests_without_secret_are_refused(page: Any, ui: Running) -> None:
    base = ui.url.rsplit("/", 2)[0]
    response = page.goto(base + "/")
    assert response is not None and response.status == 403
    response = page.goto(base + "/not-the-secret/api/cameras")
    assert response is not None and response.status == 403


def test_another_origin_cannot_use_the_ui(page: Any, ui: Running) -> None:
    """A web page the owner visits knows the secret (worst case) and still gets nothing."""
    started = ui.source.live_started
    page.route(
        "http://evil.test/",
        lambda route: route.fulfill(content_type="text/html", body="<html><body>hi</body></html>"),
    )
    page.goto("http://evil.test/")
    ws_url = ui.url.replace("http://", "ws://") + "ws/live/garden"
    result = page.evaluate(
        """async ([api, ws]) => {
            let fetched;
            try { fetched = (await fetch(api)).status; } catch (e) { fetched = 'blocked'; }
            const socket = await new Promise(done => {
                const s = new WebSocket(ws);
                s.onopen = () => done('open');
                s.onerror = () => done('refused');
            });
            return {fetched, socket};
        }""",
        [ui.url + "api/cameras", ws_url],
    )
    assert result == {"fetched": "blocked", "socket": "refused"}
    assert ui.source.live_started == started


def test_h265_clip_and_live_are_transcoded_for_chromium(
    browser: Any, tmp_path: Path, artifacts_dir: Path
) -> None:
    """Chromium has no software H.265: the page sees ``hvc1``, asks for ``?h264=1``, and the
    client's real transcoder (media/transcode.py) makes H.264 for it."""
    clip = synthetic_clip(2.0, codec="hevc")
    path = tmp_path / "hevc.mp4"
    path.write_bytes(b"".join(clip))
    box = (0.1, 0.1, 0.2, 0.2)
    event = Event("f" * 32, "porch-4k", time.time() - 30, 0.9, (box,), False, "complete")
    source = FakeSource(clips={event.event_id: path})
    camera = Camera("porch-4k", "home", Health.ONLINE, "ok", time.time(), None)
    live = synthetic_clip(4.0, codec="hevc")
    source.cameras_["porch-4k"] = FakeCamera(camera, [event], live=live)
    running = Running(source)
    context = browser.new_context()
    try:
        page = context.new_page()
        hevc = 'video/mp4; codecs="hvc1.1.6.L60.90"'
        assert not page.evaluate("m => MediaSource.isTypeSupported(m)", hevc)
        page.goto(running.url + "#/event/" + event.event_id)
        _plays(page, "#clip")
        page.goto(running.url + "#/live/porch-4k")
        _plays(page, "#live")
        assert source.h264_requests == [event.event_id, "porch-4k"]
    finally:
        context.close()
        running.close()


def test_new_event_appears_without_reload(page: Any, ui: Running, shots: Path) -> None:
    _open(page, ui, "camera/front-door")
    before = page.locator("[data-event]").count()
    fake = ui.source.cameras_["front-door"]
    newest = fake.events[0]
    arrived = Event("ab" * 16, "front-door", time.time(), 0.93, newest.boxes, True, "partial")
    ui.source.thumbnails[arrived.event_id] = ui.source.thumbnails[newest.event_id]
    fake.events.append(arrived)  # what the receive loop does when a notification decrypts
    page.wait_for_selector(f"[data-event='{arrived.event_id}']", timeout=15000)
    assert page.locator("[data-event]").count() == before + 1


def test_small_screen_layout(page: Any, ui: Running, shots: Path) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    _open(page, ui, "cameras")
    page.wait_for_function(IMAGES_LOADED)
    widths = page.evaluate(
        "() => [...document.querySelectorAll('[data-camera]')].map(c => c.offsetWidth)"
    )
    assert all(w <= 390 for w in widths)  # one column, nothing wider than the phone
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.screenshot(path=shots / "cameras-phone.png", full_page=True)


def test_relay_unreachable_is_explained(page: Any, ui: Running, shots: Path) -> None:
    fakes = ui.source.cameras_
    saved = {name: fake.camera for name, fake in fakes.items()}
    try:
        for fake in fakes.values():
            fake.camera = replace(
                fake.camera,
                health=Health.RELAY_UNREACHABLE,
                detail="the relay has not answered for 240 s",
            )
        _open(page, ui, "cameras")
        page.wait_for_function(IMAGES_LOADED)
        assert "relay cannot be reached" in page.locator("#banner").inner_text()
        assert page.locator(".badge.relay_unreachable").count() == 3
        page.screenshot(path=shots / "cameras-relay-unreachable.png", full_page=True)
    finally:
        for name, camera in saved.items():
            fakes[name].camera = camera


BANNER_SAYS = (
    "t => !document.getElementById('banner').hidden"
    " && document.getElementById('banner').innerText.includes(t)"
)
BANNER_GONE = "() => document.getElementById('banner').hidden"


def test_withheld_and_removed_show_on_every_page_and_clear_without_reload(
    page: Any, ui: Running, shots: Path
) -> None:
    fakes = ui.source.cameras_
    saved = {name: fake.camera for name, fake in fakes.items()}
    event_id = fakes["front-door"].events[0].event_id
    try:
        withheld = "the relay is withholding 3 message(s) of front-door since 2026-01-02 03:04:05"
        for fake in fakes.values():
            if fake.camera.hub == "home":
                fake.camera = replace(fake.camera, health=Health.WITHHELD, detail=withheld)
            else:
                fake.camera = replace(
                    fake.camera,
                    health=Health.REMOVED,
                    detail="this device was removed from cabin (the relay says so)",
                )
        for route in ("devices", "pair", f"event/{event_id}", "camera/front-door", "cameras"):
            _open(page, ui, route)
            page.wait_for_function(BANNER_SAYS, arg="withholding", timeout=10000)
            text = page.locator("#banner").inner_text()
            assert withheld in text, (route, text)
            assert "removed from cabin" in text, (route, text)
            assert "bad" in (page.locator("#banner").get_attribute("class") or "")
        assert page.locator(".badge.withheld").count() == 2
        assert page.locator(".badge.removed").count() == 1
        page.screenshot(path=shots / "cameras-withheld-removed.png", full_page=True)
        # The relay delivers again: the banner goes on the page the user is looking at.
        _open(page, ui, "devices")
        for name, camera in saved.items():
            fakes[name].camera = replace(camera, health=Health.ONLINE)
        page.wait_for_function(BANNER_GONE, timeout=15000)
    finally:
        for name, camera in saved.items():
            fakes[name].camera = camera


def test_a_camera_offline_gets_its_badge_and_the_banner_on_every_page(
    page: Any, ui: Running, shots: Path
) -> None:
    fakes = ui.source.cameras_
    saved = {name: fake.camera for name, fake in fakes.items()}
    event_id = fakes["garden"].events[0].event_id
    since = time.time() - 300
    try:
        garden = fakes["garden"]
        garden.camera = replace(
            garden.camera,
            health=Health.CAMERA_OFFLINE,
            detail="camera garden offline since 2026-01-02 03:04:05",
            offline_since=since,
        )
        for route in ("devices", f"event/{event_id}", "cameras"):
            _open(page, ui, route)
            page.wait_for_function(BANNER_SAYS, arg="Camera garden offline since", timeout=10000)
            text = page.locator("#banner").inner_text()
            assert "the hub gets no picture from it" in text, (route, text)
            assert "front-door" not in text, text  # only the camera that is gone
        assert page.locator("[data-camera='garden'] .badge").inner_text() == "Camera offline"
        assert page.locator("[data-camera='front-door'] .badge").inner_text() == "Online"
        page.screenshot(path=shots / "cameras-camera-offline.png", full_page=True)
        _open(page, ui, f"event/{event_id}")  # the event page shows the full event id
        page.wait_for_selector("dd.event-id")
        assert page.locator("dd.event-id").inner_text() == event_id
        garden.camera = saved["garden"]  # it comes back: the line goes without a reload
        page.wait_for_function(
            "() => !document.getElementById('banner').innerText.includes('garden')",
            timeout=15000,
        )
    finally:
        for name, camera in saved.items():
            fakes[name].camera = camera


def test_a_full_hub_disk_gets_its_badge_and_the_banner_on_every_page(
    page: Any, ui: Running, shots: Path
) -> None:
    fakes = ui.source.cameras_
    saved = {name: fake.camera for name, fake in fakes.items()}
    event_id = fakes["front-door"].events[0].event_id
    detail = (
        "the hub's disk is full (0.05 GB free of 32.00 GB on /srv/hub: recording paused until "
        "room is made); it keeps event clips and its keys and deletes its oldest continuous "
        "recording to make room"
    )
    try:
        for fake in fakes.values():
            if fake.camera.hub == "home":
                fake.camera = replace(fake.camera, health=Health.HUB_DISK, detail=detail)
        for route in ("devices", f"event/{event_id}", "cameras"):
            _open(page, ui, route)
            page.wait_for_function(BANNER_SAYS, arg="the hub's disk is full", timeout=10000)
            text = page.locator("#banner").inner_text()
            assert "Free space on the hub" in text and text.count("disk is full") == 1, text
        assert page.locator(".badge.hub_disk").count() == 2
        assert page.locator(".badge.hub_disk").first.inner_text() == "Hub disk full"
        page.screenshot(path=shots / "cameras-hub-disk-full.png", full_page=True)
        for name, camera in saved.items():  # room was made: the banner goes without a reload
            fakes[name].camera = replace(camera, health=Health.ONLINE)
        page.wait_for_function(BANNER_GONE, timeout=15000)
    finally:
        for name, camera in saved.items():
            fakes[name].camera = camera


def _day_of(t: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(t))


def _events_on(ui: Running, camera: str, day: str) -> int:
    return sum(1 for e in ui.source.cameras_[camera].events if e.at and _day_of(e.at) == day)


def _widest_day(span: tuple[float, float]) -> str:
    """The day on which most of ``span`` lies: run just after midnight, today holds a sliver
    of a recording that began the evening before."""
    start, end = span
    end_day = _day_of(end - 60)
    midnight = time.mktime(time.strptime(end_day, "%Y-%m-%d"))
    return end_day if end - max(start, midnight) >= min(end, midnight) - start else _day_of(start)


def _clear_of_marks(page: Any, span: Any) -> dict[str, float]:
    """A point of ``span`` that no event mark covers (marks are drawn over the spans, and a
    click on one opens its event)."""
    box = span.bounding_box()
    marks = [b for b in (m.bounding_box() for m in page.locator("#timeline .mark").all()) if b]
    for share in (0.5, 0.3, 0.7, 0.15, 0.85, 0.05, 0.95):
        x = box["x"] + share * box["width"]
        if not any(m["x"] - 1 <= x <= m["x"] + m["width"] + 1 for m in marks):
            return {"x": share * box["width"], "y": box["height"] / 2}
    raise AssertionError("event marks cover every point tried of the span")


def test_recording_timeline_plays_a_clicked_span(page: Any, ui: Running, shots: Path) -> None:
    spans = ui.source.recordings["front-door"]
    day = _widest_day(spans[-1])
    _open(page, ui, f"timeline/front-door/{day}")
    drawn = page.locator("#timeline .span")
    assert drawn.count() == sum(1 for a, b in spans if _day_of(a) == day or _day_of(b) == day)
    assert page.locator("#timeline .mark").count() == _events_on(ui, "front-door", day)
    played = len(ui.source.played)
    drawn.last.click(position=_clear_of_marks(page, drawn.last))
    page.wait_for_function(
        "s => document.querySelector(s)?.duration > 0", arg="#playback", timeout=30000
    )
    _plays(page, "#playback")
    duration = page.evaluate("() => document.querySelector('#playback').duration")
    assert 0 < duration < 1e6  # finite: the init segment states it, so the page can seek
    assert len(ui.source.played) == played + 1
    _camera, start, end = ui.source.played[-1]
    assert spans[-1][0] <= start < end <= spans[-1][1]  # the clicked stretch, nothing else
    page.wait_for_selector("text=Download MP4")
    page.screenshot(path=shots / "recordings.png", full_page=True)


def test_recording_timeline_without_recording_shows_the_events(page: Any, ui: Running) -> None:
    first = min(e.at or 0.0 for e in ui.source.cameras_["garden"].events)
    day = _day_of(first)
    _open(page, ui, f"timeline/garden/{day}")
    assert page.locator("#timeline .span").count() == 0
    assert page.locator("#timeline .mark").count() == _events_on(ui, "garden", day) > 0
    assert "No continuous recording" in page.locator("#timeline-summary").inner_text()
    page.locator("#timeline .mark").first.click()  # an event mark opens the event
    page.wait_for_selector("body[data-ready='event']")


def test_an_h265_recording_is_transcoded_for_chromium(browser: Any, tmp_path: Path) -> None:
    """The page cannot know the codec before the recording arrives: Chromium refuses the
    H.265 file, the page asks again with ``h264=1`` and the client transcodes it."""
    now = time.time()
    source = FakeSource(media_dir=tmp_path, recording_codec="hevc")
    camera = Camera("porch-4k", "home", Health.ONLINE, "ok", now, None)
    source.cameras_["porch-4k"] = FakeCamera(camera, [])
    source.recordings["porch-4k"] = [(now - 1800, now - 60)]
    running = Running(source)
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(running.url + f"#/timeline/porch-4k/{_day_of(now - 600)}")
        page.wait_for_selector("body[data-ready='timeline']")
        page.locator("#timeline .span").last.click()
        _plays(page, "#playback")
        assert source.h264_requests == ["recording porch-4k"]
    finally:
        context.close()
        running.close()
