"""Crash safety: a hub encrypting and committing in a loop is killed with SIGKILL at random
points, many times. After each kill its state opens, and a client keeps decrypting every
message the hub sent, in order, with no gap in commits."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from crash_worker import HEADER, read_log

from privastead.crypto import Identity

WORKER = Path(__file__).with_name("crash_worker.py")
ROUNDS = 30


@pytest.mark.slow
def test_kill_9_at_random_points_never_loses_or_forks_state(tmp_path: Path) -> None:
    hub_path, log_path = tmp_path / "hub", tmp_path / "log"
    with Identity.create(hub_path, b"hub") as hub:
        gid = hub.create_group()
        with Identity.create(tmp_path / "phone", b"phone") as phone:
            added = hub.add_members(gid, [phone.key_package()])
            phone.join(added.welcome, inviter_identity=b"hub")
            # The add commit was delivered (the phone joined by Welcome): log it as sent.
            log_path.write_bytes(HEADER.pack(b"c", hub.last_handshake.seq, 0))
            _run(hub_path, log_path, gid, phone, hub)


def _run(hub_path: Path, log_path: Path, gid: bytes, phone: Identity, hub: Identity) -> None:
    hub.close()
    rng = random.Random(2026)
    consumed, last_number, commits, messages = 1, -1, 0, 0
    for _ in range(ROUNDS):
        worker = subprocess.Popen(
            [sys.executable, str(WORKER), str(hub_path), str(log_path), gid.hex()]
        )
        time.sleep(rng.uniform(0.05, 0.6))
        worker.send_signal(signal.SIGKILL)
        assert worker.wait(timeout=30) == -signal.SIGKILL, "the worker died on its own"
        # The state opens after every kill (and is released again for the next worker).
        Identity.open(hub_path).close()
        # Read what the worker will keep: complete records. A torn record at the end may be
        # rewritten by the next worker; only consume records before it.
        records, _ = read_log(log_path.read_bytes() if log_path.exists() else b"")
        for kind, seq, body in records[consumed:]:
            r = phone.process(gid, body)
            if kind == b"c":
                assert r.kind == "commit"
                commits += 1
            else:
                assert r.kind == "application"
                assert r.data == b"message %d" % seq
                assert seq > last_number  # in order; gaps are lost-but-unlogged messages
                last_number = seq
                messages += 1
        consumed = len(records)
    assert commits >= 3 and messages >= 30, (commits, messages)
    with Identity.open(hub_path) as hub_again:
        assert hub_again.epoch(gid) == phone.epoch(gid)
        assert phone.process(gid, hub_again.encrypt(gid, b"final")).data == b"final"
