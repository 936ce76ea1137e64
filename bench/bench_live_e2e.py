"""Livestream start-up on loopback: relay, camsim, `privastead-hub run`, a client in this process.

Measured per session (``client.live_request.open_live``, phases from ``LiveStatus``):
- request -> answer decrypted (LiveRequest upload, hub woken by the relay's news, rekey
  commit and LiveAnswer through the outbox, client reads control);
- request -> session keys (the client has processed the live group's commit);
- request -> first decrypted picture (viewer joined, ring keyframe muxed, encrypted, relayed);
- a second viewer joining the running session -> its first picture (waits for a keyframe).
Baseline, same run: one relay round trip of a 256-byte message (upload -> long-poll sees it).

With ``--latency SECONDS``: one session that long, and per fragment the latency of its newest
frame from its arrival at the hub (``LivePayload.arrived``; camsim sends each frame when it is
due, and RTSP over loopback adds a few ms) to decrypted at the client, and of its oldest frame
(plus the frames it waited for). Run it per size: `--size 1920x1080 --latency 20`,
`--size 3840x2160 --latency 20`. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e"), str(ROOT / "bench")]

from e2e_harness import Home, make_process  # noqa: E402

from bench_e2e import _relay_baseline  # noqa: E402
from latency_table import pct, print_latency  # noqa: E402
from privastead.client.app import Client  # noqa: E402
from privastead.client.device import DataDir  # noqa: E402
from privastead.client.live_request import LiveStatus, open_live  # noqa: E402
from privastead.clock import SystemClock  # noqa: E402
from privastead.errors import CameraUnavailableError  # noqa: E402
from privastead.media.fmp4 import fragment_info  # noqa: E402
from privastead.ports import free_port  # noqa: E402
from support.procs import camsim  # noqa: E402

WARMUP = 2.0  # seconds of a session not counted in the latency (the ring's catch-up)


class Phases:
    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.status = LiveStatus(on_change=self._changed)

    def _changed(self, status: LiveStatus) -> None:
        self.at.setdefault(status.phase, time.monotonic() - status.started)


async def _session(syncer: Client, joiner: Client | None) -> dict[str, float]:
    phases = Phases()
    stream = open_live(syncer, "door", status=phases.status)
    try:
        await stream.__anext__()
        out = {
            "answer": phases.at["catching up"],
            "keys": phases.at["waiting"],
            "first picture": phases.at["playing"],
        }
        if joiner is not None:
            second = Phases()
            other = open_live(joiner, "door", status=second.status)
            reader = asyncio.create_task(stream.__anext__())  # keep the first viewer reading
            try:
                await other.__anext__()
                out["joiner first picture"] = second.at["playing"]
            finally:
                await other.aclose()
                reader.cancel()
        return out
    finally:
        await stream.aclose()


async def _latency(a: Path, seconds: float, fps: float) -> dict[str, list[float]]:
    syncer = Client(DataDir(a), clock=SystemClock())
    newest: list[float] = []
    oldest: list[float] = []
    try:
        deadline = time.monotonic() + 90
        while True:
            status = LiveStatus()
            stream = open_live(syncer, "door", status=status, seconds=seconds)
            try:
                started = None
                async for piece in stream:
                    now = time.time()
                    started = started or now
                    runs = fragment_info(piece)
                    # The first GOP comes from the ring, up to a GOP old by design: the catch-up
                    # is not the steady state being measured.
                    if status.arrived and runs and now - started > WARMUP:
                        per_track: dict[int, int] = {}
                        for run in runs:  # one moof+mdat per frame: add them up per track
                            per_track[run.track_id] = per_track.get(run.track_id, 0) + run.samples
                        frames = max(per_track.values())
                        newest.append(now - status.arrived)
                        oldest.append(now - status.arrived + (frames - 1) / fps)
                break
            except CameraUnavailableError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1.0)
            finally:
                await stream.aclose()
    finally:
        await syncer.close()
    return {"newest frame": newest, "oldest frame": oldest}


async def _measure(a: Path, b: Path, sessions: int) -> dict[str, list[float]]:
    syncer = Client(DataDir(a), clock=SystemClock())
    joiner = Client(DataDir(b), clock=SystemClock())
    rows: dict[str, list[float]] = {}
    try:
        deadline = time.monotonic() + 90
        done = 0
        while done < sessions:
            try:
                result = await _session(syncer, joiner if done % 2 else None)
            except CameraUnavailableError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1.0)  # the hub's camera is still connecting
                continue
            done += 1
            for key, value in result.items():
                rows.setdefault(key, []).append(value)
            await asyncio.sleep(1.5)  # let the hub see the session end
    finally:
        await syncer.close()
        await joiner.close()
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds of one session")
    parser.add_argument(
        "--cache", type=Path, default=ROOT / ".cache" / "camsim", help="camsim's scene cache"
    )
    args = parser.parse_args()
    if args.latency:
        await _latency_main(args)
        return
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        root = Path(tmp)
        relay = make_process(root / "relay")
        try:
            with camsim(
                free_port(), root / "cache", scene="demo", size=args.size, fps=args.fps, duration=14
            ) as cam:
                home = Home(root, relay, cam.urls[0], keep_plaintext=False)
                a, b = root / "phone-a", root / "phone-b"
                home.pair(a, "phone-a")
                home.pair(b, "phone-b")
                baseline = await _relay_baseline(relay.url, relay.owner_token)
                home.start_hub()
                try:
                    result = await _measure(a, b, args.sessions)
                finally:
                    home.stop_hub()
        finally:
            relay.kill9()
    rows = {"relay round trip (baseline)": baseline}
    rows.update({f"request -> {k}": v for k, v in result.items() if k != "joiner first picture"})
    rows["join -> first picture"] = result.get("joiner first picture", [])
    print_latency(rows)
    keys = {
        "relay round trip (baseline)": "relay",
        "request -> answer": "answer",
        "request -> keys": "keys",
        "request -> first picture": "first_picture",
        "join -> first picture": "join_first_picture",
    }
    print(
        json.dumps(
            {
                "bench": "live_e2e",
                "size": args.size,
                "fps": args.fps,
                **{f"{keys[k]}_p50_ms": round(pct(v, 0.5) * 1e3, 1) for k, v in rows.items()},
                **{f"{keys[k]}_p95_ms": round(pct(v, 0.95) * 1e3, 1) for k, v in rows.items()},
                "sessions": len(result.get("first picture", [])),
            }
        )
    )


async def _latency_main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        root = Path(tmp)
        relay = make_process(root / "relay")
        try:
            with camsim(
                free_port(), args.cache, scene="demo", size=args.size, fps=args.fps, duration=14
            ) as cam:
                home = Home(root, relay, cam.urls[0], keep_plaintext=False)
                a = root / "phone-a"
                home.pair(a, "phone-a")
                home.start_hub()
                try:
                    rows = await _latency(a, args.latency, args.fps)
                finally:
                    home.stop_hub()
        finally:
            relay.kill9()
    print(f"{'hub arrival -> decrypted, ' + args.size:<40} {'n':>4} {'p50 ms':>8} {'p95 ms':>8}")
    for name, values in rows.items():
        print(
            f"{name:<40} {len(values):>4} {pct(values, 0.5) * 1e3:>8.1f} "
            f"{pct(values, 0.95) * 1e3:>8.1f}"
        )
    print(
        json.dumps(
            {
                "bench": "live_latency",
                "size": args.size,
                "fps": args.fps,
                **{f"{k.split()[0]}_p50_ms": round(pct(v, 0.5) * 1e3, 1) for k, v in rows.items()},
                **{f"{k.split()[0]}_p95_ms": round(pct(v, 0.95) * 1e3, 1) for k, v in rows.items()},
                "fragments": len(rows["newest frame"]),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
