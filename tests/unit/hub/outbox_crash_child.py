"""Child process for test_outbox_crash: appends to an outbox like the hub would, until killed.

For each seq it first records the high water (as the MLS state would, atomically), then appends
the ciphertext, then prints the seq: a printed seq is "acknowledged" to the parent. A second
thread uploads (marks uploaded) in order, printing "U <seq>" after each.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from pathlib import Path

from privastead.atomic_file import write_atomic
from privastead.hub.delivery.outbox import EntryKind, Outbox

MB = "0123456789abcdef0123456789abcdef"


def ciphertext(seq: int) -> bytes:
    size = 1 + (seq * 7919) % 70_000
    block = hashlib.sha256(str(seq).encode()).digest()
    return (block * (size // 32 + 1))[:size]


def main() -> None:
    root = Path(sys.argv[1])
    start = int(sys.argv[2])
    outbox = Outbox(root / "outbox", quota_bytes=1 << 30)
    queue = outbox.mailbox(MB)
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def uploader() -> None:
        while True:
            entry = queue.first_pending()
            if entry is not None:
                assert entry.read() == ciphertext(entry.seq)
                queue.mark_uploaded(entry.seq)
                say(f"U {entry.seq}")

    threading.Thread(target=uploader, daemon=True).start()
    seq = start
    while True:
        write_atomic(root / "high_water", str(seq).encode())  # the "MLS state" goes first
        kind = EntryKind.CLIP_FRAGMENT if seq % 3 else EntryKind.NOTIFICATION
        clip = "c" * 32 if kind is EntryKind.CLIP_FRAGMENT else None
        queue.append(seq, ciphertext(seq), kind=kind, clip_id=clip)
        say(f"A {seq}")
        seq += 1


if __name__ == "__main__":
    main()
