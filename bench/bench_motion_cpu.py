"""Motion detection cost at 4K (and 1080p, H.265): kernel vs memory floor, hub CPU per stream
second vs decode-only, keyframes idle mode, Frigate-style and MOG2 pipelines, cameras per
2-core machine, keyframes-mode detection latency, and the memory idle mode's rewind keeps at
4K (packets of two GOPs, detector snapshot, resident memory added while replaying). All
baselines measured in this run.

    python bench/bench_motion_cpu.py [--seconds 3] [--repeat 3] [--kernel-only | --memory-only]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import statistics
import sys
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import privastead.media.analysis as analysis_module
import privastead.media.detector as detector_module
from peers import FrigateStyle, Mog2
from privastead.camsim.encoder import camera_bitrate
from privastead.camsim.scene import make_scene
from privastead.camsim.suite import Case, cache_dir, encode_scene
from privastead.media.analysis import Analysis, DetectorFactory
from privastead.media.decode import LumaDecoder, LumaFrame
from privastead.media.detector import MotionDetector
from privastead.media.kernels import block_means, clipped_cells
from privastead.media.kernels import grid as G
from privastead.media.scan import scan_file
from privastead.media.settings import DetectionSettings, EventSettings


def clip(width: int, height: int, codec: str, seconds: float, scene: str = "walkers") -> Path:
    path = cache_dir() / f"bench-{scene}-{width}x{height}-30fps-{seconds:g}s-{codec}.mp4"
    if not path.exists():
        made = make_scene(scene, width=width, height=height, fps=30, seed=0, duration=seconds)
        encode_scene(made, path, codec=codec, preset="ultrafast", threads=2, crf=23)
    return path


def make_detector(variant: str) -> DetectorFactory | None:
    if variant == "frigate":
        return lambda w, h: FrigateStyle(fps=5)
    if variant == "frigate_allframes":
        return lambda w, h: FrigateStyle(fps=1000)
    if variant == "mog2":
        return lambda w, h: Mog2(fps=5)
    return None  # ours


def cpu_per_stream_second(path: Path, variant: str) -> float:
    """Process CPU seconds (all threads, FFmpeg's included) per second of video, through the
    hub's analysis pipeline (``media.analysis.Analysis``) or, for ``decode``, decoding alone."""
    # Benchmarks measure steady state: no start-up learning period (it is cheaper anyway).
    settings = DetectionSettings(settle_seconds=0.0)
    if variant == "ours_allframes":
        settings = dataclasses.replace(settings, detect_fps=0)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        t0 = time.process_time()
        if variant == "decode":
            dec = LumaDecoder(s)
            for packet in c.demux(s):
                dec.decode(packet)
            dec.flush()
        else:
            mode = "keyframes" if variant == "keyframes" else "full"
            analysis = Analysis(
                settings, EventSettings(), mode=mode, detector=make_detector(variant)
            )
            analysis.connect(s)
            for packet in c.demux(s):
                analysis.feed(packet)
            analysis.finish()
        cpu = time.process_time() - t0
        duration = float(s.duration * s.time_base) if s.duration and s.time_base else 0.0
        return cpu / (duration or s.frames / 30.0)


def cpu_table(paths: dict[str, Path], variants: tuple[str, ...], repeat: int) -> dict[str, float]:
    """Median over ``repeat`` rounds, variants interleaved within each round, so that load
    from other processes on the shared machine falls on all variants alike. ``paths`` maps a
    variant to its clip (idle mode runs on a quiet clip, the rest on one with people)."""
    samples: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(repeat):
        for v in variants:
            samples[v].append(cpu_per_stream_second(paths[v], v))
    return {v: statistics.median(x) for v, x in samples.items()}


def warm_up() -> None:
    """Load every Numba kernel once (cache load costs ~0.2 s, once per process)."""

    det = MotionDetector(DetectionSettings(settle_seconds=0.0, detect_fps=0), 640, 360)
    for i in range(5):
        det.process(LumaFrame(np.full((360, 640), 100 + i, np.uint8), i / 10, False))


def kernel_vs_floor(path: Path, repeat: int = 60) -> dict[str, float]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        frames = [f for _, f in zip(range(30), c.decode(s), strict=False)]
    views = []
    for f in frames:
        p = f.planes[0]
        views.append(
            np.frombuffer(memoryview(p), np.uint8).reshape(p.height, p.line_size)[:, : p.width]
        )
    y = views[0]
    block = max(1, y.shape[0] // 120)
    out = np.empty((y.shape[0] // block, y.shape[1] // block), np.float32)
    block_means(y, block, out)
    flat = [np.ascontiguousarray(v).ravel().view(np.uint64) for v in views]

    def interleaved(fns: dict[str, object], items: dict[str, list[object]]) -> dict[str, float]:
        # The machine is shared: run the variants in alternation, many rounds, and keep the
        # median per-item time, so that load from elsewhere hits all of them alike.
        samples: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(repeat):
            for name, fn in fns.items():
                batch = items[name]
                t0 = time.perf_counter()
                for it in batch:
                    fn(it)  # type: ignore[operator]
                samples[name].append((time.perf_counter() - t0) / len(batch))
        return {k: statistics.median(v) for k, v in samples.items()}

    got = interleaved(
        {
            "hot_kernel": lambda v: block_means(v, block, out),
            "hot_floor": lambda a: a.sum(),
            "stream_kernel": lambda v: block_means(v, block, out),
            "stream_floor": lambda a: a.sum(),
        },
        {
            "hot_kernel": [y] * 10,
            "hot_floor": [flat[0]] * 10,
            "stream_kernel": views,
            "stream_floor": flat,
        },
    )
    hot_kernel, hot_floor = got["hot_kernel"], got["hot_floor"]
    stream_kernel, stream_floor = got["stream_kernel"], got["stream_floor"]

    def t(fn, items):  # type: ignore[no-untyped-def]
        samples = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            for it in items:
                fn(it)
            samples.append((time.perf_counter() - t0) / len(items))
        return statistics.median(samples)

    det = MotionDetector(
        DetectionSettings(detect_fps=0, settle_seconds=0.0), y.shape[1], y.shape[0]
    )

    for i in range(40):  # past start-up settling
        det.process(LumaFrame(views[i % 30], i / 30, False))
    n = [40]

    def step(v):
        n[0] += 1
        det.process(LumaFrame(v, n[0] / 30, False))

    full_step = t(step, views)
    return {
        "kernel_hot_ms": hot_kernel * 1e3,
        "floor_hot_ms": hot_floor * 1e3,
        "kernel_stream_ms": stream_kernel * 1e3,
        "floor_stream_ms": stream_floor * 1e3,
        "detector_step_ms": full_step * 1e3,
        "bytes": int(y.size),
    }


def _rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _ReplayMemory:
    """Observer: resident memory just before each rewind and its peak while replaying."""

    def __init__(self) -> None:
        self.added: list[int] = []
        self._before = 0
        self._until = -1.0

    def rewound(self, to: float, at: float) -> None:
        self._before, self._until = _rss(), at
        self.added.append(0)

    def looked_again(self, at: float, result: object, explain: object) -> None:
        """The start-up's frames looked at again: no rewind, nothing to measure."""

    def analysed(self, frame: LumaFrame, result: object, detector: object) -> None:
        if frame.pts <= self._until:
            self.added[-1] = max(self.added[-1], _rss() - self._before)

    def events(self, changes: object, frame_time: float) -> None:
        pass


def rewind_memory(seconds: float = 10.0) -> dict[str, float]:
    """What idle mode's rewind costs in memory at 4K30 (camera bitrate, 2 s GOP, people
    driving in after a quiet start): the compressed packets of the previous and current GOP
    kept for it (peak), one snapshot of the detector's learned state, and the resident memory
    the replay adds while it decodes two GOPs again (peak over the rewinds)."""
    bitrate = camera_bitrate(3840, 2160, 30)
    path = cache_dir() / f"bench-cars-3840x2160-30fps-{seconds:g}s-gop2-{bitrate}bps.mp4"
    if not path.exists():
        made = make_scene("cars", width=3840, height=2160, fps=30, seed=0, duration=seconds)
        encode_scene(made, path, gop_seconds=2.0, bitrate=bitrate, preset="ultrafast", threads=2)
    watcher = _ReplayMemory()
    settings = DetectionSettings(settle_seconds=0.0)
    analysis = Analysis(settings, EventSettings(), mode="keyframes", observer=watcher)
    kept = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        analysis.connect(s)
        for packet in c.demux(s):
            analysis.feed(packet)
            kept = max(kept, analysis.kept_bytes)
        analysis.finish()
    assert analysis.detector is not None
    state = len(pickle.dumps(analysis.detector.snapshot()))
    return {
        "bitrate_mbps": bitrate / 1e6,
        "kept_packets_peak_mb": kept / 1e6,
        "snapshot_mb": state / 1e6,
        "replay_rss_added_mb": max(watcher.added, default=0) / 1e6,
        "rewinds": analysis.rewinds,
    }


def keyframes_latency() -> dict[str, float]:
    delays = []
    for name in ("walkers", "small", "demo", "night"):
        for seed in (0, 1):
            case = Case(name, seed)
            full = scan_file(case.video(), DetectionSettings(), EventSettings(), mode="full")
            idle = scan_file(case.video(), DetectionSettings(), EventSettings(), mode="keyframes")
            for a in full.events:  # the idle-mode event covering the same motion
                match = [b for b in idle.events if b.start <= a.end and b.end >= a.start]
                if match:
                    delays.append(match[0].start - a.start)
    return {"mean_s": statistics.fmean(delays), "max_s": max(delays), "events": len(delays)}


def clipping_cost(repeat: int = 20) -> dict[str, float]:
    """What reading the pixels of flagged cells for clipped highlights costs at 4K, beside the
    block-mean pass over the same frame. The frame is all highlights (200-255) and the
    flagged cells all darker than predicted, so that every one of them is read: the worst
    case for that share of flagged cells (over 45 % the frame is a global change and the
    test is not reached)."""
    rng = np.random.default_rng(0)
    y = rng.integers(200, 256, (2160, 3840), dtype=np.uint8)
    block = 18
    m = block_means(y, block)
    rows, cols = m.shape
    got: dict[str, float] = {}
    for share in (0.01, 0.1, 0.4):
        samples = []
        for _ in range(repeat):
            f = np.zeros((G.F_PLANES, rows, cols), np.float32)
            u = np.zeros((G.U_PLANES, rows, cols), np.uint8)
            f[G.BG] = m + 30.0
            u[G.CHANGED] = rng.random((rows, cols)) < share
            t0 = time.perf_counter()
            clipped_cells(y, block, m, f, u)
            samples.append(time.perf_counter() - t0)
        got[f"flagged_{round(share * 100)}pct_ms"] = statistics.median(samples) * 1e3
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        block_means(y, block, m)
        samples.append(time.perf_counter() - t0)
    got["block_means_ms"] = statistics.median(samples) * 1e3
    return got


def main() -> int:
    # Steady state from the first frame (see above): the detector learns no start-up, and
    # idle mode does not decode it at full rate (on a clip of a few seconds the start-up
    # would be all of it, and idle mode would cost what full-rate decoding does).
    detector_module.STARTUP_SECONDS = 0.0
    analysis_module.STARTUP_SECONDS = 0.0
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--kernel-only", action="store_true", help="only the kernel vs floor part")
    ap.add_argument(
        "--memory-only", action="store_true", help="only the memory cost of idle-mode rewinds"
    )
    args = ap.parse_args()
    result: dict[str, object] = {"bench": "motion_cpu"}
    mem = rewind_memory()
    result["rewind_memory_4k"] = {k: round(v, 3) for k, v in mem.items()}
    print(
        f"idle-mode rewind at 4K30, {mem['bitrate_mbps']:.1f} Mbit/s, 2 s GOP: packets of two "
        f"GOPs kept {mem['kept_packets_peak_mb']:.1f} MB (peak), detector snapshot "
        f"{mem['snapshot_mb']:.2f} MB, replay adds {mem['replay_rss_added_mb']:.0f} MB resident "
        f"({mem['rewinds']:.0f} rewinds)"
    )
    if args.memory_only:
        print(json.dumps(result))
        return 0
    k4 = clip(3840, 2160, "h264", args.seconds)
    kf = kernel_vs_floor(k4)
    result["kernel_4k"] = {k: round(v, 4) for k, v in kf.items()}
    print(f"4K Y plane ({kf['bytes']} bytes), ms per frame (median):")
    print(
        f"  block-mean kernel: hot {kf['kernel_hot_ms']:.3f} vs read floor {kf['floor_hot_ms']:.3f}"
        f" -> {kf['kernel_hot_ms'] / kf['floor_hot_ms']:.2f}x;  streaming "
        f"{kf['kernel_stream_ms']:.3f} vs {kf['floor_stream_ms']:.3f} -> "
        f"{kf['kernel_stream_ms'] / kf['floor_stream_ms']:.2f}x"
    )
    print(f"  whole detector step (kernel + grid + blobs + tracking): {kf['detector_step_ms']:.3f}")
    cc = clipping_cost()
    result["clipping_4k"] = {k: round(v, 4) for k, v in cc.items()}
    print(
        "  clipped highlights, flagged cells of an all-bright frame read: "
        + ", ".join(f"{share} % {cc[f'flagged_{share}pct_ms']:.2f}" for share in (1, 10, 40))
        + f" (block-mean pass over the same frame {cc['block_means_ms']:.2f})"
    )
    if args.kernel_only:
        print(json.dumps(result))
        return 0
    variants = (
        "decode",
        "ours",
        "ours_allframes",
        "decode_quiet",
        "keyframes",
        "frigate",
        "frigate_allframes",
        "mog2",
    )
    sizes = {
        "4K H.264": (3840, 2160, "h264"),
        "4K H.265": (3840, 2160, "hevc"),
        "1080p H.264": (1920, 1080, "h264"),
    }
    warm_up()
    print(
        f"\nCPU-seconds per stream-second (median of {args.repeat}), ratio to decode-only of "
        "the same clip (keyframes idle mode: a quiet clip), cameras per 2-core machine:"
    )
    print(f"{'stream':12s} " + " ".join(f"{v:>18s}" for v in variants))
    table: dict[str, dict[str, float]] = {}
    for label, (w, h, codec) in sizes.items():
        busy = clip(w, h, codec, args.seconds)
        quiet = clip(w, h, codec, args.seconds, scene="static")
        paths = {v: quiet if v in ("decode_quiet", "keyframes") else busy for v in variants}
        row = cpu_table(paths, variants, args.repeat)
        table[label] = {v: round(x, 4) for v, x in row.items()}
        # idle mode is compared with decoding the same (quiet) clip
        base = {v: row["decode_quiet" if paths[v] == quiet else "decode"] for v in variants}
        print(
            f"{label:12s} "
            + " ".join(
                f"{row[v]:6.3f} {row[v] / base[v]:4.2f}x {2 / row[v]:4.1f}c" for v in variants
            )
        )
    result["cpu_per_stream_second"] = table
    lat = keyframes_latency()
    result["keyframes_latency"] = {k: round(v, 3) for k, v in lat.items()}
    print(
        f"\nkeyframes-mode detection latency vs full mode (640x360, GOP 1 s, "
        f"{lat['events']} events): mean +{lat['mean_s']:.2f} s, max +{lat['max_s']:.2f} s"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
