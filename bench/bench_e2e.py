"""End-to-end latency on loopback: relay, camsim, `privastead-hub run`, one listening client.

Measured per event (the camsim demo scene has one walk-through per 14 s loop):
- detection -> decrypted notification at the client: from the hub's event-start time (the
  notification's ``at``, same machine clock) to the moment the client has decrypted and stored
  it (the onset -> detection lag of the detector is measured by bench_hub/bench_detection_quality);
- detection -> first decrypted clip fragment (the init segment; the hub commits a key update
  right before it);
- baseline, same run: upload of a 256-byte message by one relay client -> seen by a second one
  long-polling (the relay alone).

Prints a table and one JSON line. `python bench/bench_e2e.py --events 4`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]

from e2e_harness import Home, make_process  # noqa: E402

from privastead.client.device import DataDir  # noqa: E402
from privastead.client.sync import Syncer  # noqa: E402
from privastead.clock import SystemClock  # noqa: E402
from privastead.protocol.codec import Message  # noqa: E402
from privastead.protocol.messages import ClipFragment, Notification  # noqa: E402
from privastead.relay.client import RelayClient  # noqa: E402
from support.procs import camsim  # noqa: E402


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


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

    syncer = Syncer(DataDir(client), clock=SystemClock(), on_message=on_message)
    asyncio.get_running_loop().call_later(limit, stop.set)
    await syncer.listen(poll=1.0, stop=stop)
    await syncer.close()
    return {"notification": note_lat, "first_fragment": frag_lat}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4)
    parser.add_argument("--size", default="640x360")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        root = Path(tmp)
        relay = make_process(root / "relay")
        try:
            with camsim(
                _port(), root / "cache", scene="demo", size=args.size, fps=15, duration=14
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
        finally:
            relay.kill9()
    rows = {"relay round trip (baseline)": baseline, **result}
    print(f"{'metric':<32} {'n':>3} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    for name, values in rows.items():
        mean = statistics.fmean(values) if values else float("nan")
        print(
            f"{name:<32} {len(values):>3} {_pct(values, 0.5) * 1e3:>8.1f} "
            f"{_pct(values, 0.95) * 1e3:>8.1f} {mean * 1e3:>8.1f}"
        )
    print(
        json.dumps(
            {
                "bench": "e2e",
                "size": args.size,
                **{
                    f"{k.split(' ')[0]}_p50_ms": round(_pct(v, 0.5) * 1e3, 1)
                    for k, v in rows.items()
                },
                **{
                    f"{k.split(' ')[0]}_p95_ms": round(_pct(v, 0.95) * 1e3, 1)
                    for k, v in rows.items()
                },
                "events": len(result["notification"]),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
