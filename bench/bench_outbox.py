"""Outbox cost per message against the floor: the same bytes written with tmp+fsync+rename.

For each payload size, appends N messages to a fresh outbox and marks them uploaded, and
compares with a baseline that writes the same bytes the same durable way (tmp, fsync, rename,
fsync dir) and deletes them. Prints a table and one JSON line.

    PYTHONPATH=src python bench/bench_outbox.py [--count 50]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from privastead.atomic_file import write_atomic
from privastead.hub.delivery.outbox import EntryKind, Outbox

MAILBOX = "0123456789abcdef0123456789abcdef"


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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=50, help="messages per size (default 50)")
    args = parser.parse_args()
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
    print(json.dumps({"bench": "outbox", "count": args.count, "rows": rows}))


if __name__ == "__main__":
    main()
