"""Live fragments in a real browser: Debian's headless Chromium plays them through Media Source
Extensions, one ``appendBuffer`` per fragment, as the web UI will. Skipped without Chromium
and Playwright (``scripts/system-deps.sh`` and the dev extra install both)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from privastead.clock import FakeClock
from privastead.media.fmp4 import mime_codec
from privastead.media.live import LiveFragment, LiveSession, LiveSettings
from privastead.media.transcode import FragmentTranscoder
from support.browser import chromium, needs_chromium
from support.frames import BoxSource
from support.packets import demux, encode_mp4

pytestmark = needs_chromium

PLAY = """
async ({mime, chunks}) => {
  const video = document.createElement('video');
  video.muted = true;
  document.body.appendChild(video);
  const source = new MediaSource();
  video.src = URL.createObjectURL(source);
  await new Promise(r => source.addEventListener('sourceopen', r, {once: true}));
  const buffer = source.addSourceBuffer(mime);
  for (const chunk of chunks) {
    buffer.appendBuffer(Uint8Array.from(atob(chunk), c => c.charCodeAt(0)));
    await new Promise((ok, fail) => {
      buffer.addEventListener('updateend', ok, {once: true});
      buffer.addEventListener('error', () => fail(new Error('append failed')), {once: true});
    });
  }
  const ranges = [];
  for (let i = 0; i < buffer.buffered.length; i++)
    ranges.push([buffer.buffered.start(i), buffer.buffered.end(i)]);
  await video.play();
  const before = video.currentTime;
  await new Promise(r => setTimeout(r, 400));
  return {ranges, readyState: video.readyState, before, after: video.currentTime,
          error: video.error ? video.error.message : null};
}
"""


def _play(mime: str, chunks: list[bytes]) -> dict[str, Any]:
    pytest.importorskip("playwright.sync_api")
    with chromium() as browser:
        page = browser.new_page()
        page.set_content("<html><body></body></html>")
        supported = page.evaluate("m => MediaSource.isTypeSupported(m)", mime)
        assert supported, mime
        data = [base64.b64encode(c).decode() for c in chunks]
        result: dict[str, Any] = page.evaluate(PLAY, {"mime": mime, "chunks": data})
        return result


def _session(codec: str, skip_at: int | None) -> list[LiveFragment]:
    info, packets = demux(encode_mp4(BoxSource(320, 240, 15, 4.0, motion=(0.0, 4.0)), codec))
    session = LiveSession(info, None, LiveSettings(frames_per_fragment=3), FakeClock())
    for i, packet in enumerate(packets):
        if i == skip_at:
            session.behind()
        session.push(packet)
    session.stop()
    return list(iter(lambda: session.get(0), None))


def test_chromium_plays_few_frame_fragments_even_across_a_skip() -> None:
    fragments = _session("h264", skip_at=20)  # frames 20..29 skipped, resumes at keyframe 30
    mime = f'video/mp4; codecs="{mime_codec(fragments[0].data)}"'
    result = _play(mime, [f.data for f in fragments])
    assert result["error"] is None
    assert len(result["ranges"]) == 1  # one continuous buffered range: no stall at the skip
    start, end = result["ranges"][0]
    assert start < 0.05 and end == pytest.approx(50 / 15, abs=0.1)  # 60 frames - 10 skipped
    assert result["readyState"] >= 2 and result["after"] > result["before"]


def test_chromium_plays_h265_live_after_transcoding() -> None:
    fragments = _session("h265", skip_at=None)
    core = FragmentTranscoder()
    chunks = [out for f in fragments for out in core.push(f.data)] + core.close()
    mime = f'video/mp4; codecs="{mime_codec(chunks[0])}"'
    assert mime_codec(chunks[0]).startswith("avc1.")
    result = _play(mime, chunks)
    assert result["error"] is None and len(result["ranges"]) == 1
    assert result["readyState"] >= 2 and result["after"] > result["before"]
