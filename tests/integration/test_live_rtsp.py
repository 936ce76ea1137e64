"""A livestream from a real RTSP camera (camsim): ingest -> ring -> live session -> decode.

The frames decoded from the live fragments must be the frames camsim drew (luma within codec
tolerance), found by their camera timestamps; AAC audio rides along.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time

import av
import pytest

from privastead.camsim.audio import tone
from privastead.camsim.encoder import encode
from privastead.camsim.scene import make_scene
from privastead.camsim.server import RtspServer
from privastead.media.ingest import Ingest, IngestEvent, MediaPacket, StreamInfo
from privastead.media.live import LiveFragment, LiveSession, LiveSettings
from privastead.media.ring import PacketRing
from support.luma import block_error, luma

FPS = 15
# a person crosses from 2.5 s to 10.5 s of each 20 s loop
SCENE = make_scene("walkers", width=192, height=112, fps=FPS, duration=20.0, seed=0)


class _Hub:
    """The part of a hub camera that a livestream needs: a ring, then a session."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.info: StreamInfo | None = None
        self.ring = PacketRing(keep_seconds=2.0)
        self.session: LiveSession | None = None
        self.video_pushed = 0
        self.newest = 0.0

    def sink(self, event: IngestEvent) -> None:
        with self.lock:
            if isinstance(event, StreamInfo):
                self.info = event
            elif isinstance(event, MediaPacket):
                self.ring.push(event)
                self.newest = event.pts
                if self.session is not None:
                    self.session.push(event)
                    self.video_pushed += event.kind == "video"

    def start_live(self) -> LiveSession:
        with self.lock:
            assert self.info is not None
            self.session = LiveSession(self.info, self.ring, LiveSettings(frames_per_fragment=3))
            self.video_pushed = sum(p.kind == "video" for p in self.ring.since(float("inf")))
            return self.session


def _watch(url: str) -> tuple[list[LiveFragment], int]:
    hub = _Hub()
    ingest = Ingest(url, hub.sink)
    ingest.start()
    try:
        deadline = time.monotonic() + 20
        while hub.newest < 3.2 and time.monotonic() < deadline:  # mid-GOP, a person in view
            time.sleep(0.02)
        session = hub.start_live()
        fragments: list[LiveFragment] = []
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            fragment = session.get(0.1)
            if fragment is not None:
                fragments.append(fragment)
        session.stop("viewer left")
        fragments += list(iter(lambda: session.get(0), None))
    finally:
        ingest.stop()
    return fragments, hub.video_pushed


@pytest.fixture(scope="module")
def watched() -> tuple[list[LiveFragment], int]:
    stream = encode(SCENE, "h264", gop_seconds=1.0)
    result: dict[str, tuple[list[LiveFragment], int]] = {}

    async def serve() -> None:
        server = RtspServer({"/main": stream}, port=0, audio=tone(20.0))
        await server.start()
        try:
            result["v"] = await asyncio.to_thread(_watch, server.urls()[0])
        finally:
            await server.close()

    asyncio.run(serve())
    return result["v"]


def test_live_starts_at_the_rings_keyframe_and_carries_audio(watched) -> None:  # type: ignore[no-untyped-def]
    fragments, pushed = watched
    assert fragments[0].is_init and fragments[1].keyframe
    assert fragments[1].source_first > 2.9  # the newest GOP, not the ring's oldest one
    with av.open(io.BytesIO(b"".join(f.data for f in fragments))) as clip:
        assert clip.streams.audio and clip.streams.audio[0].codec_context.name == "aac"
        video = list(clip.decode(clip.streams.video[0]))
    with av.open(io.BytesIO(b"".join(f.data for f in fragments))) as clip:
        audio = list(clip.decode(clip.streams.audio[0]))
    assert len(video) == sum(f.frames for f in fragments) == pushed
    assert len(audio) > 10
    assert all(f.arrived > 0 and f.emitted >= f.arrived for f in fragments[1:] if f.frames)


def test_live_frames_are_what_camsim_drew(watched) -> None:  # type: ignore[no-untyped-def]
    fragments, _ = watched
    start = fragments[1].source_first  # camera time of the session's first frame
    with av.open(io.BytesIO(b"".join(f.data for f in fragments))) as clip:
        frames = list(clip.decode(clip.streams.video[0]))
    # The ingest's timeline starts at the first keyframe it could use, which is camsim's
    # frame 0 or, when the first RTP packets carry no timestamp yet, a later keyframe (GOP 15).
    # Pick that one unknown from the first frame, then every other frame must agree with it.
    first = luma(frames[0])
    base = round(start * FPS)
    lead = min(range(0, 61, 15), key=lambda k: block_error(first, SCENE.render(base + k)[0]))
    for frame in frames[::5]:
        index = round((start + frame.time) * FPS) + lead
        assert SCENE.objects_at(index)  # someone is in the picture
        got = luma(frame)
        right = block_error(got, SCENE.render(index)[0])
        neighbour = min(block_error(got, SCENE.render(index + d)[0]) for d in (-1, 1))
        assert right < 6.0 and neighbour > max(6.0, 2 * right), (index, right, neighbour)
