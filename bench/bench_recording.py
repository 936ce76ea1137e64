"""Continuous recording's cost per camera: hub CPU and disk writes, against decode-only.

A privastead-camsim subprocess serves a generated scene (default: 4K30 H.264, scene `demo`,
encoded once and cached; ``--file`` loops a pre-encoded video instead). This process then reads
it for ``--seconds`` in each configuration, one after the other, in the same run:

  decode-only       ingest + decode every frame and discard it: the baseline
  hub               the real camera pipeline (keyframes-only decoding while idle, detector,
                    events, clips), without continuous recording
  hub+continuous    the same with ``continuous = true``: every packet also copied into
                    60 s fMP4 segments by the camera's recorder thread (fsync per segment)

and measures its own CPU time (all threads) per stream second, the bytes the process wrote to
disk per second (``/proc/self/io`` write_bytes: segments, clips, index) and the segments'
own bytes per second. It prints a table and one JSON line. On a shared machine the numbers
move; compare rows of one run.

    python bench/bench_recording.py [--size 3840x2160] [--fps 30] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_hub import cpu_seconds, run_decode_only  # noqa: E402
from privastead.clock import SystemClock  # noqa: E402
from privastead.hub.capture.runner import HubRunner  # noqa: E402
from privastead.hub.config import CameraConfig, HubConfig, HubSection  # noqa: E402
from privastead.hub.recording.recordings import Recordings  # noqa: E402
from privastead.ports import free_port  # noqa: E402


def written_bytes() -> int:
    return int(psutil.Process().io_counters().write_bytes)


def start_camsim(args: argparse.Namespace) -> tuple[psutil.Popen, str]:
    source = ["--file", str(args.file)] if args.file else ["--scene", args.scene]
    cmd = [
        sys.executable,
        "-m",
        "privastead.cli.camsim",
        "--port",
        str(free_port()),
        *source,
        "--size",
        args.size,
        "--fps",
        str(args.fps),
        "--duration",
        str(args.loop),
        "--cache-dir",
        str(args.cache_dir),
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    print(
        f"camsim: {' '.join(cmd[3:])} (the first run encodes, then it is cached)", file=sys.stderr
    )
    proc = psutil.Popen(cmd, stdout=-1, text=True, env=env)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("rtsp://"):
        proc.kill()
        raise SystemExit("camsim did not start")
    return proc, line.split()[0]


async def run_hub(
    url: str, seconds: float, data: Path, continuous: bool
) -> tuple[float, float, int, int]:
    """(cpu s, stream s, bytes written by the process, segment bytes) over ``seconds``."""
    camera = CameraConfig(name="bench", url=url, continuous=continuous)
    config = HubConfig(HubSection(data_dir=data, status_interval=0), (camera,))
    paths = config.hub.paths()
    recordings = await asyncio.to_thread(
        Recordings.open, config.storage, config.cameras, SystemClock(), paths
    )
    runner = HubRunner(config, recordings=recordings)
    task = asyncio.create_task(runner.run())
    while "bench" not in runner.cameras or runner.cameras["bench"].health().state != "connected":  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    cam = runner.cameras["bench"]
    await asyncio.sleep(2.0)  # warm-up: the first GOP, decoder threads, the first segment

    def segment_bytes() -> int:
        return sum(p.stat().st_size for p in paths.recordings.glob("*/*/*.mp4*"))

    cpu0, pts0, io0, seg0 = cpu_seconds(), cam._last_main_pts, written_bytes(), segment_bytes()
    await asyncio.sleep(seconds)
    cpu1, pts1, io1, seg1 = cpu_seconds(), cam._last_main_pts, written_bytes(), segment_bytes()
    runner.stop()
    await task
    recordings.close()
    return cpu1 - cpu0, pts1 - pts0, io1 - io0, seg1 - seg0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="3840x2160")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--scene", default="demo")
    p.add_argument("--file", type=Path, help="loop this pre-encoded H.264 file instead")
    p.add_argument("--loop", type=float, default=10.0, help="scene loop length, seconds")
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds per config")
    p.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "camsim")
    args = p.parse_args()
    proc, url = start_camsim(args)
    rows: list[dict[str, object]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            io0 = written_bytes()
            cpu, stream, _frames = run_decode_only(url, args.seconds)
            runs = [("decode-only", cpu, stream, written_bytes() - io0, 0)]
            for name, continuous in (("hub", False), ("hub+continuous", True)):
                data = Path(tmp) / name
                runs.append((name, *asyncio.run(run_hub(url, args.seconds, data, continuous))))
            for name, cpu, stream, io, seg in runs:
                rows.append(
                    {
                        "config": name,
                        "cpu_s": round(cpu, 2),
                        "stream_s": round(stream, 2),
                        "cpu_per_stream_s": round(cpu / stream, 4) if stream > 0 else None,
                        "disk_write_mb_s": round(io / stream / 1e6, 3) if stream > 0 else None,
                        "segment_mb_s": round(seg / stream / 1e6, 3) if stream > 0 else None,
                    }
                )
    finally:
        proc.terminate()
        proc.wait(10)
    base = rows[0]["cpu_per_stream_s"]
    for row in rows:
        cost = row["cpu_per_stream_s"]
        ok = isinstance(cost, float) and isinstance(base, float) and base > 0
        row["vs_decode_only"] = round(cost / base, 3) if ok else None  # type: ignore[operator]
    source = f"file {args.file.name}" if args.file else f"scene {args.scene}"
    print(
        f"\ncontinuous recording: {args.size} @ {args.fps:g} fps, {source}, "
        f"{args.seconds:g} s each\n"
    )
    print(
        f"{'config':<16} {'cpu s':>7} {'stream s':>9} {'cpu/stream s':>13} {'x decode':>9} "
        f"{'disk MB/s':>10} {'segments MB/s':>14}"
    )
    for r in rows:
        print(
            f"{r['config']:<16} {r['cpu_s']:>7} {r['stream_s']:>9} {r['cpu_per_stream_s']!s:>13} "
            f"{r['vs_decode_only']!s:>9} {r['disk_write_mb_s']!s:>10} {r['segment_mb_s']!s:>14}"
        )
    summary = {r["config"]: r for r in rows}
    print(
        json.dumps(
            {
                "bench": "recording",
                "size": args.size,
                "fps": args.fps,
                "source": source,
                "seconds": args.seconds,
                "decode_only_cpu_per_stream_s": summary["decode-only"]["cpu_per_stream_s"],
                "hub_cpu_per_stream_s": summary["hub"]["cpu_per_stream_s"],
                "continuous_cpu_per_stream_s": summary["hub+continuous"]["cpu_per_stream_s"],
                "continuous_extra_cpu_per_stream_s": round(
                    float(summary["hub+continuous"]["cpu_per_stream_s"] or 0)  # type: ignore[arg-type]
                    - float(summary["hub"]["cpu_per_stream_s"] or 0),  # type: ignore[arg-type]
                    4,
                ),
                "continuous_disk_write_mb_s": summary["hub+continuous"]["disk_write_mb_s"],
                "continuous_segment_mb_s": summary["hub+continuous"]["segment_mb_s"],
                "hub_disk_write_mb_s": summary["hub"]["disk_write_mb_s"],
                "rows": rows,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
