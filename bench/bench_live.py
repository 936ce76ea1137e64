"""Livestream latency on loopback: a frame sent by camsim -> decrypted and decoded at a client.

camsim runs with ``--stamp``: every access unit carries its send time (wall clock, Unix µs)
in an SEI user-data-unregistered message (``privastead.camsim.stamp``), which survives stream
copy, MLS and the relay, and which the client's decoder hands back as frame side data. So a
frame's latency is (moment the client has it) - (moment camsim wrote it to the socket), on one
machine clock. Per camera size (default 1080p and 4K, H.264, 30 fps), all in one run:

- **baseline**: the same camsim stream read directly with PyAV (RTSP/TCP demux, decode in a
  second thread, the hub's ingest options): the floor every RTSP consumer pays, no hub, relay
  or MLS;
- **in-process hub**: ``Camera`` ingest (ring, motion detection running as in a hub) ->
  ``Camera.start_live`` -> ``live_publish.publish`` (MLS ``live`` group) -> a real relay process ->
  a viewer *process* (no GIL shared with the hub, as on a phone) running ``client.live.watch``
  (MLS decrypt) and a decoder thread. Per frame: when its fragment left the hub's muxer, was
  decrypted, and when the frame was decoded; ``start_live`` -> first decoded picture;
- **hub process, real request path**: ``privastead-hub run`` (paired the real way) answers
  ``client.live_request.open_live``'s ``LiveRequest`` from the control group; per-frame
  latency as above and LiveRequest -> first decoded picture.

Frames sent before the request (the ring's newest GOP, with which a session starts so that a
picture shows at once) are counted apart as catch-up. Each decoder reports the frame rate it
managed while busy; rows of a decoder slower than the camera are marked (its latency then
grows with the run's length). Method and results: ``docs/design/livestream-latency.md``.

The scene is rendered and encoded once (cached), then looped by camsim at the frame rate, so
4K needs no real-time rendering; the stamps are taken when each frame is sent.

Prints a table and one JSON line. ``python bench/bench_live.py [--seconds 8 --sessions 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import queue
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "relay"), str(ROOT / "tests" / "e2e")]
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))

import av  # noqa: E402
from e2e_harness import Home  # noqa: E402
from relay_harness import RelayProcess, free_port, make_process  # noqa: E402

from latency_table import pct  # noqa: E402
from privastead.camsim.rtp import split_annexb  # noqa: E402
from privastead.camsim.stamp import frame_stamp, sample_stamp  # noqa: E402
from privastead.client.app import Client  # noqa: E402
from privastead.client.device import DataDir  # noqa: E402
from privastead.client.live import watch  # noqa: E402
from privastead.client.live_request import open_live  # noqa: E402
from privastead.clock import SystemClock  # noqa: E402
from privastead.crypto import Identity  # noqa: E402
from privastead.errors import CameraUnavailableError  # noqa: E402
from privastead.hub.capture.camera import Camera  # noqa: E402
from privastead.hub.config import CameraConfig  # noqa: E402
from privastead.hub.control.live_publish import publish, threaded  # noqa: E402
from privastead.media.fmp4 import track_samples  # noqa: E402
from privastead.protocol.live import LivePayload  # noqa: E402
from privastead.relay.client import RelayClient  # noqa: E402
from support.procs import camsim  # noqa: E402

TARGET_P50 = 0.300  # the project's target: camera frame -> decrypted at client, loopback
# Every decoder here: SLICE (no frame held back; one core for a single-slice camera stream) or
# AUTO (frame threads: more frames per second, one frame period more latency). --decoder.
DECODER = {"thread_type": "SLICE"}
RTSP_OPTIONS = {  # what media.ingest uses
    "rtsp_transport": "tcp",
    "analyzeduration": "0",
    "probesize": "32",
    "fflags": "nobuffer",
}


@dataclass
class Samples:
    """Latencies (seconds) of one way of watching a camera."""

    # before any MLS: fragment out of the hub's muxer (livestream), demuxed (baseline)
    hub: list[float] = field(default_factory=list)
    decrypted: list[float] = field(default_factory=list)
    decoded: list[float] = field(default_factory=list)
    first_picture: list[float] = field(default_factory=list)  # request -> first decoded frame
    first_age: list[float] = field(default_factory=list)  # how old that first frame was
    capacity: list[float] = field(default_factory=list)  # decoder fps while busy
    catch_up: int = 0  # frames sent before the request (the ring's GOP)
    unstamped: int = 0


class FragmentDecoder:
    """Decodes a livestream's fMP4 pieces (init first) as they come, like a player: the
    samples of each fragment go to one persistent decoder set up from the init's ``avcC``."""

    def __init__(self) -> None:
        self._ctx: Any = None

    def push(self, piece: bytes) -> list[av.VideoFrame]:
        if self._ctx is None:
            with av.open(io.BytesIO(piece)) as probe:
                video = probe.streams.video[0]
                ctx: Any = av.CodecContext.create(video.codec_context.name, "r")
                ctx.extradata = video.codec_context.extradata
                ctx.thread_type = DECODER["thread_type"]
                self._ctx = ctx
            return []
        frames: list[av.VideoFrame] = []
        for sample in track_samples(piece):
            frames.extend(self._ctx.decode(av.Packet(sample)))
        return frames


class DecodeThread:
    """A decoder in its own thread, as a player's would be: receiving (and decrypting) the
    next piece never waits for decoding this one. Records (send stamp, had the bytes at,
    decoded at) per frame, and the time spent decoding (its capacity under today's load)."""

    def __init__(self, decode: Callable[[Any], list[av.VideoFrame]]) -> None:
        self.decode = decode
        self.frames: list[tuple[float | None, float, float]] = []
        self.busy = 0.0
        self.items: queue.Queue[tuple[Any, float] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="bench-decoder", daemon=True)
        self._thread.start()

    def put(self, item: Any) -> None:
        self.items.put((item, time.time()))

    def close(self) -> None:
        self.items.put(None)
        self._thread.join(120)

    @property
    def capacity(self) -> float:
        """Frames per second this decoder managed while busy."""
        return len(self.frames) / self.busy if self.busy else float("nan")

    def _run(self) -> None:
        while (entry := self.items.get()) is not None:
            item, arrived = entry
            start = time.perf_counter()
            for frame in self.decode(item):
                self.frames.append((frame_stamp(frame), arrived, time.time()))
            self.busy += time.perf_counter() - start


async def _view(spec: dict[str, Any]) -> None:
    """The client, in its own process (as on a phone or laptop, never sharing the hub's GIL):
    open the viewer socket, say ``ready``, watch, decrypt and decode; print what it saw."""
    gid = bytes.fromhex(spec["group"])
    DECODER["thread_type"] = spec["decoder"]
    phone = Identity.open(spec["state"])
    viewer = DecodeThread(FragmentDecoder().push)
    async with RelayClient(spec["relay"], spec["token"]) as relay:
        ws = await relay.live(spec["session"], "viewer")
        print("ready", flush=True)
        await watch(ws, lambda c: phone.process(gid, c).data, viewer.put, seconds=spec["seconds"])
    await asyncio.to_thread(viewer.close)
    phone.close()
    print(json.dumps({"frames": viewer.frames, "capacity": viewer.capacity}), flush=True)


def _record(s: Samples, frames: list[list[Any]], requested: float) -> None:
    for i, (stamp, decrypted, decoded) in enumerate(frames):
        if i == 0:
            s.first_picture.append(decoded - requested)
            if stamp is not None:
                s.first_age.append(decoded - stamp)
        if stamp is None:
            s.unstamped += 1
        elif stamp < requested:
            s.catch_up += 1  # from the ring: old on purpose, not livestream lag
        else:
            s.decrypted.append(decrypted - stamp)
            s.decoded.append(decoded - stamp)


def baseline(url: str, seconds: float) -> Samples:
    """RTSP -> PyAV decode, nothing else: the latency floor of reading the camera. The
    reader only demuxes (like the hub's ingest); decoding runs in its own thread."""
    s = Samples()
    requested = time.time()
    with av.open(url, options=RTSP_OPTIONS, timeout=(10.0, 5.0)) as container:
        stream = container.streams.video[0]
        ctx: Any = stream.codec_context
        ctx.thread_type = DECODER["thread_type"]  # as the viewer's
        decoder = DecodeThread(ctx.decode)
        end = time.monotonic() + seconds
        for packet in container.demux(stream):
            if packet.size:
                decoder.put(packet)
                stamp = sample_stamp("h264", _length_prefixed(bytes(packet)))
                if stamp is not None:
                    s.hub.append(time.time() - stamp)  # "has the bytes": demuxed
            if time.monotonic() > end:
                break
        decoder.close()
    s.capacity.append(decoder.capacity)
    for i, (stamp, _demuxed, decoded) in enumerate(decoder.frames):
        if i == 0:
            s.first_picture.append(decoded - requested)
        if stamp is None:
            s.unstamped += 1
        else:
            s.decoded.append(decoded - stamp)
    return s


def _length_prefixed(annexb: bytes) -> bytes:
    """Annex-B (what FFmpeg's RTSP demuxer hands out) as 4-byte length-prefixed NAL units."""
    return b"".join(len(nal).to_bytes(4, "big") + nal for nal in split_annexb(annexb))


def _group(root: Path) -> tuple[Identity, bytes, Path]:
    """A hub and one phone in a fresh ``live`` group, rekeyed as before every session; the
    phone's state is closed for the viewer process to open."""
    tag = secrets.token_hex(4)
    root.mkdir(parents=True, exist_ok=True)
    hub = Identity.create(root / f"hub-{tag}", b"hub")
    gid = hub.create_group()
    state = root / f"phone-{tag}"
    with Identity.create(state, b"phone") as phone:
        added = hub.add_members(gid, [phone.key_package()])
        phone.join(added.welcome, inviter_identity=b"hub")
        phone.process(gid, hub.self_update(gid))
    return hub, gid, state


async def _session(
    camera: Camera, relay: RelayProcess, root: Path, seconds: float, s: Samples
) -> None:
    hub, gid, state = _group(root)
    sid = secrets.token_hex(16)
    spec = {
        "relay": relay.url,
        "token": relay.owner_token,
        "session": sid,
        "state": str(state),
        "group": gid.hex(),
        "seconds": seconds,
        "decoder": DECODER["thread_type"],
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--view",
        json.dumps(spec),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert child.stdout is not None
    try:
        requested = 0.0
        line = await asyncio.wait_for(child.stdout.readline(), 60)
        if line.strip() != b"ready":
            raise RuntimeError(f"viewer did not start: {line!r}")

        def encrypt(plaintext: bytes) -> bytes:
            now = time.time()  # the hub has the fragment; the stamps say when camsim sent it
            payload = LivePayload.decode(plaintext)
            if not payload.is_init:
                for sample in track_samples(payload.data):
                    stamp = sample_stamp("h264", sample)
                    if stamp is not None and stamp >= requested:
                        s.hub.append(now - stamp)
            return hub.encrypt(gid, plaintext)

        async with relay.client() as hub_relay:
            requested = time.time()  # the viewer is waiting: the hub starts the session now
            session = camera.start_live()
            ws = await hub_relay.live(sid, "publisher")
            publisher = asyncio.create_task(publish(session, ws, threaded(encrypt)))
            out = await asyncio.wait_for(child.stdout.readline(), seconds + 60)
            session.stop("bench done")
            await asyncio.wait_for(publisher, 30)
        seen = json.loads(out)
        _record(s, seen["frames"], requested)
        s.capacity.append(seen["capacity"])
    finally:
        if child.returncode is None:
            child.kill()
        await child.wait()
        hub.close()


async def livestream(
    url: str, relay: RelayProcess, root: Path, seconds: float, sessions: int
) -> Samples:
    s = Samples()
    camera = Camera(CameraConfig("bench", url), root / "clips")
    running = asyncio.create_task(camera.run())
    try:
        deadline = time.monotonic() + 60
        while camera.health().state != "connected" or camera.ring.since(float("inf")) == []:
            if time.monotonic() > deadline or running.done():
                raise RuntimeError(f"camera never connected: {camera.status_line()}")
            await asyncio.sleep(0.1)
        for _ in range(sessions):
            await asyncio.sleep(0.5)  # the next request lands somewhere inside a GOP
            await _session(camera, relay, root, seconds, s)
    finally:
        camera.stop()
        await running
    return s


async def request_path(
    url: str, relay: RelayProcess, root: Path, seconds: float, sessions: int
) -> Samples:
    """The real thing: `privastead-hub run` (its own process) answers a ``LiveRequest`` sent
    by a paired client (``client.live_request.open_live``) through the control group; the
    client decrypts in this process and decodes in a thread."""
    s = Samples()
    await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
    home = Home(root, relay, url, keep_plaintext=False)
    client = root / "phone"
    await asyncio.to_thread(home.pair, client, "phone")
    home.start_hub()
    syncer = Client(DataDir(client), clock=SystemClock())
    try:
        deadline = time.monotonic() + 90
        done = 0
        while done < sessions:
            await asyncio.sleep(0.5)  # the next request lands somewhere inside a GOP
            viewer = DecodeThread(FragmentDecoder().push)
            requested = time.time()
            try:
                async for piece in open_live(syncer, "door", seconds=seconds):
                    viewer.put(piece)
            except CameraUnavailableError:
                if time.monotonic() > deadline or viewer.frames:
                    raise
                continue  # the hub's camera is still connecting
            finally:
                await asyncio.to_thread(viewer.close)
            _record(s, [list(f) for f in viewer.frames], requested)
            s.capacity.append(viewer.capacity)
            done += 1
    finally:
        await syncer.close()
        await asyncio.to_thread(home.stop_hub)
    return s


def _ms(value: float) -> float:
    return round(value * 1e3, 1)


async def run_size(
    size: str, args: argparse.Namespace, relay: RelayProcess, root: Path
) -> dict[str, Samples]:
    cache = args.cache_dir
    extra = ["--stamp", "--gop", str(args.gop)]
    with camsim(
        free_port(), cache, *extra, scene="walkers", size=size, fps=args.fps, duration=6
    ) as cam:
        url = cam.urls[0]
        base = await asyncio.to_thread(baseline, url, args.seconds)
        live = await livestream(url, relay, root / size, args.seconds, args.sessions)
        real = await request_path(url, relay, root / f"{size}-hub", args.seconds, args.sessions)
    return {"baseline": base, "live": live, "hub": real}


def report(results: dict[str, dict[str, Samples]], args: argparse.Namespace) -> None:
    print(
        f"livestream latency, camsim frame sent -> client (loopback, H.264 {args.fps:g} fps, "
        f"GOP {args.gop:g} s, {args.sessions} sessions x {args.seconds:g} s, "
        f"{args.decoder} decoders)"
    )
    head = f"{'size':<10} {'path':<46} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}"
    print(head)
    print("-" * len(head))
    line: dict[str, Any] = {
        "bench": "live",
        "fps": args.fps,
        "decoder": args.decoder,
        "target_p50_ms": TARGET_P50 * 1e3,
    }
    slow = False
    for size, r in results.items():
        base, live, real = r["baseline"], r["live"], r["hub"]
        label = size.split("x")[1] + "p"
        # A decoder slower than the frame rate falls further behind every frame: its latency
        # then measures the run's length and the machine's load, not the pipeline.
        capacity = min(base.capacity + live.capacity + real.capacity, default=float("nan"))
        mark = " *" if capacity < args.fps else ""
        slow = slow or bool(mark)
        rows = [
            ("baseline: RTSP demuxed (PyAV, no hub)", base.hub),
            ("baseline: RTSP decoded (PyAV, no hub)" + mark, base.decoded),
            ("livestream: fragment out of the hub's muxer", live.hub),
            ("livestream: decrypted at client", live.decrypted),
            ("livestream: decoded at client" + mark, live.decoded),
            ("start_live -> first picture" + mark, live.first_picture),
            ("age of that first picture (ring GOP)", live.first_age),
            ("hub process: decrypted at client", real.decrypted),
            ("hub process: decoded at client" + mark, real.decoded),
            ("hub process: LiveRequest -> first picture" + mark, real.first_picture),
        ]
        for name, values in rows:
            mean = statistics.fmean(values) if values else float("nan")
            print(
                f"{size:<10} {name:<46} {len(values):>5} {_ms(pct(values, 0.5)):>8} "
                f"{_ms(pct(values, 0.95)):>8} {_ms(mean):>8}"
            )
        worst = max(pct(live.decrypted, 0.5), pct(real.decrypted, 0.5))
        added = worst - pct(base.hub, 0.5)
        print(
            f"{size:<10} p50 decrypted <= {worst / TARGET_P50:.2f}x the 300 ms target, "
            f"{added * 1e3:.0f} ms over the RTSP demux floor; decoders >= {capacity:.0f} fps "
            f"while busy; {live.catch_up + real.catch_up} catch-up frames, "
            f"{live.unstamped + base.unstamped + real.unstamped} unstamped"
        )
        line |= {
            f"{label}_baseline_demuxed_p50_ms": _ms(pct(base.hub, 0.5)),
            f"{label}_baseline_decoded_p50_ms": _ms(pct(base.decoded, 0.5)),
            f"{label}_hub_p50_ms": _ms(pct(live.hub, 0.5)),
            f"{label}_decrypted_p50_ms": _ms(pct(live.decrypted, 0.5)),
            f"{label}_decrypted_p95_ms": _ms(pct(live.decrypted, 0.95)),
            f"{label}_decoded_p50_ms": _ms(pct(live.decoded, 0.5)),
            f"{label}_decoded_p95_ms": _ms(pct(live.decoded, 0.95)),
            f"{label}_start_live_first_picture_p50_ms": _ms(pct(live.first_picture, 0.5)),
            f"{label}_hub_process_decrypted_p50_ms": _ms(pct(real.decrypted, 0.5)),
            f"{label}_hub_process_decrypted_p95_ms": _ms(pct(real.decrypted, 0.95)),
            f"{label}_request_first_picture_p50_ms": _ms(pct(real.first_picture, 0.5)),
            f"{label}_request_first_picture_max_ms": _ms(
                max(real.first_picture, default=float("nan"))
            ),
            f"{label}_decoder_fps": round(capacity, 1),
            f"{label}_frames": len(live.decrypted),
        }
    if slow:
        print(
            f"* the decoder managed < {args.fps:g} fps here (CPU shared): latency grows with time"
        )
    print(json.dumps(line))


async def main() -> None:
    if sys.argv[1:2] == ["--view"]:
        await _view(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1920x1080,3840x2160")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--gop", type=float, default=1.0, help="camera keyframe interval, s")
    parser.add_argument("--seconds", type=float, default=8.0, help="per session and baseline")
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument(
        "--decoder",
        choices=["slice", "auto"],
        default="slice",
        help="client decoders' threading: slice (lowest latency) or auto (frame threads: "
        "more fps for 4K on a small machine, one frame more latency)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path.home() / ".cache" / "privastead" / "camsim",
        help="camsim's encoded-scene cache (4K takes a minute to encode the first time)",
    )
    args = parser.parse_args()
    DECODER["thread_type"] = args.decoder.upper()
    results: dict[str, dict[str, Samples]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        root = Path(tmp)
        relay = make_process(root / "relay")
        try:
            for size in args.sizes.split(","):
                results[size] = await run_size(size, args, relay, root)
        finally:
            relay.kill9()
    report(results, args)


if __name__ == "__main__":
    asyncio.run(main())
