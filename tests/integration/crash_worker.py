"""The survivor of the crash test: a hub that encrypts and commits in a loop until killed.

Run as ``python crash_worker.py STATE LOG GROUP_ID_HEX``. Each output is appended to LOG as a
record ``kind(1) seq(8) length(4) bytes``; kind ``m`` is an application message, ``c`` a commit.
Before looping, the worker repairs LOG after a kill: it drops a torn last record and re-queues
the last commit if the state has it but the log does not (``Identity.last_handshake``). This
is exactly what the hub's outbox will do.
"""

from __future__ import annotations

import random
import struct
import sys
from pathlib import Path

from privastead.crypto import Identity

HEADER = struct.Struct(">cQI")


def read_log(data: bytes) -> tuple[list[tuple[bytes, int, bytes]], int]:
    """Complete records and the length of the complete prefix."""
    records, pos = [], 0
    while pos + HEADER.size <= len(data):
        kind, seq, n = HEADER.unpack_from(data, pos)
        if pos + HEADER.size + n > len(data):
            break
        records.append((kind, seq, data[pos + HEADER.size : pos + HEADER.size + n]))
        pos += HEADER.size + n
    return records, pos


def repair(hub: Identity, log_path: Path) -> None:
    """What a restart does before sending anything: drop a torn last record, and re-queue the
    last commit if the state has it but the log does not (killed between the two)."""
    data = log_path.read_bytes() if log_path.exists() else b""
    records, complete = read_log(data)
    with log_path.open("r+b" if log_path.exists() else "wb") as log:
        log.truncate(complete)
        log.seek(complete)
        logged = max((seq for kind, seq, _ in records if kind == b"c"), default=0)
        last = hub.last_handshake
        if last.seq > logged:
            log.write(HEADER.pack(b"c", last.seq, len(last.messages[0])) + last.messages[0])


def main() -> None:
    state, log_path, gid = Path(sys.argv[1]), Path(sys.argv[2]), bytes.fromhex(sys.argv[3])
    hub = Identity.open(state)
    repair(hub, log_path)
    with log_path.open("ab") as log:
        rng = random.Random()
        while True:
            if rng.random() < 0.2:
                commit = hub.self_update(gid)
                seq = hub.last_handshake.seq
                log.write(HEADER.pack(b"c", seq, len(commit)) + commit)
            else:
                n = int(hub.app_data or b"0")
                ct = hub.encrypt(gid, b"message %d" % n, app_data=b"%d" % (n + 1))
                log.write(HEADER.pack(b"m", n, len(ct)) + ct)
            log.flush()


if __name__ == "__main__":
    main()
