"""Child for test_sender_crash: a hub loop of notifications, fragments and commits over a
file-backed fake MLS core (state and app data written atomically, like the real core), until
killed. Prints "S <seq>" once a send or commit returned."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from privastead.atomic_file import write_atomic
from privastead.hub.delivery.outbox import Outbox
from privastead.hub.delivery.sender import GroupSender
from privastead.protocol.codec import Message
from privastead.protocol.messages import ClipFragment, Notification

MB = "0123456789abcdef0123456789abcdef"
GID = b"g"
EVENT = "e" * 32


@dataclass(frozen=True)
class Handshake:
    seq: int
    messages: tuple[bytes, ...]


class FileCipher:
    def __init__(self, path: Path) -> None:
        self.path = path
        state = json.loads(path.read_text()) if path.exists() else {}
        self.app_data = bytes.fromhex(state.get("app", ""))
        self.epoch = int(state.get("epoch", 0))
        self.last_handshake = Handshake(
            int(state.get("hs", 0)), tuple(bytes.fromhex(m) for m in state.get("msgs", []))
        )

    def _persist(self) -> None:
        state = {
            "app": self.app_data.hex(),
            "epoch": self.epoch,
            "hs": self.last_handshake.seq,
            "msgs": [m.hex() for m in self.last_handshake.messages],
        }
        write_atomic(self.path, json.dumps(state).encode())

    def encrypt(
        self, group_id: bytes, plaintext: bytes, aad: bytes = b"", *, app_data: bytes | None = None
    ) -> bytes:
        if app_data is not None:
            self.app_data = app_data
        self._persist()
        return b"E%d|" % self.epoch + plaintext

    def self_update(self, group_id: bytes, *, app_data: bytes | None = None) -> bytes:
        self.epoch += 1
        commit = b"COMMIT %d" % self.epoch
        self.last_handshake = Handshake(self.last_handshake.seq + 1, (commit,))
        if app_data is not None:
            self.app_data = app_data
        self._persist()
        return commit


def message(app_seq: int) -> Message:
    """The plaintext the hub would still hold for ``app_seq`` (deterministic)."""
    if app_seq % 4 == 0:
        return Notification("front", EVENT, 1.7e9 + app_seq, 0.5, (), app_seq)
    clip = f"{app_seq // 4:032x}"
    index = app_seq % 4 - 1
    return ClipFragment(
        clip, EVENT, index, index == 2, index == 0, app_seq, bytes([app_seq % 256]) * 3000
    )


def main() -> None:
    root = Path(sys.argv[1])
    cipher = FileCipher(root / "mls.json")
    sender = GroupSender(cipher, GID, Outbox(root / "outbox", quota_bytes=1 << 30).mailbox(MB))
    sender.recover(message)
    while True:
        if (
            sender.next_app_seq % 4 == 1
            and cipher.last_handshake.seq < sender.next_app_seq // 4 + 1
        ):
            seq = sender.next_seq
            sender.commit(lambda app: cipher.self_update(GID, app_data=app), lambda c: c)
        else:
            seq = sender.next_seq
            sender.send(message)
        sys.stdout.write(f"S {seq}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
