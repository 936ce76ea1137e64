"""kill -9 of a process appending to (and uploading from) the outbox, at random points."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from privastead.hub.delivery.outbox import Outbox

sys.path.insert(0, str(Path(__file__).parent))
from outbox_crash_child import MB, ciphertext

from support.kill import kill_after_progress

CHILD = Path(__file__).with_name("outbox_crash_child.py")


def run_and_kill(root: Path, start: int, delay: float) -> tuple[set[int], set[int]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(root), str(start)], stdout=subprocess.PIPE, env=env
    )
    out = kill_after_progress(proc, 3, delay)
    appended, uploaded = set(), set()
    for line in out.decode().splitlines():
        tag, _, value = line.partition(" ")
        if value.isdigit():
            (appended if tag == "A" else uploaded).add(int(value))
    return appended, uploaded


@pytest.mark.slow
def test_kill_9_loses_nothing_acknowledged_and_leaves_no_partial_file(tmp_path: Path) -> None:
    rng = random.Random(1234)
    acked: set[int] = set()
    uploaded: set[int] = set()
    start = 0
    rounds = 6
    for _ in range(rounds):
        appended, up = run_and_kill(tmp_path, start, rng.uniform(0.0, 0.4))
        acked |= appended
        uploaded |= up
        outbox = Outbox(tmp_path / "outbox", quota_bytes=1 << 30)
        queue = outbox.mailbox(MB)
        names = os.listdir(tmp_path / "outbox" / MB)
        assert not [n for n in names if n.endswith((".tmp", ".corrupt"))]  # open cleaned up
        pending = {e.seq: e for e in queue.pending()}
        for entry in pending.values():
            assert entry.read() == ciphertext(entry.seq)  # complete, CRC-checked
        high_water = int((tmp_path / "high_water").read_text())
        # Nothing acknowledged is lost: it is either still pending or was uploaded.
        for seq in acked:
            assert seq in pending or seq <= queue.uploaded_through, seq
        assert uploaded <= set(range(queue.uploaded_through + 1))
        # At most the one message between "state saved" and "appended" is missing.
        gaps = queue.recover(high_water)
        assert gaps in ((), ((high_water, high_water),)), gaps
        for first, last in gaps:
            for seq in range(first, last + 1):
                queue.append(seq, ciphertext(seq), kind=queue_kind(seq), clip_id=clip(seq))
                acked.add(seq)
        start = high_water + 1
    assert len(acked) > rounds  # the child really made progress between kills


def queue_kind(seq: int):  # type: ignore[no-untyped-def]
    from privastead.hub.delivery.outbox import EntryKind

    return EntryKind.CLIP_FRAGMENT if seq % 3 else EntryKind.NOTIFICATION


def clip(seq: int) -> str | None:
    return "c" * 32 if seq % 3 else None
