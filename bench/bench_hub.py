"""Hub CPU cost per camera: CPU-seconds per stream-second, against decoding and discarding.

A privastead-camsim subprocess serves a generated scene (default: 4K30 H.264, scene `demo`);
this process then reads it for --seconds in each configuration, one after the other, and
measures its own CPU time (all threads):

  decode-only   ingest + decode every frame (thread_type AUTO) and discard it: the baseline
  hub full      the real pipeline: ingest, ring, decode, detector, events, recorder
  hub keyframes the same with keyframes-only decoding while idle

It prints a table and one JSON line. "decoded" is the share of the stream's frames that were
decoded and analysed in the window (below 100 % in `full` mode the analysis fell behind and
dropped GOPs; in `keyframes` mode it is the keyframe share while idle). "cams/2 cores" is how
many such streams two cores could carry at that cost (2 / cost): an estimate from this
measurement, not a separate run. On a shared, loaded machine the numbers move a lot.

    python bench/bench_hub.py [--size 3840x2160] [--fps 30] [--codec h264] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import av
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from privastead.hub.capture.runner import HubRunner  # noqa: E402
from privastead.hub.config import CameraConfig, HubConfig, HubSection  # noqa: E402
from privastead.media.ingest import Ingest, IngestEvent, MediaPacket, StreamInfo  # noqa: E402
from privastead.ports import free_port  # noqa: E402

CORES = 2


def cpu_seconds() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system


def start_camsim(args: argparse.Namespace, cache: Path) -> tuple[subprocess.Popen[str], str]:
    cmd = [
        sys.executable,
        "-m",
        "privastead.cli.camsim",
        "--port",
        str(free_port()),
        "--scene",
        args.scene,
        "--size",
        args.size,
        "--fps",
        str(args.fps),
        "--codec",
        args.codec,
        "--duration",
        str(args.loop),
        "--cache-dir",
        str(cache),
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    print(
        f"camsim: {' '.join(cmd[3:])} (first run encodes the scene, then it is cached)",
        file=sys.stderr,
    )
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("rtsp://"):
        proc.kill()
        raise SystemExit("camsim did not start")
    print(line.strip(), file=sys.stderr)
    return proc, line.split()[0]


def run_decode_only(url: str, seconds: float) -> tuple[float, float, int]:
    """(cpu seconds, stream seconds, frames) for ingest + decode-and-discard."""
    state: dict[str, object] = {"ctx": None, "frames": 0, "first": None, "last": None}
    lock = threading.Lock()

    def sink(event: IngestEvent) -> None:
        if isinstance(event, StreamInfo):
            ctx = av.CodecContext.create(event.codec, "r")
            if event.decoder.extradata:
                ctx.extradata = event.decoder.extradata
            ctx.thread_type = "AUTO"
            state["ctx"] = ctx
        elif isinstance(event, MediaPacket) and event.kind == "video" and state["ctx"]:
            for _ in state["ctx"].decode(event.packet):  # type: ignore[attr-defined]
                with lock:
                    state["frames"] = int(state["frames"]) + 1  # type: ignore[call-overload]
            with lock:
                if state["first"] is None:
                    state["first"] = event.pts
                state["last"] = event.pts

    ingest = Ingest(url, sink, name="baseline")
    ingest.start()
    while state["first"] is None:
        time.sleep(0.05)
    time.sleep(1.0)  # warm-up: decoder threads started, first GOP done
    with lock:
        cpu0, pts0, frames0 = cpu_seconds(), float(state["last"]), int(state["frames"])  # type: ignore[arg-type, call-overload]
    time.sleep(seconds)
    with lock:
        cpu1, pts1, frames1 = cpu_seconds(), float(state["last"]), int(state["frames"])  # type: ignore[arg-type, call-overload]
    ingest.stop()
    return cpu1 - cpu0, pts1 - pts0, frames1 - frames0


async def run_hub(url: str, seconds: float, mode: str, data: Path) -> tuple[float, float, int]:
    camera = CameraConfig(name="bench", url=url, decode=mode)  # type: ignore[arg-type]
    runner = HubRunner(HubConfig(HubSection(data_dir=data, status_interval=0), (camera,)))
    task = asyncio.create_task(runner.run())
    while "bench" not in runner.cameras or runner.cameras["bench"].health().state != "connected":  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    cam = runner.cameras["bench"]
    await asyncio.sleep(1.0)
    cpu0, pts0, f0 = cpu_seconds(), cam._last_main_pts, cam.stats.frames_analysed
    await asyncio.sleep(seconds)
    cpu1, pts1, f1 = cpu_seconds(), cam._last_main_pts, cam.stats.frames_analysed
    runner.stop()
    await task
    return cpu1 - cpu0, pts1 - pts0, f1 - f0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="3840x2160")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--codec", choices=["h264", "h265"], default="h264")
    p.add_argument("--scene", default="demo")
    p.add_argument("--loop", type=float, default=20.0, help="scene loop length, seconds")
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds per mode")
    p.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "camsim")
    args = p.parse_args()
    proc, url = start_camsim(args, args.cache_dir)
    rows: list[dict[str, object]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            runs = [("decode-only", lambda: run_decode_only(url, args.seconds))]
            for mode in ("full", "keyframes"):
                runs.append(
                    (
                        f"hub {mode}",
                        lambda m=mode: asyncio.run(  # type: ignore[misc]
                            run_hub(url, args.seconds, m, Path(tmp) / m)
                        ),
                    )
                )
            for name, fn in runs:
                cpu, stream, frames = fn()
                cost = cpu / stream if stream > 0 else float("nan")
                analysed = frames / (stream * args.fps) if stream > 0 else 0.0
                rows.append(
                    {
                        "config": name,
                        "cpu_s": round(cpu, 2),
                        "stream_s": round(stream, 2),
                        "frames": frames,
                        "cpu_per_stream_s": round(cost, 4),
                        "ms_per_frame": round(1000 * cpu / frames, 2) if frames else None,
                        "analysed_share": round(analysed, 3),
                        "cameras_2_cores": round(CORES / cost, 1) if cost > 0 else None,
                    }
                )
    finally:
        proc.terminate()
        proc.wait(10)
    base = float(rows[0]["cpu_per_stream_s"])  # type: ignore[arg-type]
    for row in rows:
        row["vs_decode_only"] = round(float(row["cpu_per_stream_s"]) / base, 3)  # type: ignore[arg-type]
    print(
        f"\nhub CPU per camera: {args.codec} {args.size} @ {args.fps:g} fps, scene {args.scene}, "
        f"{args.seconds:g} s each\n"
    )
    print(
        f"{'config':<14} {'cpu s':>7} {'stream s':>9} {'frames':>7} {'decoded':>8} "
        f"{'ms/frame':>9} {'cpu/stream s':>13} {'x decode':>9} {'cams/2 cores':>13}"
    )
    for r in rows:
        print(
            f"{r['config']:<14} {r['cpu_s']:>7} {r['stream_s']:>9} {r['frames']:>7} "
            f"{r['analysed_share']:>8.0%} {r['ms_per_frame']!s:>9} "
            f"{r['cpu_per_stream_s']:>13} {r['vs_decode_only']:>9} {r['cameras_2_cores']!s:>13}"
        )
    print(
        json.dumps(
            {
                "bench": "hub",
                "codec": args.codec,
                "size": args.size,
                "fps": args.fps,
                "scene": args.scene,
                "rows": rows,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
