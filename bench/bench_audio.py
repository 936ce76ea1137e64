"""CPU cost of bringing camera audio into MP4: G.711 and Opus transcoded to AAC by the hub's
ingest (``media.audio.AacTranscoder``), against two baselines measured in the same run:

- stream copy of AAC audio into fMP4 (what the hub does with AAC cameras: mux only);
- decoding 1080p30 H.264 video and discarding the frames (the hub's dominant per-camera cost).

Input: camsim's tone encoded once per codec (G.711 mu-law/A-law 8 kHz in 20 ms packets, Opus
48 kHz 20 ms, AAC-LC 16 kHz), fed as RTSP would hand it over. CPU is process CPU time (all
threads) per second of stream, median of ``--repeat`` interleaved rounds.

    python bench/bench_audio.py [--seconds 30] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from privastead.camsim.audio import EncodedAudio, tone
from privastead.camsim.scene import make_scene
from privastead.camsim.suite import cache_dir, encode_scene
from privastead.media.audio import AacTranscoder
from privastead.media.fmp4 import BoxSplitter


def source_context(audio: EncodedAudio) -> Any:
    """A decoder context like the one the RTSP demuxer hands the ingest for this track."""
    name = {"pcmu": "pcm_mulaw", "pcma": "pcm_alaw", "opus": "opus", "aac": "aac"}[audio.codec]
    ctx: Any = av.CodecContext.create(name, "r")
    ctx.sample_rate = audio.sample_rate
    ctx.layout = "stereo" if audio.codec == "opus" else "mono"  # RTSP says opus/48000/2
    if audio.config:
        ctx.extradata = audio.config
    return ctx


def packets(audio: EncodedAudio, seconds: float) -> list[tuple[av.Packet, float]]:
    count = int(seconds * audio.sample_rate / audio.frame_samples)
    out = []
    for i in range(count):
        packet = av.Packet(audio.frames[i % len(audio.frames)])
        ticks = i * audio.frame_samples
        packet.pts = packet.dts = ticks
        packet.time_base = Fraction(1, audio.sample_rate)
        packet.duration = audio.frame_samples
        out.append((packet, ticks / audio.sample_rate))
    return out


def transcode_cpu(audio: EncodedAudio, feed: list[tuple[av.Packet, float]]) -> float:
    transcoder = AacTranscoder(source_context(audio))
    start = time.process_time()
    for packet, at in feed:
        transcoder.push(packet, at)
    transcoder.flush()
    return time.process_time() - start


def copy_cpu(audio: EncodedAudio, feed: list[tuple[av.Packet, float]]) -> float:
    """AAC stream copy into fragmented MP4, as the clip writer does (no decoding)."""
    sink = BoxSplitter(lambda _data, _init: None)
    start = time.process_time()
    out = av.open(
        sink, "w", format="mp4", options={"movflags": "frag_keyframe+empty_moov+default_base_moof"}
    )
    stream: Any = out.add_stream("aac", rate=audio.sample_rate)
    stream.codec_context.extradata = audio.config
    stream.layout = "mono"
    for packet, _ in feed:
        copy = av.Packet(bytes(packet))
        copy.pts, copy.dts, copy.time_base = packet.pts, packet.dts, packet.time_base
        copy.duration = packet.duration
        copy.stream = stream
        out.mux(copy)
    out.close()
    return time.process_time() - start


def video_clip(seconds: float) -> Path:
    path = cache_dir() / f"bench-walkers-1920x1080-30fps-{seconds:g}s-h264.mp4"
    if not path.exists():
        scene = make_scene("walkers", width=1920, height=1080, fps=30, seed=0, duration=seconds)
        encode_scene(scene, path, codec="h264", preset="ultrafast", threads=2, crf=23)
    return path


def decode_cpu(path: Path) -> tuple[float, float]:
    """CPU seconds to decode ``path`` (AUTO threads, as the hub does) and its duration."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start = time.process_time()
        frames = sum(1 for _ in container.decode(stream))
        used = time.process_time() - start
    return used, frames / 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="audio seconds per round")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    codecs = {c: tone(8.0, codec=c) for c in ("pcmu", "pcma", "opus", "aac")}
    feeds = {c: packets(a, args.seconds) for c, a in codecs.items()}
    clip = video_clip(4.0)
    samples: dict[str, list[float]] = {k: [] for k in ("pcmu", "pcma", "opus", "copy", "decode")}
    for _ in range(args.repeat):  # interleaved rounds: machine load hits every measure alike
        for codec in ("pcmu", "pcma", "opus"):
            samples[codec].append(transcode_cpu(codecs[codec], feeds[codec]) / args.seconds)
        samples["copy"].append(copy_cpu(codecs["aac"], feeds["aac"]) / args.seconds)
        used, span = decode_cpu(clip)
        samples["decode"].append(used / span)
    median = {k: statistics.median(v) for k, v in samples.items()}
    decode = median["decode"]
    rows = [
        ("G.711 mu-law 8 kHz -> AAC", median["pcmu"]),
        ("G.711 A-law 8 kHz -> AAC", median["pcma"]),
        ("Opus 48 kHz -> AAC (audio = 'aac')", median["opus"]),
        ("AAC 16 kHz stream copy into fMP4", median["copy"]),
        ("1080p30 H.264 decode-only (baseline)", decode),
    ]
    print(f"{'CPU-s per stream-s':<40} {'value':>10} {'x decode-only':>14} {'x AAC copy':>11}")
    for name, value in rows:
        print(f"{name:<40} {value:>10.5f} {value / decode:>14.4f} {value / median['copy']:>11.2f}")
    result = {
        "bench": "audio",
        "seconds": args.seconds,
        "repeat": args.repeat,
        "pcmu_to_aac_cpu_per_s": round(median["pcmu"], 6),
        "pcma_to_aac_cpu_per_s": round(median["pcma"], 6),
        "opus_to_aac_cpu_per_s": round(median["opus"], 6),
        "aac_copy_cpu_per_s": round(median["copy"], 6),
        "decode_1080p30_cpu_per_s": round(decode, 6),
        "pcmu_to_aac_vs_decode": round(median["pcmu"] / decode, 5),
        "opus_to_aac_vs_decode": round(median["opus"] / decode, 5),
    }
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    io.DEFAULT_BUFFER_SIZE = 1 << 16
    main()
