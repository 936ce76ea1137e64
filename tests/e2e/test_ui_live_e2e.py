"""Live view in a real browser over a real client: relay, camsim, `privastead-hub run` and
`privastead-app ui` processes on loopback, the page driven in Debian's headless Chromium.

The page asks the UI for ``ws/live/door``; the UI process sends a ``LiveRequest`` through the
control group, decrypts the session's fragments and feeds them to Media Source Extensions.
Checked: the video plays (``readyState >= 2``, ``currentTime`` advances), leaving the page
stops the hub's session, and with the hub stopped the page says that the hub does not answer.
With an H.265 camera, which Chromium cannot decode, the page asks for H.264 and the UI
process transcodes the decrypted stream on the fly; the hub still sends the camera's own H.265.
Screenshots go to artifacts/ui/.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_harness import Home, app_cmd, env, running_home

from support.browser import chromium, needs_chromium

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    needs_chromium,
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the dev extra)")

LIVE_TIMEOUT = 8.0  # seconds the UI waits for the hub's answer


class UiProcess:
    """`privastead-app ui` over one client's data directory."""

    def __init__(self, client: Path, log: Path) -> None:
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            app_cmd(
                "--log-level", "INFO", "ui", "--data-dir", str(client), "--poll", "0.5",
                "--live-timeout", str(LIVE_TIMEOUT),
            ),
            env=env(),
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+/\S+/)", line)
        assert found, f"no UI address in {line!r}"
        self.url = found.group(1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()


@pytest.fixture(params=["h264", "h265"])
def camera_home(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Home]:
    """The e2e ``home`` (relay process, camsim demo scene), with the camera's codec varied."""
    with running_home(tmp_path, "--codec", request.param) as home:
        home.codec = request.param  # type: ignore[attr-defined]
        yield home


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def _live_plays(page: Any, url: str, shot: Path, limit: float = 120.0) -> None:
    """Open the live page until it plays; early tries may meet a camera still connecting."""
    deadline = time.monotonic() + limit
    while True:
        page.goto("about:blank")  # a fresh page load each try
        page.goto(url + "#/live/door")
        with contextlib.suppress(sync_api.TimeoutError):
            page.wait_for_function(
                "() => document.querySelector('#live')?.readyState >= 2"
                " || document.querySelector('.status.error') !== null",
                timeout=(LIVE_TIMEOUT + 30) * 1000,
            )
        if page.evaluate("() => document.querySelector('#live')?.readyState >= 2"):
            return
        if time.monotonic() > deadline:
            page.screenshot(path=shot, full_page=True)
            raise AssertionError(f"live view never played: {page.inner_text('main')!r}")
        time.sleep(2.0)


def test_live_view_plays_a_real_hubs_stream_and_says_when_the_hub_is_gone(
    camera_home: Home, browser: Any, artifacts_dir: Path
) -> None:
    home, codec = camera_home, camera_home.codec  # type: ignore[attr-defined]
    shots = artifacts_dir / "ui"
    shots.mkdir(exist_ok=True)
    client = home.root / "laptop"
    home.pair(client, "laptop")
    home.start_hub()
    ui = UiProcess(client, home.root / "ui.log")
    context = browser.new_context(viewport={"width": 1180, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        _live_plays(page, ui.url, shots / f"live-failed-{codec}.png")
        start = page.evaluate("() => document.querySelector('#live').currentTime")
        page.wait_for_function(
            "t => document.querySelector('#live').currentTime > t + 1.0", arg=start, timeout=20000
        )
        page.wait_for_selector(".pill.live")
        assert page.evaluate("() => document.querySelector('#live').error") is None
        assert page.evaluate("() => document.querySelector('#live').videoWidth") == 320
        page.screenshot(path=shots / f"live-real-hub-{codec}.png", full_page=True)
        if codec == "h265":  # so what plays was transcoded to H.264 by the UI process
            hevc = 'video/mp4; codecs="hvc1.1.6.L93.B0"'
            assert not page.evaluate("m => MediaSource.isTypeSupported(m)", hevc)

        page.goto(ui.url + "#/cameras")  # leaving the page sends LiveStop: the hub ends it
        deadline = time.monotonic() + 30
        while not re.search(r"live session \w+… ended \(", home.hub_log.read_text()):
            assert time.monotonic() < deadline, home.hub_log.read_text()[-3000:]
            time.sleep(0.5)

        home.stop_hub()
        page.goto(ui.url + "#/live/door")
        page.wait_for_selector(".status.error", timeout=(LIVE_TIMEOUT + 30) * 1000)
        text = page.locator(".status.error").inner_text()
        assert text.startswith("The hub did not answer within 8 s: it is offline"), text
        page.screenshot(path=shots / f"live-hub-offline-{codec}.png", full_page=True)
        assert errors == []
    finally:
        context.close()
        ui.stop()
