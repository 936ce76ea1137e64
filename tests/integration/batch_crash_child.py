"""Child for test_clip_batch_crash: the hub's clip delivery (real MLS groups, outbox, clip
journal and a recorder's ``.mp4.part``) sends an event's notification and a clip's fragments,
queued while the events worker was busy, so they go out as one batch; it SIGKILLs itself at
the point named by ``argv[2]``:

- ``journal``: the batch's journal is written, the MLS state not yet;
- ``append-N``: the batch's MLS state is written and N of its outbox entries;
- ``durable``: the whole batch is in the outbox, nothing uploaded.

Prints ``batch <size>`` for each send_batch call before it runs."""

from __future__ import annotations

import os
import signal
import struct
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from privastead.hub.delivery.clip_delivery import ClipDelivery
from privastead.hub.delivery.clip_journal import ClipJournal
from privastead.hub.delivery.outbox import EntryKind, Outbox
from privastead.hub.delivery.sender import Sent
from privastead.hub.recording.clips import EventNotice
from privastead.hub.state.groups import HubGroups
from privastead.protocol.codec import Message

CAMERA = "cam"
EVENT = "1234abcd5678ef901234abcd5678ef90"
FRAGMENTS = 7  # init segment + 6 media fragments


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def pieces() -> list[bytes]:
    """An init segment and fMP4-shaped fragments (what the recorder writes and hands over)."""
    init = box(b"ftyp", b"isom") + box(b"moov", b"movie")
    return [init] + [
        box(b"moof", b"m%d" % i) + box(b"mdat", bytes([i]) * (3000 + i)) for i in range(1, 7)
    ]


def part_file(root: Path) -> Path:
    return root / "clips" / "2026-01-01" / f"{CAMERA}-120000-{EVENT[:8]}.mp4.part"


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    root, point = Path(sys.argv[1]), sys.argv[2]
    outbox = Outbox(root / "outbox", quota_bytes=1 << 26)
    groups = HubGroups(root, outbox, [CAMERA])
    journal = ClipJournal(root / "open-clips", root / "clips")
    delivery = ClipDelivery(groups, journal)
    events = groups.get(CAMERA, "events")

    send_batch = events.sender.send_batch

    def announced(builds: Sequence[Callable[[int], Message]]) -> list[Sent]:
        print(f"batch {len(builds)}", flush=True)
        if point == "journal" and len(builds) > 1:
            die()
        return send_batch(builds)

    events.sender.send_batch = announced  # type: ignore[method-assign]

    queue = events.sender._queue
    append = queue.append
    fragments_appended = 0

    def counted(*args: Any, **kwargs: Any) -> object:
        nonlocal fragments_appended
        if kwargs.get("kind") is EntryKind.CLIP_FRAGMENT:
            if point == f"append-{fragments_appended}":
                die()
            fragments_appended += 1
        return append(*args, **kwargs)

    queue.append = counted  # type: ignore[method-assign]

    part = part_file(root)
    part.parent.mkdir(parents=True, exist_ok=True)
    delivery.on_event(EventNotice(CAMERA, EVENT, 1.7e9, 0.9, ((0.1, 0.1, 0.2, 0.2),)))
    events.worker.drain()  # the notification is out before the clip starts, as in the hub
    release = threading.Event()
    events.worker.submit(release.wait)  # the worker is busy while the recorder runs ahead
    for index, piece in enumerate(pieces()):
        with part.open("ab") as f:
            f.write(piece)
        delivery.on_fragment(CAMERA, EVENT, index, piece, index == 0)
    release.set()
    events.worker.drain()
    if point == "durable":
        die()
    raise SystemExit(f"crash point {point!r} never reached")


if __name__ == "__main__":
    main()
