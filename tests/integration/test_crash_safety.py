"""Crash safety: a hub encrypting and committing in a loop is killed with SIGKILL at random
points, many times. After each kill its state opens, and a client keeps decrypting every
message the hub sent, in order, with no gap in commits."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from crash_worker import HEADER, read_log, repair

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


@dataclass
class _Phone:
    """The client's side: what it decrypted so far, checked record by record."""

    identity: Identity
    gid: bytes
    consumed: int = 1  # the add commit, delivered as a Welcome
    last_number: int = -1
    commits: int = 0
    messages: int = 0

    def read(self, log_path: Path) -> None:
        # Complete records only: a torn record at the end is rewritten by the next restart.
        records, _ = read_log(log_path.read_bytes() if log_path.exists() else b"")
        for kind, seq, body in records[self.consumed :]:
            r = self.identity.process(self.gid, body)
            if kind == b"c":
                assert r.kind == "commit"
                self.commits += 1
            else:
                assert r.kind == "application"
                assert r.data == b"message %d" % seq
                assert seq > self.last_number  # in order; gaps are lost-but-unlogged messages
                self.last_number = seq
                self.messages += 1
        self.consumed = len(records)


def _run(hub_path: Path, log_path: Path, gid: bytes, phone: Identity, hub: Identity) -> None:
    hub.close()
    rng = random.Random(2026)
    client = _Phone(phone, gid)
    for _ in range(ROUNDS):
        worker = subprocess.Popen(
            [sys.executable, str(WORKER), str(hub_path), str(log_path), gid.hex()]
        )
        time.sleep(rng.uniform(0.05, 0.6))
        worker.send_signal(signal.SIGKILL)
        assert worker.wait(timeout=30) == -signal.SIGKILL, "the worker died on its own"
        # The state opens after every kill (and is released again for the next worker).
        Identity.open(hub_path).close()
        client.read(log_path)
    assert client.commits >= 3 and client.messages >= 30, (client.commits, client.messages)
    with Identity.open(hub_path) as hub_again:
        # The last kill may have fallen between a commit and its log record; the restart's
        # repair (as every worker does first) re-queues it, and then the two sides agree.
        repair(hub_again, log_path)
        client.read(log_path)
        assert hub_again.epoch(gid) == phone.epoch(gid)
        assert phone.process(gid, hub_again.encrypt(gid, b"final")).data == b"final"
