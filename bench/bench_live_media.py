"""Livestream media layer: fragmenter latency at 1080p and 4K, and H.265 -> H.264 live
transcode cost, each against a baseline measured in the same run.

- Latency: camera packets are replayed in real time (30 fps, arrival stamped when handed
  over, like the ingest does) into a ``LiveSession``; a consumer thread takes fragments. For
  every video packet: its fragment's emission time minus its arrival (p50/p95), and the same
  for the newest packet of each fragment. Baseline: one frame period (what the MP4 muxer's
  one-frame hold costs at least) and the CPU of a plain stream-copy remux of the same packets.
- Transcode: CPU seconds per stream second of ``FragmentTranscoder`` on 1080p H.265 live
  fragments (full size and downscaled to 720p/540p), against decoding the same stream and
  discarding the frames (one thread each, as the transcoder runs).

    python bench/bench_live_media.py [--seconds 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import threading
import time
from fractions import Fraction
from pathlib import Path

import av

from privastead.camsim.scene import make_scene
from privastead.camsim.suite import cache_dir, encode_scene
from privastead.media.ingest import MediaPacket, StreamInfo, _snapshot
from privastead.media.live import LiveFragment, LiveFragmenter, LiveSession, LiveSettings
from privastead.media.transcode import FragmentTranscoder, TranscodeSettings

FPS = 30


def clip(width: int, height: int, codec: str, seconds: float) -> Path:
    path = cache_dir() / f"bench-walkers-{width}x{height}-30fps-{seconds:g}s-{codec}.mp4"
    if not path.exists():
        scene = make_scene("walkers", width=width, height=height, fps=FPS, seed=0, duration=seconds)
        encode_scene(scene, path, codec=codec, preset="ultrafast", threads=2, crf=23)
    return path


def packets_of(path: Path) -> tuple[StreamInfo, list[MediaPacket]]:
    """The clip as the ingest would hand it on (video only)."""
    container = av.open(str(path))
    video = container.streams.video[0]
    info = StreamInfo(
        1,
        _snapshot(video),
        None,
        video.codec_context,
        video.codec_context.name,
        video.codec_context.width,
        video.codec_context.height,
        video.time_base or Fraction(1, 90_000),
    )
    out = []
    for p in container.demux(video):
        if p.size and p.pts is not None and p.time_base is not None:
            out.append(
                MediaPacket(p, "video", float(p.pts * p.time_base), p.is_keyframe, p.size, 1)
            )
    return info, out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def live_latency(info: StreamInfo, packets: list[MediaPacket], frames: int) -> dict[str, float]:
    """Replay ``packets`` at 30 fps into a session; latencies in milliseconds."""
    session = LiveSession(info, None, LiveSettings(frames_per_fragment=frames, max_queued=1000))
    got: list[LiveFragment] = []

    def consume() -> None:
        while True:
            fragment = session.get(1.0)
            if fragment is None:
                if session.ended is not None:
                    return
                continue
            got.append(fragment)

    consumer = threading.Thread(target=consume)
    consumer.start()
    arrivals: list[float] = []
    start = time.monotonic()
    for n, p in enumerate(packets):
        delay = start + n / FPS - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        now = time.time()
        arrivals.append(now)
        session.push(MediaPacket(p.packet, p.kind, p.pts, p.keyframe, p.size, p.epoch, now))
    session.stop()
    consumer.join()
    per_packet: list[float] = []
    newest: list[float] = []
    index = 0
    # The last fragment leaves at stop(), not because a frame arrived: leave it out.
    for fragment in got[1:-1]:
        for _ in range(fragment.frames):
            per_packet.append((fragment.emitted - arrivals[index]) * 1000)
            index += 1
        newest.append((fragment.emitted - fragment.arrived) * 1000)
    return {
        "packet_p50_ms": statistics.median(per_packet),
        "packet_p95_ms": pct(per_packet, 0.95),
        "newest_p50_ms": statistics.median(newest),
        "newest_p95_ms": pct(newest, 0.95),
        "fragment_kb": statistics.mean(len(f.data) for f in got[1:]) / 1024,
    }


def remux_cpu(info: StreamInfo, packets: list[MediaPacket], live: bool) -> float:
    """CPU seconds to stream-copy ``packets``: recorder-style fMP4 or live fragments."""
    t0 = time.process_time()
    if live:
        fragmenter = LiveFragmenter(info, LiveSettings(frames_per_fragment=3))
        for p in packets:
            fragmenter.push(p)
        fragmenter.close()
    else:
        buf = io.BytesIO()
        with av.open(
            buf, "w", format="mp4", options={"movflags": "frag_keyframe+empty_moov"}
        ) as out:
            stream = out.add_stream_from_template(info.video)
            for p in packets:
                copy = av.Packet(bytes(p.packet))
                copy.pts, copy.dts, copy.time_base = p.packet.pts, p.packet.dts, p.packet.time_base
                copy.stream = stream
                out.mux(copy)
    return time.process_time() - t0


def live_fragments(info: StreamInfo, packets: list[MediaPacket]) -> list[bytes]:
    fragmenter = LiveFragmenter(info, LiveSettings(frames_per_fragment=3))
    out = [f.data for p in packets for f in fragmenter.push(p)]
    return out + [f.data for f in fragmenter.close()]


def decode_cpu(path: Path) -> float:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type, s.thread_count = "SLICE", 1
        t0 = time.process_time()
        for _ in c.decode(s):
            pass
        return time.process_time() - t0


def transcode_cpu(pieces: list[bytes], max_height: int | None) -> float:
    core = FragmentTranscoder(TranscodeSettings(max_height=max_height, threads=1))
    t0 = time.process_time()
    for piece in pieces:
        core.push(piece)
    core.close()
    return time.process_time() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=4.0, help="length of each test stream")
    ap.add_argument("--repeat", type=int, default=3, help="rounds for the CPU figures (median)")
    args = ap.parse_args()
    result: dict[str, object] = {"bench": "live_media", "seconds": args.seconds}
    rows: list[tuple[str, str, str]] = []
    frame_ms = 1000 / FPS
    for label, (w, h) in (("1080p", (1920, 1080)), ("4k", (3840, 2160))):
        info, packets = packets_of(clip(w, h, "h264", args.seconds))
        lat = live_latency(info, packets, 3)
        copy = statistics.median(remux_cpu(info, packets, False) for _ in range(args.repeat))
        live = statistics.median(remux_cpu(info, packets, True) for _ in range(args.repeat))
        result[label] = {**lat, "remux_cpu_s": copy, "live_cpu_s": live, "frame_ms": frame_ms}
        rows += [
            (
                f"{label} packet -> fragment p50 / p95",
                f"{lat['packet_p50_ms']:.1f} / {lat['packet_p95_ms']:.1f} ms",
                f"frame period {frame_ms:.1f} ms",
            ),
            (
                f"{label} newest packet -> fragment p50 / p95",
                f"{lat['newest_p50_ms']:.1f} / {lat['newest_p95_ms']:.1f} ms",
                f"{lat['newest_p50_ms'] / frame_ms:.2f}x frame",
            ),
            (
                f"{label} fragmenter CPU per stream s",
                f"{live / args.seconds * 100:.2f} %",
                f"{live / copy:.2f}x plain remux ({copy / args.seconds * 100:.2f} %)",
            ),
        ]
    path = clip(1920, 1080, "hevc", args.seconds)
    info, packets = packets_of(path)
    pieces = live_fragments(info, packets)
    decode = statistics.median(decode_cpu(path) for _ in range(args.repeat))
    result["decode_cpu_per_s"] = decode / args.seconds
    rows.append(
        ("1080p H.265 decode-only CPU per stream s", f"{decode / args.seconds:.3f}", "baseline")
    )
    for height in (None, 720, 540):
        cpu = statistics.median(transcode_cpu(pieces, height) for _ in range(args.repeat))
        name = f"transcode_{height or 1080}p"
        result[name] = {"cpu_per_s": cpu / args.seconds, "vs_decode": cpu / decode}
        rows.append(
            (
                f"1080p H.265 -> H.264 {height or 1080}p CPU per stream s",
                f"{cpu / args.seconds:.3f}",
                f"{cpu / decode:.2f}x decode-only",
            )
        )
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>22}  vs baseline")
    for name, value, ratio in rows:
        print(f"{name:<{width}}  {value:>22}  {ratio}")
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
