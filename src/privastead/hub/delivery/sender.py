"""Sending into one group without a fatal crash point: MLS state, sequence numbers and outbox.

Upstream Privastead lost clients for good when the hub crashed between saving its MLS state and
queueing the ciphertext (a commit that never left the hub desyncs every client). Here every
MLS call that produces output records, in the *same* atomic state write (the identity's
``app_data``), what the outbox is about to receive:

    {"v": 1, "next_seq": outbox seq, "next_app_seq": application seq,
     "last": {"seq": s, "kind": "app"|"handshake", "app_seq": a, "hs_seq": h, "count": n}}

and the ciphertexts are appended to the outbox right after. ``send_batch`` encrypts several
messages with one durable write of the MLS state (``count`` > 1: seqs s..s+n-1 with app seqs
a..a+n-1). On restart ``recover`` asks the outbox which seqs are missing up to the recorded
high water; only those of the last call can be, and they are rebuilt: a commit from the core's
own crash-recovery copy (``last_handshake``, whose ``seq`` must match ``hs_seq``), an
application message by re-encrypting the plaintext the caller still holds (``replay``; the hub
deletes plaintext only once its ciphertext is durable). If the caller no longer has it, the
seq is skipped and reported; clients then see a gap they cannot fill.

Two sequence spaces: ``seq`` numbers everything this group's outbox sends (commits too) and
names relay message ids; ``app_seq`` numbers only application messages and is what envelopes
carry, because a client cannot learn the number of a commit. A lost commit shows up at the
client as undecryptable messages and a stale epoch in the heartbeat instead.

One writer per group: calls on a GroupSender must not overlap. In the running hub they all run
on the group's worker (``delivery.worker``), never on the event loop.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from privastead.errors import StorageError
from privastead.hub.delivery.outbox import AppendResult, DroppedClip, EntryKind, MailboxQueue
from privastead.protocol.codec import Message
from privastead.protocol.messages import ClipFragment, Heartbeat, Notification

log = logging.getLogger(__name__)

MAX_PUSH_CIPHERTEXT = 3000  # FCM data payloads are 4 KiB, base64 costs 4/3
R = TypeVar("R")


class HandshakeRecord(Protocol):
    @property
    def seq(self) -> int: ...

    @property
    def messages(self) -> tuple[bytes, ...]: ...


class GroupCipher(Protocol):
    """What the sender needs from ``privastead.crypto.Identity`` (which fits as it is)."""

    @property
    def app_data(self) -> bytes: ...

    @property
    def last_handshake(self) -> HandshakeRecord: ...

    def encrypt(
        self, group_id: bytes, plaintext: bytes, aad: bytes = b"", *, app_data: bytes | None = None
    ) -> bytes: ...

    def encrypt_batch(
        self,
        group_id: bytes,
        plaintexts: Sequence[bytes],
        aad: bytes = b"",
        *,
        app_data: bytes | None = None,
    ) -> list[bytes]: ...


@dataclass(frozen=True)
class Sent:
    app_seq: int
    accepted: bool  # False: the outbox refused this clip fragment (quota); stop the clip
    dropped: tuple[DroppedClip, ...] = ()  # older clips the quota policy dropped to make room


@dataclass(frozen=True)
class SenderRecovery:
    rebuilt: tuple[int, ...] = ()  # outbox seqs put back (commit or re-encrypted message)
    lost: tuple[int, ...] = ()  # outbox seqs that could not be rebuilt


def _entry_kind(message: Message) -> EntryKind:
    if isinstance(message, Notification):
        return EntryKind.NOTIFICATION
    if isinstance(message, ClipFragment):
        return EntryKind.CLIP_FRAGMENT
    if isinstance(message, Heartbeat):
        return EntryKind.HEARTBEAT
    return EntryKind.CONTROL


class GroupSender:
    def __init__(self, cipher: GroupCipher, group_id: bytes, queue: MailboxQueue) -> None:
        self._cipher = cipher
        self._group_id = group_id
        self._queue = queue
        self._state = self._load(cipher.app_data)

    @staticmethod
    def _load(raw: bytes) -> dict[str, Any]:
        if not raw:
            return {"v": 1, "next_seq": 0, "next_app_seq": 0, "last": None}
        try:
            state = json.loads(raw)
            if state.get("v") != 1:
                raise ValueError(f"version {state.get('v')!r}")
            int(state["next_seq"]), int(state["next_app_seq"])
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise StorageError(f"the group's app data is not a sender state: {e}") from None
        return dict(state)

    @staticmethod
    def _dump(state: dict[str, Any]) -> bytes:
        return json.dumps(state, sort_keys=True, separators=(",", ":")).encode()

    @property
    def next_app_seq(self) -> int:
        """The app seq of the next message (``GroupGrant.first_seq`` for a device added now)."""
        return int(self._state["next_app_seq"])

    @property
    def next_seq(self) -> int:
        return int(self._state["next_seq"])

    def send(self, build: Callable[[int], Message]) -> Sent:
        """Encrypt ``build(app_seq)`` and queue it; durable when this returns."""
        seq, app_seq = self.next_seq, self.next_app_seq
        message = build(app_seq)
        state = {
            **self._state,
            "next_seq": seq + 1,
            "next_app_seq": app_seq + 1,
            "last": {"seq": seq, "kind": "app", "app_seq": app_seq, "hs_seq": None},
        }
        ciphertext = self._cipher.encrypt(
            self._group_id, message.encode(), app_data=self._dump(state)
        )
        self._state = state
        result = self._append(seq, ciphertext, message, app_seq)
        return Sent(app_seq, result.accepted, result.dropped)

    def send_batch(self, builds: Sequence[Callable[[int], Message]]) -> list[Sent]:
        """``send`` for several messages with one durable write of the MLS state, all or
        nothing: ``builds[i]`` gets app seq ``next_app_seq + i``. For whatever is waiting to be
        sent at once (queued fragments, one notification per camera of a group)."""
        if not builds:
            return []
        seq, app_seq, count = self.next_seq, self.next_app_seq, len(builds)
        messages = [build(app_seq + i) for i, build in enumerate(builds)]
        state = {
            **self._state,
            "next_seq": seq + count,
            "next_app_seq": app_seq + count,
            "last": {
                "seq": seq,
                "kind": "app",
                "app_seq": app_seq,
                "hs_seq": None,
                "count": count,
            },
        }
        ciphertexts = self._cipher.encrypt_batch(
            self._group_id, [m.encode() for m in messages], app_data=self._dump(state)
        )
        self._state = state
        sent: list[Sent] = []
        for i, (ciphertext, message) in enumerate(zip(ciphertexts, messages, strict=True)):
            # One directory fsync, with the last entry: every entry of this batch can be
            # rebuilt by ``recover`` until the next call changes ``last``, and the next call
            # comes after this one's fsync.
            last = i == count - 1
            result = self._append(seq + i, ciphertext, message, app_seq + i, sync_dir=last)
            sent.append(Sent(app_seq + i, result.accepted, result.dropped))
        return sent

    def commit(self, operation: Callable[[bytes], R], commit_of: Callable[[R], bytes]) -> R:
        """Run an MLS operation that emits a commit (``self_update``, ``add_members``, ...).

        ``operation(app_data)`` must pass ``app_data`` to the core; ``commit_of(result)`` picks
        the commit out of its result. The commit is queued before this returns.
        """
        seq = self.next_seq
        hs_seq = self._cipher.last_handshake.seq + 1
        state = {
            **self._state,
            "next_seq": seq + 1,
            "last": {"seq": seq, "kind": "handshake", "app_seq": None, "hs_seq": hs_seq},
        }
        result = operation(self._dump(state))
        self._state = state
        actual = self._cipher.last_handshake.seq
        if actual != hs_seq:
            raise StorageError(f"handshake seq {actual} after a commit, expected {hs_seq}")
        self._queue.append(seq, commit_of(result), kind=EntryKind.COMMIT)
        return result

    def recover(self, replay: Callable[[int], Message | None]) -> SenderRecovery:
        """After a restart, put back what the state says was produced but the outbox lacks.

        ``replay(app_seq)`` returns the message with that app seq if the caller still has its
        plaintext, else None. Call before the uploader starts.
        """
        rebuilt: list[int] = []
        lost: list[int] = []
        last = self._state.get("last") or {}
        # The last call's seqs: [seq, seq + count) (no last call: an empty range).
        last_first = int(last["seq"]) if last.get("seq") is not None else -1
        last_count = int(last.get("count", 1)) if last_first >= 0 else 0
        for first, end in self._queue.recover(self.next_seq - 1):
            for seq in range(first, end + 1):
                offset = seq - last_first
                if 0 <= offset < last_count and self._rebuild(seq, offset, last, replay):
                    rebuilt.append(seq)
                    continue
                log.error("group outbox %s: seq %d is lost", self._queue.mailbox, seq)
                self._queue.skip(seq, "lost in a crash and cannot be rebuilt")
                lost.append(seq)
        return SenderRecovery(tuple(rebuilt), tuple(lost))

    def _rebuild(
        self,
        seq: int,
        offset: int,
        last: dict[str, Any],
        replay: Callable[[int], Message | None],
    ) -> bool:
        """Put back ``seq``, the ``offset``-th message of the last call."""
        if last.get("kind") == "handshake":
            handshake = self._cipher.last_handshake
            if handshake.seq != last.get("hs_seq") or not handshake.messages:
                return False
            self._queue.append(seq, handshake.messages[0], kind=EntryKind.COMMIT)
            return True
        app_seq = int(last["app_seq"]) + offset
        message = replay(app_seq)
        if message is None:
            return False
        # Same app seq, fresh encryption; the state (and its high water) stays as recorded.
        ciphertext = self._cipher.encrypt(
            self._group_id, message.encode(), app_data=self._dump(self._state)
        )
        self._append(seq, ciphertext, message, app_seq)
        return True

    def _append(
        self, seq: int, ciphertext: bytes, message: Message, app_seq: int, *, sync_dir: bool = True
    ) -> AppendResult:
        kind = _entry_kind(message)
        push = None
        if kind is EntryKind.NOTIFICATION and len(ciphertext) <= MAX_PUSH_CIPHERTEXT:
            push = ciphertext  # the wake-up carries the (small) notification itself
        clip_id = message.clip_id if isinstance(message, ClipFragment) else None
        return self._queue.append(
            seq,
            ciphertext,
            kind=kind,
            clip_id=clip_id,
            push_payload=push,
            app_seq=app_seq,
            sync_dir=sync_dir,
        )


__all__ = ["GroupCipher", "GroupSender", "HandshakeRecord", "SenderRecovery", "Sent"]
