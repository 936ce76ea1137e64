"""End-to-end latency on loopback: relay, camsim, `privastead-hub run`, one listening client.

Measured per event (the camsim demo scene has one walk-through per 14 s loop):
- detection -> decrypted notification at the client: from the hub's event-start time (the
  notification's ``at``, same machine clock) to the moment the client has decrypted and stored
  it (the onset -> detection lag of the detector is measured by bench_hub/bench_detection_quality);
- detection -> first decrypted clip fragment (the init segment; the hub commits a key update
  right before it);
- baseline, same run: upload of a 256-byte message by one relay client -> seen by a second one
  long-polling (the relay alone).

Then the hub's CPU per camera with encryption and upload on (``e2e_cpu.py``): a 4K30 H.264
camsim stream (scene encoded once and cached in .cache/camsim; camsim's CPU is reported apart)
read by decode-only PyAV (baseline), by the hub with local recording only, and by the same hub
with [relay] (encrypt + outbox + upload, one listening client); hub CPU-seconds per
stream-second during motion (a clip being recorded, encrypted, uploaded) and idle.

Prints tables and one JSON line. `python bench/bench_e2e.py [--events 4] [--cpu-seconds 60]`;
`--quick` for a smoke run (2 events, CPU at 640x360 for 25 s per configuration);
`--skip-cpu` / `--skip-latency` run one half.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]

from e2e_harness import Home, make_process  # noqa: E402

from e2e_cpu import CpuResult, measure, print_table  # noqa: E402
from latency_table import pct, print_latency  # noqa: E402
from privastead.client.app import Client  # noqa: E402
from privastead.client.device import DataDir  # noqa: E402
from privastead.clock import SystemClock  # noqa: E402
from privastead.ports import free_port  # noqa: E402
from privastead.protocol.codec import Message  # noqa: E402
from privastead.protocol.messages import ClipFragment, Notification  # noqa: E402
from privastead.relay.client import RelayClient  # noqa: E402
from support.procs import camsim  # noqa: E402


async def _relay_baseline(url: str, token: str, n: int = 30) -> list[float]:
    mailbox = secrets.token_hex(16)
    out: list[float] = []
    async with RelayClient(url, token) as a, RelayClient(url, token) as b:
        await a.create_mailbox(mailbox)
        after = 0
        for _ in range(n):
            waiter = asyncio.create_task(b.list_messages(mailbox, after=after, wait=10))
            await asyncio.sleep(0.05)
            start = time.time()
            await a.upload(mailbox, secrets.token_bytes(256), secrets.token_hex(16))
            page = await waiter
            out.append(time.time() - start)
            after = page.messages[-1].seq
        await a.delete_mailbox(mailbox)
    return out


async def _measure(home: Home, client: Path, events: int, limit: float) -> dict[str, list[float]]:
    notes: dict[str, float] = {}  # event id -> detection time
    note_lat: list[float] = []
    frag_lat: list[float] = []
    seen_frag: set[str] = set()
    stop = asyncio.Event()

    def on_message(camera: str, group: str, message: Message) -> None:
        now = time.time()
        if isinstance(message, Notification) and message.event_id not in notes:
            notes[message.event_id] = message.at
            note_lat.append(now - message.at)
        elif (
            isinstance(message, ClipFragment)
            and message.index == 0
            and message.event_id in notes
            and message.event_id not in seen_frag
        ):
            seen_frag.add(message.event_id)
            frag_lat.append(now - notes[message.event_id])
            if len(frag_lat) >= events:
                stop.set()

    syncer = Client(DataDir(client), clock=SystemClock(), on_message=on_message)
    asyncio.get_running_loop().call_later(limit, stop.set)
    await syncer.listen(poll=1.0, stop=stop)
    await syncer.close()
    return {"notification": note_lat, "first_fragment": frag_lat}


def _cpu(root: Path, relay: object, args: argparse.Namespace) -> CpuResult:
    """The hub's CPU per camera (see e2e_cpu.py) on its own camsim stream and hub home."""
    cache = ROOT / ".cache" / "camsim"  # a 4K scene takes minutes to encode: keep it
    extra = ("--codec", "h264")
    print(f"camsim {args.cpu_size}@{args.cpu_fps:g} (first run encodes the scene)", file=sys.stderr)
    with camsim(
        free_port(),
        cache,
        *extra,
        scene="demo",
        size=args.cpu_size,
        fps=args.cpu_fps,
        duration=args.cpu_loop,
    ) as cam:
        cpu_root = root / "cpu"
        cpu_root.mkdir()
        home = Home(cpu_root, relay, cam.urls[0], keep_plaintext=False)  # type: ignore[arg-type]
        # The product's heartbeat period, not the tests' 2 s (it would inflate the idle cost).
        text = home.config.read_text().replace(
            "heartbeat_interval = 2.0", "heartbeat_interval = 120.0"
        )
        home.config.write_text(text)
        client = cpu_root / "phone"
        home.pair(client, "phone")
        assert cam.proc is not None
        return measure(home, client, cam.proc.pid, cam.urls[0], args.cpu_seconds)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--cpu-size", default="3840x2160")
    parser.add_argument("--cpu-fps", type=float, default=30.0)
    parser.add_argument("--cpu-seconds", type=float, default=60.0, help="per configuration")
    parser.add_argument("--cpu-loop", type=float, default=20.0, help="scene loop, seconds")
    parser.add_argument("--quick", action="store_true", help="smoke run: small and short")
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.events, args.cpu_size, args.cpu_fps, args.cpu_seconds = 2, "640x360", 15.0, 25.0
    result: dict[str, list[float]] = {"notification": [], "first_fragment": []}
    baseline: list[float] = []
    cpu: CpuResult | None = None
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        root = Path(tmp)
        relay = make_process(root / "relay")
        try:
            if not args.skip_latency:
                with camsim(
                    free_port(), root / "cache", scene="demo", size=args.size, fps=15, duration=14
                ) as cam:
                    home = Home(root, relay, cam.urls[0], keep_plaintext=False)
                    client = root / "phone"
                    home.pair(client, "phone")
                    baseline = await _relay_baseline(relay.url, relay.owner_token)
                    home.start_hub()
                    try:
                        result = await _measure(home, client, args.events, 20.0 * args.events + 40)
                    finally:
                        home.stop_hub()
            if not args.skip_cpu:
                cpu = _cpu(root, relay, args)
        finally:
            relay.kill9()
    if cpu is not None:
        print_table(cpu, f"H.264 {args.cpu_size}@{args.cpu_fps:g}, {args.cpu_seconds:g} s each")
    rows = {"relay round trip (baseline)": baseline, **result}
    if not args.skip_latency:
        print_latency(rows, 32)
    _print_json(args, rows, result, cpu)


def _print_json(
    args: argparse.Namespace,
    rows: dict[str, list[float]],
    result: dict[str, list[float]],
    cpu: CpuResult | None,
) -> None:
    print(
        json.dumps(
            {
                "bench": "e2e",
                "size": args.size,
                **{
                    f"{k.split(' ')[0]}_p50_ms": round(pct(v, 0.5) * 1e3, 1)
                    for k, v in rows.items()
                },
                **{
                    f"{k.split(' ')[0]}_p95_ms": round(pct(v, 0.95) * 1e3, 1)
                    for k, v in rows.items()
                },
                "events": len(result["notification"]),
                "cpu": None
                if cpu is None
                else {
                    "size": args.cpu_size,
                    "fps": args.cpu_fps,
                    "seconds": args.cpu_seconds,
                    "rows": cpu.rows,
                    "not_counted": cpu.others,
                },
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
