"""The hub's event-loop lag and CPU per camera while it records, uploads and streams live.

Real processes on loopback: a relay, one `privastead-camsim` per camera (default 2 x 4K30 and
2 x 1080p30 H.264, scene `walkers`: people cross the picture all the time, so clips are
recorded and uploaded throughout) and `privastead-hub run` with `[metrics]` on. The lag is
the hub's own probe (``hub/admin/loop_lag.py``: how late a 10 ms timer fires, the last 60 s),
read from its metrics endpoint at the end of each window; CPU is the hub process's (all
threads, psutil) over the same window, divided by the number of cameras.

Two phases in one run, on the same cameras:

  recording only (baseline)  no relay: capture, analysis, recording, no MLS and no upload
  full                       relay, a paired client in this process streaming `--live`
                             cameras live the whole window, every clip encrypted and uploaded

Target (docs/design/hub-concurrency.md): p99 lag <= 20 ms with everything on. Prints a table and
one JSON line. On a loaded 2-core machine 4K decoding may not keep up; `--sizes` takes smaller
ones (say so when quoting the numbers).

    python bench/bench_hub_loop.py [--sizes 3840x2160,3840x2160,1920x1080,1920x1080]
        [--fps 30] [--window 60] [--warmup 20] [--live 2] [--profile DIR]
        [--busy N [--busy-same-group]]

``--busy N`` runs N processes that spin on a core each for the whole run (another program
wanting the machine); the table then also shows what that costs detection: packets the
analysis dropped because it fell behind.

A size ``file:PATH`` loops a pre-encoded H.264 file instead of rendering a scene (4K scenes
take too long to render here: ``bench/upscale.py`` makes one from a smaller scene).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e"), str(ROOT / "bench")]

from e2e_harness import Home, env, make_process  # noqa: E402

from privastead.client.app import Client  # noqa: E402
from privastead.client.device import DataDir  # noqa: E402
from privastead.client.live_request import open_live  # noqa: E402
from privastead.clock import SystemClock  # noqa: E402
from privastead.errors import PrivasteadError  # noqa: E402
from privastead.ports import free_port  # noqa: E402
from support.procs import Proc, camsim  # noqa: E402

LAG = re.compile(r'^privastead_hub_event_loop_lag_seconds\{quantile="([0-9.]+)"\} (\S+)$', re.M)


def _config(root: Path, urls: list[str], metrics: int, relay: tuple[str, Path] | None) -> str:
    text = f'[hub]\ndata_dir = "{root / "hub"}"\nstatus_interval = 0\n\n'
    if relay is not None:
        text += f'[relay]\nurl = "{relay[0]}"\ntoken_file = "{relay[1]}"\n\n'
    text += f'[metrics]\nenabled = true\nlisten = "127.0.0.1:{metrics}"\n\n'
    for i, url in enumerate(urls):
        text += f'[[cameras]]\nname = "cam{i}"\nurl = "{url}"\n\n'
    return text


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return str(r.read().decode())


def _lags(text: str) -> dict[str, float]:
    q = {float(k): float(v) * 1000 for k, v in LAG.findall(text)}
    return {
        "p50": q.get(0.5, float("nan")),
        "p99": q.get(0.99, float("nan")),
        "max": q.get(1.0, float("nan")),
    }


def _wait_connected(port: int, cameras: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            up = re.findall(
                r"^privastead_hub_camera_connected\{[^}]*\} (\S+)$", _scrape(port), re.M
            )
            if len(up) == cameras and all(float(v) == 1 for v in up):
                return
        time.sleep(1)
    raise RuntimeError("the hub's cameras did not all connect")


async def _watch(client: Client, camera: str, until: float, counts: dict[str, int]) -> None:
    """Watch ``camera`` live until ``until``, counting the bytes (one client for all cameras:
    it owns the data directory)."""
    while time.monotonic() < until:
        try:
            stream = open_live(client, camera, seconds=until - time.monotonic())
            async for piece in stream:
                counts[camera] = counts.get(camera, 0) + len(piece)
                if time.monotonic() >= until:
                    break
            await stream.aclose()
        except PrivasteadError as e:
            if not counts.get(f"error:{camera}"):
                print(f"live {camera}: {type(e).__name__}: {e} (retrying)", flush=True)
            counts[f"error:{camera}"] = 1
            await asyncio.sleep(1.0)


def _start_profiled(home: Home, report: Path) -> None:
    """The hub under ``loop_profiler.py`` (same command line, same environment)."""
    cmd = [sys.executable, str(ROOT / "bench" / "loop_profiler.py"), str(report), "--"]
    cmd += ["--log-level", "INFO", "run", "--config", str(home.config)]
    with home.hub_log.open("a") as log:
        home.hub = subprocess.Popen(cmd, env=env(), stdout=log, stderr=log, text=True)


def _total(text: str, metric: str) -> int:
    """A per-camera counter summed over the cameras."""
    return sum(int(float(v)) for v in re.findall(rf"^{metric}\{{[^}}]*\}} (\S+)$", text, re.M))


def _busy(count: int, same_group: bool) -> list[subprocess.Popen[bytes]]:
    """``count`` processes that spin on a core each: another program wanting the machine.

    By default each starts its own session, as another service or a program started from
    another terminal runs: the kernel then shares the cores between scheduling groups first
    (autogroups, or a systemd service's cgroup) and by nice value only within a group.
    ``same_group`` keeps them in the benchmark's group, as if started from the hub's own
    shell: the hub's threads then compete with them one by one."""
    return [
        subprocess.Popen(
            [sys.executable, "-c", "while True: pass"], start_new_session=not same_group
        )
        for _ in range(count)
    ]


async def _window(
    home: Home,
    port: int,
    args: argparse.Namespace,
    phone: Path | None,
    cameras: int,
    profile: Path | None = None,
) -> dict[str, Any]:
    if profile is None:
        home.start_hub()
    else:
        _start_profiled(home, profile)
    assert home.hub is not None
    try:
        _wait_connected(port, cameras, 120)
        await asyncio.sleep(args.warmup)
        proc = psutil.Process(home.hub.pid)
        cpu0 = sum(proc.cpu_times()[:2])
        t0 = time.monotonic()
        counts: dict[str, int] = {}
        watchers = []
        client = None
        if phone is not None:
            until = t0 + args.window
            client = Client(DataDir(phone), clock=SystemClock())
            watchers = [
                asyncio.create_task(_watch(client, f"cam{i}", until, counts))
                for i in range(min(args.live, cameras))
            ]
        await asyncio.sleep(args.window)
        text = await asyncio.to_thread(_scrape, port)
        elapsed = time.monotonic() - t0
        cpu = sum(proc.cpu_times()[:2]) - cpu0
        # The watchers end on their own at ``until`` (their sessions are time-limited), closing
        # their clients; cancel only one that hangs.
        _done, hanging = await asyncio.wait(watchers, timeout=30) if watchers else (set(), set())
        for task in hanging:
            task.cancel()
        for result in await asyncio.gather(*watchers, return_exceptions=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                print(f"live watcher failed: {result!r}", flush=True)  # never silently
        if client is not None:
            await client.close()
    finally:
        home.stop_hub()
    clips = _total(text, "privastead_hub_camera_clips_total")
    sent = re.search(r"^privastead_hub_sent_fragments_total (\S+)$", text, re.M)
    return {
        **_lags(text),
        "cpu_per_camera": cpu / elapsed / cameras,
        "clips": clips,
        # Detection packets the analysis dropped because it fell behind (it skips to the next
        # keyframe; recording goes on): what a loaded machine costs the detector.
        "dropped": _total(text, "privastead_hub_camera_dropped_packets_total"),
        "fragments_sent": int(float(sent.group(1))) if sent else 0,
        "live_mb": sum(v for k, v in counts.items() if not k.startswith("error:")) / 1e6,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="3840x2160,3840x2160,1920x1080,1920x1080")
    parser.add_argument("--fps", type=float, default=30)
    parser.add_argument("--scene", default="walkers")
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured (<= 60)")
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--live", type=int, default=2, help="cameras streamed live")
    parser.add_argument(
        "--profile",
        type=Path,
        help="directory: run each phase's hub under bench/loop_profiler.py and write "
        "<phase>.json there (what the loop did during each stall, CPU per thread)",
    )
    parser.add_argument(
        "--busy",
        type=int,
        default=0,
        help="processes spinning on a core each for the whole run, each in its own session "
        "(as another service or program would run): how the hub fares when another program "
        "wants the cores",
    )
    parser.add_argument(
        "--busy-same-group",
        action="store_true",
        help="start the --busy processes in the benchmark's own session instead, so that the "
        "hub's threads compete with them thread by thread (the worst case)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the run's directory (logs)")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "camsim")
    args = parser.parse_args()
    sizes = args.sizes.split(",")
    keep = tempfile.mkdtemp(prefix="bench-hub-loop-") if args.keep else None
    if keep:
        print(f"keeping the run's files (hub.log, data) in {keep}", flush=True)
    with (
        contextlib.nullcontext(keep)
        if keep
        else tempfile.TemporaryDirectory(prefix="bench-hub-loop-") as tmp
    ):
        root = Path(tmp)
        relay = make_process(root / "relay")
        cams: list[Proc] = []
        busy = _busy(args.busy, args.busy_same_group)
        try:
            for size in sizes:
                if size.startswith("file:"):  # a pre-encoded file, looped (bench/upscale.py)
                    print(f"camsim {size} at {args.fps} fps", flush=True)
                    extra = ("--file", size.removeprefix("file:"))
                    cam = camsim(free_port(), args.cache, *extra, fps=args.fps)
                else:
                    print(f"camsim {size} {args.fps} fps {args.scene} (first run encodes)")
                    cam = camsim(
                        free_port(),
                        args.cache,
                        scene=args.scene,
                        size=size,
                        fps=args.fps,
                        duration=20,
                    )
                cam.timeout = 1800
                cams.append(cam.start())
            urls = [c.urls[0] for c in cams]
            port = free_port()
            home = Home(root, relay, urls[0], keep_plaintext=False)
            home.config.write_text(_config(root / "local", urls, port, None))
            print("phase 1: recording only (baseline)", flush=True)
            profile = args.profile
            if profile is not None:
                profile.mkdir(parents=True, exist_ok=True)
            baseline = await _window(
                home, port, args, None, len(urls), profile and profile / "baseline.json"
            )
            token = root / "owner-token"
            home.config.write_text(_config(root, urls, port, (relay.url, token)))
            phone = root / "phone"
            home.pair(phone, "phone")
            print("phase 2: full (relay, uploads, live)", flush=True)
            full = await _window(
                home, port, args, phone, len(urls), profile and profile / "full.json"
            )
        finally:
            for cam in cams:
                cam.stop()
            relay.kill9()
            for spinner in busy:
                spinner.kill()
                spinner.wait()
    rows = {"recording only (baseline)": baseline, "full: upload + live": full}
    print(
        f"\nhub with {len(sizes)} cameras ({args.sizes} @ {args.fps:g} fps, {args.scene}), "
        f"{args.window:g} s windows, {args.live} live, {args.busy} busy processes"
        f"{' (same group)' if args.busy_same_group else ''}"
    )
    print(
        f"{'phase':28} {'lag p50':>8} {'p99':>8} {'max':>8} {'CPU/cam':>8} {'clips':>6} "
        f"{'frags':>6} {'live MB':>8} {'dropped':>8}"
    )
    for name, r in rows.items():
        print(
            f"{name:28} {r['p50']:7.1f}ms {r['p99']:7.1f}ms {r['max']:7.1f}ms "
            f"{r['cpu_per_camera']:8.3f} {r['clips']:6d} {r['fragments_sent']:6d} "
            f"{r['live_mb']:8.1f} {r['dropped']:8d}"
        )
    print(
        json.dumps(
            {
                "bench": "hub_loop",
                "sizes": args.sizes,
                "fps": args.fps,
                "window_s": args.window,
                "live_cameras": args.live,
                "busy_processes": args.busy,
                "busy_same_group": args.busy_same_group,
                "baseline_lag_p50_ms": round(baseline["p50"], 2),
                "baseline_lag_p99_ms": round(baseline["p99"], 2),
                "baseline_lag_max_ms": round(baseline["max"], 2),
                "baseline_cpu_per_camera": round(baseline["cpu_per_camera"], 3),
                "baseline_dropped_packets": baseline["dropped"],
                "lag_p50_ms": round(full["p50"], 2),
                "lag_p99_ms": round(full["p99"], 2),
                "lag_max_ms": round(full["max"], 2),
                "cpu_per_camera": round(full["cpu_per_camera"], 3),
                "clips": full["clips"],
                "dropped_packets": full["dropped"],
                "fragments_sent": full["fragments_sent"],
                "live_mb": round(full["live_mb"], 1),
                "target_p99_ms": 20,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
