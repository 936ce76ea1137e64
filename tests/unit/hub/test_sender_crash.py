"""kill -9 of a hub loop that encrypts (fake core with real atomic state) and queues: after
every restart, the outbox holds every seq the state accounts for, commits included."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from privastead.hub.delivery.outbox import EntryKind, Outbox
from privastead.protocol.codec import decode_message

sys.path.insert(0, str(Path(__file__).parent))
from sender_crash_child import MB, FileCipher, message

from support.kill import kill_after_progress

CHILD = Path(__file__).with_name("sender_crash_child.py")


@pytest.mark.slow
def test_kill_9_never_loses_a_commit_or_a_message(tmp_path: Path) -> None:
    rng = random.Random(7)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    confirmed = 0
    for _ in range(5):
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(tmp_path)], stdout=subprocess.PIPE, env=env
        )
        out = kill_after_progress(proc, 3, rng.uniform(0.0, 0.4))
        confirmed += len(out.split(b"\n")) - 1
    # One last start runs recovery; stop it right away by killing it after recovery finished.
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(tmp_path)], stdout=subprocess.PIPE, env=env
    )
    proc.stdout.readline()  # type: ignore[union-attr]
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)

    cipher = FileCipher(tmp_path / "mls.json")
    queue = Outbox(tmp_path / "outbox", quota_bytes=1 << 30).mailbox(MB)
    import json

    state = json.loads(cipher.app_data)
    entries = queue.pending()
    assert confirmed > 10
    # Nothing was uploaded in this test, so the outbox must hold every seq the state counts,
    # except at most the one a kill hit between the core's write and the append.
    seqs = [e.seq for e in entries]
    assert seqs == list(range(len(seqs)))
    assert state["next_seq"] - len(seqs) in (0, 1)
    commits = [e.read() for e in entries if e.kind is EntryKind.COMMIT]
    assert commits == [b"COMMIT %d" % i for i in range(1, len(commits) + 1)]  # none lost
    app = [
        decode_message(e.read().split(b"|", 1)[1])
        for e in entries
        if e.kind is not EntryKind.COMMIT
    ]
    assert app == [message(i) for i in range(len(app))]  # each app seq once, in order
