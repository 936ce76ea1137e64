"""An in-memory ``UiSource`` for tests and ``privastead-app ui --demo``, with real media.

The clips, thumbnails and live fragments are real H.264 fMP4 and JPEG, encoded here with PyAV
from a synthetic scene (a box crossing a gradient), so the browser decodes what it would get
from a camera. A livestream loops the encoded fragments, shifting their decode times
(``tfdt``) so the timeline keeps going forward, paced at real time.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from privastead.client.ui.source import (
    NEEDS_RELAY,
    WAITING,
    Camera,
    Clip,
    Device,
    Event,
    Health,
    LiveStream,
    PairingStep,
    UnavailableError,
    clip_mime,
    h264_live,
)
from privastead.errors import NothingRecordedError
from privastead.media.fmp4 import BoxSplitter, fragment_info, track_timescales
from privastead.media.fmp4_edit import with_duration
from privastead.media.thumbnail import encode_jpeg
from privastead.media.transcode import transcode_clip
from privastead.protocol.short_code import looks_short


def moving_box(index: int, fps: int) -> tuple[float, float, float, float]:
    """Where the scene's box is in frame ``index``, normalised ``(x, y, w, h)``."""
    t = index / fps
    w, h = 1 / 6, 1 / 3
    return (
        (1 - w) * (0.5 + 0.45 * np.sin(t * 1.3)),
        (1 - h) * (0.55 + 0.3 * np.cos(t * 0.9)),
        w,
        h,
    )


def _frame(index: int, width: int, height: int, fps: int, tint: int) -> av.VideoFrame:
    y = np.tile(np.linspace(60, 150, width, dtype=np.uint8), (height, 1))
    bx, by, _, _ = moving_box(index, fps)
    bw, bh = width // 6, height // 3
    x0, y0 = int(bx * width), int(by * height)
    y[y0 : y0 + bh, x0 : x0 + bw] = 225
    # a clock bar along the bottom that fills once a second: motion you can see at a glance
    y[height - 6 :, : int(width * ((index % fps) + 1) / fps)] = 235
    u = np.full((height // 2, width // 2), 128 + tint, np.uint8)
    v = np.full((height // 2, width // 2), 128 - tint, np.uint8)
    return av.VideoFrame.from_ndarray(
        np.vstack([y, u.reshape(-1, width), v.reshape(-1, width)]), format="yuv420p"
    )


def synthetic_clip(
    seconds: float = 4.0,
    *,
    width: int = 320,
    height: int = 180,
    fps: int = 10,
    tint: int = 0,
    codec: str = "h264",
) -> list[bytes]:
    """An fMP4 (``codec`` h264 or hevc): ``[init, fragment, ...]``, a fragment per keyframe
    (every 0.5 s)."""
    pieces: list[bytes] = []
    splitter = BoxSplitter(lambda data, _init: pieces.append(bytes(data)))
    out = av.open(
        splitter,
        "w",
        format="mp4",
        options={"movflags": "frag_keyframe+empty_moov+default_base_moof"},
    )
    stream: Any = out.add_stream("libx265" if codec == "hevc" else "libx264", rate=Fraction(fps))
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(max(1, fps // 2))}
    if codec == "hevc":
        stream.codec_tag = "hvc1"
        stream.options |= {"x265-params": "log-level=error:pools=none"}
    stream.codec_context.thread_count = 1
    for i in range(round(seconds * fps)):
        frame = _frame(i, width, height, fps, tint)
        frame.pts = i
        frame.time_base = Fraction(1, fps)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()
    splitter.finish()
    return pieces


def synthetic_thumbnail(*, index: int = 12, tint: int = 0) -> bytes:
    return encode_jpeg(_frame(index, 640, 360, 10, tint), width=320)


def shift_decode_time(fragment: bytes, delta: int) -> bytes:
    """``fragment`` with every ``tfdt`` base decode time moved by ``delta`` ticks."""
    data = bytearray(fragment)

    def walk(start: int, end: int) -> None:
        at = start
        while at + 8 <= end:
            size, kind = struct.unpack_from(">I4s", data, at)
            if size < 8:
                return
            if kind in (b"moof", b"traf"):
                walk(at + 8, at + size)
            elif kind == b"tfdt":
                if data[at + 8] == 1:
                    (base,) = struct.unpack_from(">Q", data, at + 12)
                    struct.pack_into(">Q", data, at + 12, base + delta)
                else:
                    (base,) = struct.unpack_from(">I", data, at + 12)
                    struct.pack_into(">I", data, at + 12, (base + delta) & 0xFFFFFFFF)
            at += size

    walk(0, len(data))
    return bytes(data)


@dataclass
class FakeCamera:
    camera: Camera
    events: list[Event] = field(default_factory=list)
    live: list[bytes] | None = None  # [init, fragments...] to loop; None: no livestream


@dataclass
class FakeSource:
    """Everything in memory; clips are files (the server serves files, with ranges)."""

    cameras_: dict[str, FakeCamera] = field(default_factory=dict)
    thumbnails: dict[str, bytes] = field(default_factory=dict)
    clips: dict[str, Path] = field(default_factory=dict)
    devices_: list[Device] = field(default_factory=list)
    pair_delay: float = 0.3
    # Set: a pairing waits at the confirm step until it is set, as a hub waits for its owner.
    pair_approval: asyncio.Event | None = None
    live_started: int = 0
    live_stopped: int = 0
    h264_requests: list[str] = field(default_factory=list)  # cameras and events transcoded
    recordings: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # spans
    media_dir: Path | None = None  # where fetched recordings are written
    played: list[tuple[str, float, float]] = field(default_factory=list)
    recording_codec: str = "h264"  # what the fake hub recorded (hevc: a 4K camera's)

    async def cameras(self) -> list[Camera]:
        result = []
        for fake in self.cameras_.values():
            last = max(fake.events, key=lambda e: e.at or 0.0) if fake.events else None
            result.append(replace(fake.camera, last_event=last))
        return result

    async def events(self, camera: str, limit: int = 100) -> list[Event]:
        fake = self.cameras_.get(camera)
        if fake is None:
            return []
        return sorted(fake.events, key=lambda e: -(e.at or 0.0))[:limit]

    async def event(self, event_id: str) -> Event | None:
        for fake in self.cameras_.values():
            for e in fake.events:
                if e.event_id == event_id:
                    return e
        return None

    async def thumbnail(self, event_id: str) -> bytes | None:
        return self.thumbnails.get(event_id)

    async def clip(self, event_id: str, *, h264: bool = False) -> Clip | None:
        path = self.clips.get(event_id)
        if path is None:
            return None
        event = await self.event(event_id)
        complete = event is None or event.clip_state == "complete"
        mime = clip_mime(path)
        if h264 and "avc1" not in mime:  # the real transcoder, as LocalSource uses it
            out = path.with_suffix(".h264.mp4")
            if not out.exists():
                await asyncio.to_thread(transcode_clip, path, out)
            self.h264_requests.append(event_id)
            return Clip(out, clip_mime(out), complete)
        return Clip(path, mime, complete)

    def live(self, camera: str, *, h264: bool = False) -> LiveStream:
        fake = self.cameras_.get(camera)
        if fake is None or fake.live is None:
            raise UnavailableError(f"camera {camera} has no livestream")
        stream = self._loop(fake.live)
        if h264:
            self.h264_requests.append(camera)
            return h264_live(stream)
        return stream

    async def _loop(self, pieces: list[bytes]) -> LiveStream:
        init, fragments = pieces[0], pieces[1:]
        timescale = track_timescales(init).get(1, 90_000)
        spans = [sum(r.duration for r in fragment_info(f) if r.track_id == 1) for f in fragments]
        period = sum(spans)
        self.live_started += 1
        try:
            yield init
            loop = 0
            while True:
                for fragment, span in zip(fragments, spans, strict=True):
                    yield shift_decode_time(fragment, loop * period)
                    await asyncio.sleep(span / timescale)
                loop += 1
        finally:
            self.live_stopped += 1

    async def devices(self) -> list[Device]:
        return list(self.devices_)

    async def pair(self, code: str, relay: str | None = None) -> AsyncIterator[PairingStep]:
        steps = ["reading the pairing code", "contacting the relay", "joining the hub's groups"]
        short = looks_short(code)
        for i, message in enumerate(steps):
            yield PairingStep(message, i / len(steps))
            await asyncio.sleep(self.pair_delay)
            if i == 0 and short and not relay:
                yield PairingStep("which relay?", 1.0, error=NEEDS_RELAY)
                return
            if i == 0 and not short and not code.strip().lower().startswith("privastead:"):
                yield PairingStep(
                    "this is not a Privastead pairing code",
                    1.0,
                    error="copy the whole code the hub printed (it starts with privastead:)",
                )
                return
            if i == 1:  # the hub holds this device until its owner confirms it
                yield PairingStep(
                    WAITING,
                    0.6,
                    waiting_safety_code="31842 90517 22406 77153",
                    fingerprint="d461 2729 5f5a 8ffa",
                )
                if self.pair_approval is not None:
                    await self.pair_approval.wait()
        yield PairingStep("paired", 1.0, safety_code="31842 90517 22406 77153")

    async def timeline(self, camera: str, start: float, end: float) -> dict[str, Any]:
        spans = [[a, b] for a, b in self.recordings.get(camera, []) if a < end and b > start]
        fake = self.cameras_.get(camera)
        events = [] if fake is None else fake.events
        marks = [
            {"event_id": e.event_id, "at": e.at, "score": e.score, "clip_state": e.clip_state}
            for e in sorted(events, key=lambda e: e.at or 0.0)
            if e.at is not None and start <= e.at < end
        ]
        return {
            "camera": camera,
            "start": start,
            "end": end,
            "spans": spans,
            "truncated": False,
            "events": marks,
            "error": "",
        }

    async def recording(self, camera: str, start: float, end: float, *, h264: bool = False) -> Path:
        """A synthetic recording as long as the range (30 s at most), its duration stated in
        the init segment as the hub's playback does."""
        if not any(a < end and b > start for a, b in self.recordings.get(camera, [])):
            raise NothingRecordedError(f"nothing of {camera} is recorded in that range")
        if self.media_dir is None:
            raise UnavailableError("this demo has no place for recordings")
        seconds = max(1.0, min(30.0, end - start))
        pieces = await asyncio.to_thread(synthetic_clip, seconds, codec=self.recording_codec)
        self.played.append((camera, start, end))
        path = self.media_dir / f"recording-{len(self.played)}.mp4"
        path.write_bytes(with_duration(pieces[0], seconds) + b"".join(pieces[1:]))
        if h264 and self.recording_codec != "h264":
            out = path.with_suffix(".h264.mp4")
            await asyncio.to_thread(transcode_clip, path, out)
            self.h264_requests.append(f"recording {camera}")
            return out
        return path


def demo_source(root: Path, *, now: float, events_per_camera: int = 4) -> FakeSource:
    """A household: two cameras online with events, clips and live; one hub offline."""
    root.mkdir(parents=True, exist_ok=True)
    source = FakeSource(media_dir=root)
    # front-door records around the clock (with a gap); the others keep only events
    source.recordings["front-door"] = [(now - 6 * 3600, now - 3 * 3600), (now - 2.5 * 3600, now)]
    plan = [
        ("front-door", "home", Health.ONLINE, "last heartbeat 12 s ago", 0),
        ("garden", "home", Health.ONLINE, "last heartbeat 12 s ago", 20),
        ("garage", "cabin", Health.OFFLINE, "no heartbeat from the hub for 1843 s", -20),
    ]
    clip = synthetic_clip(4.0)
    for n, (name, hub, health, detail, tint) in enumerate(plan):
        beat = now - (12 if health is Health.ONLINE else 1843)
        live = synthetic_clip(6.0, tint=tint) if health is Health.ONLINE else None
        fake = FakeCamera(Camera(name, hub, health, detail, beat, None), live=live)
        for i in range(events_per_camera):
            event_id = f"{n:02x}{i:02x}" + "e" * 28
            at = now - 600 * (i + 1) - 3600 * n
            x, y, w, h = moving_box(7 + 9 * i, 10)  # the detector's box, a little padded
            box = (
                max(0.0, x - 0.01),
                max(0.0, y - 0.02),
                min(w + 0.02, 1 - x),
                min(h + 0.04, 1 - y),
            )
            state = "complete" if i != 1 else "partial"
            fake.events.append(Event(event_id, name, at, 0.42 + 0.13 * i, (box,), True, state))
            source.thumbnails[event_id] = synthetic_thumbnail(index=7 + 9 * i, tint=tint)
            path = root / f"{event_id}.mp4"
            path.write_bytes(b"".join(clip))
            source.clips[event_id] = path
        source.cameras_[name] = fake
    source.devices_ = [
        Device("home", "hub", "home", "31842 90517 22406 77153"),
        Device("cabin", "hub", "cabin", "60912 11487 50398 28841"),
        Device("laptop", "this device", "home", "31842 90517 22406 77153"),
        Device("phone", "other device", "home", "31842 90517 22406 77153"),
    ]
    return source


__all__ = ["FakeCamera", "FakeSource", "demo_source", "shift_decode_time", "synthetic_clip"]
