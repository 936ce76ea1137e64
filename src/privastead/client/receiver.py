"""One group's receive path on a client: decrypt, check, de-duplicate, store, decide the ack.

For each relay message of a group mailbox, in mailbox order, ``GroupReceiver.handle``:

1. lets the MLS core process it (commits and proposals are applied there);
2. accepts application messages only from the hub (the group's committer): clients also write
   into ``control`` (resend and re-add requests), and no device may speak for the hub;
3. decodes the envelope strictly and checks the message kind belongs in this group;
4. checks the sequence number: a duplicate is dropped, a gap is reported for a resend request;
5. hands the message to the sink (clip store, event log), which stores it durably;
6. says whether the relay message may now be acknowledged.

A message for a future epoch is not acknowledged (its commit has not arrived yet: the relay keeps
it and it is tried again). An undecryptable one is acknowledged, so that one bad message cannot
block the mailbox, and counted by the health monitor, which turns repeated failures into a
"desync" report. See protocol.md, "Resends and the client's receive path", for the one crash
window that remains until the core keeps the last plaintext.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Protocol

from privastead.client.health import HealthMonitor
from privastead.errors import (
    DecodeError,
    DecryptionError,
    DuplicateMessageError,
    GroupStateError,
    PolicyError,
    StaleMessageError,
    WrongEpochError,
)
from privastead.protocol.codec import Message, decode_message
from privastead.protocol.messages import (
    ClipEnd,
    ClipFragment,
    Heartbeat,
    LiveAnswer,
    Notification,
)
from privastead.protocol.pairing_messages import ReAddAccept
from privastead.protocol.playback_messages import PlaybackAnswer, RecordingsAnswer
from privastead.protocol.seq import Range, SeqStatus, SeqTracker

log = logging.getLogger(__name__)

# What the hub may send into each group's mailbox. Live fragments never go through a mailbox
# (relay live channel, client.live_request); the live mailbox carries only the rekey commits.
ALLOWED: dict[str, tuple[type, ...]] = {
    "events": (Notification, ClipFragment, ClipEnd),
    "control": (Heartbeat, ReAddAccept, LiveAnswer, PlaybackAnswer, RecordingsAnswer),
    "live": (),
}


class CommitLike(Protocol):
    @property
    def removed_self(self) -> bool: ...


class ReceivedLike(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def data(self) -> bytes: ...

    @property
    def sender_index(self) -> int: ...

    @property
    def commit(self) -> CommitLike | None: ...


class GroupDecryptor(Protocol):
    """What the receiver needs from ``privastead.crypto.Identity`` (which fits as it is)."""

    def process(
        self, group_id: bytes, message: bytes, *, app_data: bytes | None = None
    ) -> ReceivedLike: ...

    def committer(self, group_id: bytes) -> int: ...


class MessageSink(Protocol):
    def deliver(self, camera: str, message: Message) -> None:
        """Store ``message`` durably (raise ``StorageError`` if it cannot)."""
        ...


@dataclass(frozen=True)
class Outcome:
    ack: bool  # may the relay message be acknowledged now?
    note: str
    message: Message | None = None
    missing: tuple[Range, ...] = ()  # newly detected gaps: ask the hub to resend them
    decrypted: bool = False  # the group's keys opened it: this device is in sync there


class GroupReceiver:
    def __init__(
        self,
        decryptor: GroupDecryptor,
        group_id: bytes,
        *,
        camera: str,
        group: str,
        tracker: SeqTracker,
        health: HealthMonitor,
        sink: MessageSink,
    ) -> None:
        if group not in ALLOWED:
            raise ValueError(f"unknown group {group!r}")
        self._decryptor = decryptor
        self._group_id = group_id
        self.camera = camera
        self.group = group
        self.tracker = tracker
        self._health = health
        self._sink = sink
        self._key = f"{camera}/{group}"

    def handle(self, body: bytes) -> Outcome:
        try:
            received = self._decryptor.process(self._group_id, body)
        except DuplicateMessageError:
            return Outcome(True, "already processed")
        except WrongEpochError:
            return Outcome(False, "for a later epoch: waiting for its commit")
        except StaleMessageError:
            return Outcome(True, "too old: its keys are gone")
        except GroupStateError:
            # The hub removed this device's leaf (its commit deleted our copy of the group).
            self._health.removed_from(self._key)
            return Outcome(True, "no longer a member of this group")
        except (DecryptionError, DecodeError, PolicyError) as e:
            self._health.decrypt_failed(self._key)
            log.warning("%s: a message did not decrypt: %s", self._key, type(e).__name__)
            return Outcome(True, "undecryptable")
        self._health.decrypted(self._key)
        return replace(self._accept(received), decrypted=True)

    def _accept(self, received: ReceivedLike) -> Outcome:
        if received.kind != "application":
            if received.commit is not None and received.commit.removed_self:
                self._health.removed_from(self._key)
                return Outcome(True, "removed from this group by the hub")
            return Outcome(True, f"{received.kind} applied")
        if received.sender_index != self._decryptor.committer(self._group_id):
            return Outcome(True, "from another device: not for us")
        try:
            message = decode_message(received.data)
        except DecodeError as e:
            log.error("%s: the hub sent a malformed message: %s", self._key, e)
            return Outcome(True, "malformed")
        if not isinstance(message, ALLOWED[self.group]):
            log.error("%s: %s does not belong in this group", self._key, type(message).__name__)
            return Outcome(True, "wrong group")
        seq = getattr(message, "seq", None)
        if seq is not None and self.tracker.seen(seq):
            return Outcome(True, "duplicate sequence number", message)
        try:
            self._sink.deliver(self.camera, message)  # durable before we record or ack it
        except PolicyError as e:  # e.g. a fragment spliced from another clip
            log.error("%s: refused: %s", self._key, e)
            return Outcome(True, "refused", message)
        missing: tuple[Range, ...] = ()
        if seq is not None:
            result = self.tracker.observe(seq)
            if result.status is SeqStatus.GAP:
                missing = result.missing
        return Outcome(True, "stored", message, missing)


__all__ = ["ALLOWED", "GroupDecryptor", "GroupReceiver", "MessageSink", "Outcome"]
