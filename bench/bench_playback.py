"""Playback start time on loopback: relay, camsim, `privastead-hub run`, a client in this process.

A recording (numbered frames, 10 s segments, written with the hub's ``SegmentWriter``) lies in
the hub's data directory; each session asks for a 10 s range at a different offset
(``client.playback_request.open_playback``) and measures, from the request:
- the hub's answer decrypted (PlaybackRequest upload, hub woken, plan, ``live`` rekey commit
  and PlaybackAnswer through the outbox, client reads control);
- the session's keys (the ``live`` commit processed);
- the first decoded picture (viewer joined, init + first fragment read, rebased, encrypted,
  relayed, decrypted, checked, then decoded with PyAV);
- the whole range received.
Baselines in the same run: reading the same range locally from the segment files (plan,
read, rebase, decode the first picture: what playback costs without the network and MLS), and
one relay round trip of a 256-byte message. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e"), str(ROOT / "bench")]

from e2e_harness import Home, make_process  # noqa: E402

from bench_e2e import _relay_baseline  # noqa: E402
from latency_table import pct, print_latency  # noqa: E402
from privastead.client.app import Client  # noqa: E402
from privastead.client.device import DataDir  # noqa: E402
from privastead.client.playback_request import PlaybackStatus, open_playback  # noqa: E402
from privastead.clock import SystemClock  # noqa: E402
from privastead.errors import CameraUnavailableError  # noqa: E402
from privastead.media.playback import plan_playback  # noqa: E402
from privastead.media.segment_index import SegmentIndex  # noqa: E402
from privastead.ports import free_port  # noqa: E402
from support.procs import camsim  # noqa: E402
from support.recordings import record  # noqa: E402

RANGE = 10.0  # seconds asked for per session


def _first_picture(init: bytes, fragment: bytes) -> None:
    with av.open(io.BytesIO(init + fragment)) as c:
        next(iter(c.decode(video=0)))


def _local(recordings: Path, wall: float, offsets: list[float]) -> list[float]:
    """Request -> first decoded picture, reading the segment files in this process."""
    times = []
    index = SegmentIndex(recordings / "index.sqlite")
    try:
        for offset in offsets:
            started = time.perf_counter()
            plan = plan_playback(index, recordings, "door", wall + offset, wall + offset + RANGE)
            assert plan is not None
            pieces = plan.pieces()
            init, _i, _t = next(pieces)
            fragment, _i, _t = next(pieces)
            _first_picture(init, fragment)
            times.append(time.perf_counter() - started)
    finally:
        index.close()
    return times


async def _session(client: Client, start: float) -> dict[str, float]:
    at: dict[str, float] = {}

    def changed(st: PlaybackStatus) -> None:
        at.setdefault(st.phase, time.monotonic() - st.started)

    status = PlaybackStatus(on_change=changed)
    stream = open_playback(client, "door", start, start + RANGE, status=status)
    pieces: list[bytes] = []
    try:
        async for piece in stream:
            pieces.append(piece)
            if len(pieces) == 2:
                _first_picture(pieces[0], pieces[1])
                at["first picture"] = time.monotonic() - status.started
    finally:
        await stream.aclose()
    at["whole range"] = time.monotonic() - status.started
    return {
        "answer": at["catching up"],
        "keys": at["waiting"],
        "first picture": at["first picture"],
        "whole range": at["whole range"],
    }


async def _measure(client_dir: Path, wall: float, offsets: list[float]) -> dict[str, list[float]]:
    client = Client(DataDir(client_dir), clock=SystemClock())
    rows: dict[str, list[float]] = {}
    try:
        deadline = time.monotonic() + 90
        done = -1  # one warm-up session, not counted: the hub may still be starting
        while done < len(offsets):
            try:
                result = await _session(client, wall + offsets[max(done, 0)])
            except CameraUnavailableError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1.0)  # the hub is still starting
                continue
            done += 1
            for key, value in result.items():
                if done > 0:
                    rows.setdefault(key, []).append(value)
            await asyncio.sleep(0.5)
    finally:
        await client.close()
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--size", default="1280x720", help="of the recording")
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=60.0, help="of recording")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    last = max(0.0, args.seconds - RANGE - 1)
    offsets = [(i * 7.3 + 0.5) % last for i in range(args.sessions)]
    with tempfile.TemporaryDirectory(prefix="bench-playback-") as tmp:
        root = Path(tmp)
        relay = make_process(root / "relay")
        try:
            with camsim(free_port(), root / "cache", scene="demo", size="320x180", fps=5) as cam:
                home = Home(root, relay, cam.urls[0], keep_plaintext=False)
                client_dir = root / "phone"
                home.pair(client_dir, "phone")
                wall = round(time.time()) - 3600.0
                recordings = home.data / "recordings"
                record(
                    recordings,
                    "door",
                    wall,
                    args.seconds,
                    fps=args.fps,
                    gop=args.fps,
                    size=(width, height),
                )
                local = _local(recordings, wall, offsets)
                baseline = await _relay_baseline(relay.url, relay.owner_token)
                home.start_hub()
                try:
                    result = await _measure(client_dir, wall, offsets)
                finally:
                    home.stop_hub()
        finally:
            relay.kill9()
    rows = {
        "local read -> first picture (baseline)": local,
        "relay round trip (baseline)": baseline,
        **{f"request -> {k}": v for k, v in result.items()},
    }
    print_latency(rows, width=40)
    keys = {
        "local read -> first picture (baseline)": "local_first_picture",
        "relay round trip (baseline)": "relay",
        "request -> answer": "answer",
        "request -> keys": "keys",
        "request -> first picture": "first_picture",
        "request -> whole range": "whole_range",
    }
    first = pct(rows["request -> first picture"], 0.5)
    print(
        json.dumps(
            {
                "bench": "playback",
                "size": args.size,
                "fps": args.fps,
                "range_s": RANGE,
                **{f"{keys[k]}_p50_ms": round(pct(v, 0.5) * 1e3, 1) for k, v in rows.items()},
                **{f"{keys[k]}_p95_ms": round(pct(v, 0.95) * 1e3, 1) for k, v in rows.items()},
                "first_picture_vs_local": round(first / pct(local, 0.5), 1),
                "sessions": len(result.get("first picture", [])),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
