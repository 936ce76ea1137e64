"""Outbox cost per message against the floor, and what a 4K30 camera's stream costs the hub's
events worker in durable writes and MLS CPU, sent one message per MLS write or in batches.

Part 1: for each payload size, appends N messages to a fresh outbox and marks them uploaded, and
compares with a baseline that writes the same bytes the same durable way (tmp, fsync, rename,
fsync dir) and deletes them.

Part 2 (``--stream-seconds``, 0 skips it): a synthetic 4K30 H.264 stream (16 Mbit/s, 1 s GOP,
keyframe 8x a P-frame) goes through the hub's real ``ClipDelivery`` (MLS groups of the Rust
core, outbox, clip journal) in two cadences: ``clip`` (the recorder's 1 s fragments) and
``frame`` (one fragment per frame, the livestream's cadence), and two feeds: ``paced`` (fed at
the stream's real rate) and ``backlog`` (the whole stream queued while the worker was busy, as
after a disk stall). ``drain_s``: from the last fragment queued until the worker was idle.
Each runs without batching (``BatchLimits(messages=1)``: one journal write, one MLS state
write and one outbox directory fsync per message, as before batching) and with the default
batch limits, in the same run. Reported per second of stream: MLS state writes (each call
into the core writes its state file once), Python-side fsyncs (journal, outbox), their sum,
and the CPU seconds spent in the core's encrypt calls.

Prints tables and one JSON line.

    PYTHONPATH=src python bench/bench_outbox.py [--count 50] [--stream-seconds 10]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from privastead.atomic_file import write_atomic
from privastead.hub.delivery.batch import BatchLimits
from privastead.hub.delivery.clip_delivery import ClipDelivery
from privastead.hub.delivery.clip_journal import ClipJournal
from privastead.hub.delivery.outbox import EntryKind, Outbox
from privastead.hub.state.groups import HubGroups

MAILBOX = "0123456789abcdef0123456789abcdef"
CAMERA = "cam4k"
FPS = 30
BITRATE = 16_000_000  # bits/s, a 4K H.264 camera (as bench/upscale.py encodes one)
KEY_TO_P = 8  # a keyframe's size in P-frames


def bench_outbox(root: Path, payload: bytes, count: int) -> tuple[float, float]:
    outbox = Outbox(root, quota_bytes=1 << 40)
    queue = outbox.mailbox(MAILBOX)
    start = time.perf_counter()
    for seq in range(count):
        queue.append(seq, payload, kind=EntryKind.CLIP_FRAGMENT, clip_id="c" * 32)
    appended = time.perf_counter()
    for entry in queue.pending():
        entry.read()
        queue.mark_uploaded(entry.seq)
    done = time.perf_counter()
    return (appended - start) / count, (done - appended) / count


def bench_floor(root: Path, payload: bytes, count: int) -> tuple[float, float]:
    root.mkdir()
    start = time.perf_counter()
    for seq in range(count):
        write_atomic(root / f"{seq}.bin", payload)
    written = time.perf_counter()
    for seq in range(count):
        (root / f"{seq}.bin").read_bytes()
        os.unlink(root / f"{seq}.bin")
    done = time.perf_counter()
    return (written - start) / count, (done - written) / count


class CountingCipher:
    """Stands in front of the group's ``Identity``: counts the core's state writes (one per
    call) and times its CPU on the calling thread (the core runs there, GIL released)."""

    def __init__(self, cipher: Any) -> None:
        self._cipher = cipher
        self.writes = 0
        self.cpu = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cipher, name)

    def _timed(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        start = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            self.cpu += time.thread_time() - start
            self.writes += 1

    def encrypt(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed(self._cipher.encrypt, *args, **kwargs)

    def encrypt_batch(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed(self._cipher.encrypt_batch, *args, **kwargs)


def stream_fragments(seconds: int, cadence: str) -> list[list[int]]:
    """Fragment sizes per second of stream: one 1 s fragment (``clip``) or one per frame."""
    p_frame = BITRATE // 8 // (KEY_TO_P + FPS - 1)
    frames = [KEY_TO_P * p_frame] + [p_frame] * (FPS - 1)
    if cadence == "clip":
        return [[sum(frames)] for _ in range(seconds)]
    return [list(frames) for _ in range(seconds)]


def bench_stream(
    root: Path, seconds: int, cadence: str, feed: str, batching: bool
) -> dict[str, Any]:
    outbox = Outbox(root / "outbox", quota_bytes=1 << 40)
    groups = HubGroups(root, outbox, [CAMERA])
    journal = ClipJournal(root / "open-clips", root / "clips")
    limits = BatchLimits() if batching else BatchLimits(messages=1)
    delivery = ClipDelivery(groups, journal, batch_limits=limits, queue_bytes=1 << 30)
    events = groups.get(CAMERA, "events")
    cipher = CountingCipher(events.sender._cipher)
    events.sender._cipher = cipher  # type: ignore[assignment]
    fsyncs = 0
    real_fsync = os.fsync

    def counted_fsync(fd: int) -> None:
        nonlocal fsyncs
        fsyncs += 1
        real_fsync(fd)

    init = b"\x00\x00\x00\x10ftypisom\x00\x00\x00\x00"
    seconds_of = stream_fragments(seconds, cadence)
    release = threading.Event()
    try:
        delivery.on_fragment(CAMERA, "e" * 32, 0, init, True)  # the clip's commit: not counted
        events.worker.drain()
        writes0, cpu0 = cipher.writes, cipher.cpu
        os.fsync = counted_fsync
        if feed == "backlog":
            events.worker.submit(release.wait)
        index = 1
        start = time.perf_counter()
        for second, sizes in enumerate(seconds_of):
            for n, size in enumerate(sizes):
                if feed == "paced":
                    due = start + second + n / len(sizes)
                    time.sleep(max(0.0, due - time.perf_counter()))
                delivery.on_fragment(CAMERA, "e" * 32, index, os.urandom(size), False)
                index += 1
        queued = time.perf_counter()
        release.set()
        events.worker.drain()
        done = time.perf_counter()
    finally:
        os.fsync = real_fsync
        release.set()
        groups.close()
    stats = delivery.batch_stats
    mls_writes = cipher.writes - writes0
    return {
        "cadence": cadence,
        "feed": feed,
        "batching": batching,
        "messages": stats.messages,
        "batches": stats.batches,
        "mls_writes_per_s": mls_writes / seconds,
        "fsyncs_per_s": fsyncs / seconds,
        "durable_writes_per_s": (mls_writes + fsyncs) / seconds,
        "mls_cpu_per_s": (cipher.cpu - cpu0) / seconds,
        "drain_s": done - queued,
    }


def run_stream(seconds: int) -> list[dict[str, Any]]:
    runs = []
    for cadence in ("clip", "frame"):
        for feed in ("paced", "backlog"):
            for batching in (False, True):
                with tempfile.TemporaryDirectory() as tmp:
                    runs.append(bench_stream(Path(tmp), seconds, cadence, feed, batching))
    header = ("cadence", "feed", "batching", "msgs", "batches", "MLS writes/s", "fsyncs/s")
    header += ("durable/s", "MLS CPU s/s", "drain s")
    print("{:>7} {:>8} {:>8} {:>5} {:>7} {:>12} {:>9} {:>9} {:>11} {:>8}".format(*header))
    for r in runs:
        print(
            f"{r['cadence']:>7} {r['feed']:>8} {'yes' if r['batching'] else 'no':>8} "
            f"{r['messages']:>5} {r['batches']:>7} {r['mls_writes_per_s']:>12.1f} "
            f"{r['fsyncs_per_s']:>9.1f} {r['durable_writes_per_s']:>9.1f} "
            f"{r['mls_cpu_per_s']:>11.4f} {r['drain_s']:>8.2f}"
        )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=50, help="messages per size (default 50)")
    parser.add_argument(
        "--stream-seconds",
        type=int,
        default=10,
        help="seconds of 4K30 stream per run of part 2 (default 10; 0 skips it)",
    )
    args = parser.parse_args()
    # The synthetic clips have no recorder file for the journal to find: say so once, here.
    logging.getLogger("privastead.hub.delivery.clip_journal").setLevel(logging.ERROR)
    rows = []
    for size in (256, 64 << 10, 1 << 20, 4 << 20):
        payload = os.urandom(size)
        with tempfile.TemporaryDirectory() as tmp:
            append, drain = bench_outbox(Path(tmp) / "outbox", payload, args.count)
            floor_write, floor_drain = bench_floor(Path(tmp) / "floor", payload, args.count)
        rows.append(
            {
                "size": size,
                "append_ms": append * 1e3,
                "floor_write_ms": floor_write * 1e3,
                "append_ratio": append / floor_write,
                "upload_mark_ms": drain * 1e3,
                "floor_delete_ms": floor_drain * 1e3,
            }
        )
    header = ("size", "append ms", "floor ms", "ratio", "read+mark ms", "floor ms")
    print("{:>9} {:>10} {:>9} {:>6} {:>13} {:>9}".format(*header))
    for r in rows:
        print(
            f"{r['size']:>9} {r['append_ms']:>10.2f} {r['floor_write_ms']:>9.2f} "
            f"{r['append_ratio']:>6.2f} {r['upload_mark_ms']:>13.2f} {r['floor_delete_ms']:>9.2f}"
        )
    stream = run_stream(args.stream_seconds) if args.stream_seconds > 0 else []
    summary = {
        f"{r['cadence']}_{r['feed']}_{'batched' if r['batching'] else 'single'}_{key}": r[key]
        for r in stream
        for key in ("durable_writes_per_s", "mls_writes_per_s", "mls_cpu_per_s")
    }
    print(
        json.dumps(
            {
                "bench": "outbox",
                "count": args.count,
                "rows": rows,
                "stream_seconds": args.stream_seconds,
                "stream": stream,
                **summary,
            }
        )
    )


if __name__ == "__main__":
    main()
