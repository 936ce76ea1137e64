"""What waits for one group, encrypted together: one durable write of the MLS state per batch.

Each message sent alone costs a fixed share no matter its size: the MLS core's state write
(an fsync), the outbox's directory fsync and, for a clip fragment, a journal write. The events
worker of a camera (``delivery.worker``) therefore takes whatever is queued for its group
(clip fragments, notifications) and encrypts it with ``GroupSender.send_batch``: one state
write for the whole batch, all or nothing, app seqs consecutive in queue order.

A batch is bounded, so that one batch never holds the worker (and the heartbeat, rotation or
control job queued behind it) for long, and a crash never has much in flight:

- ``MAX_MESSAGES`` (32): the state write and the journal write shared by 32 messages cost
  each far less than its own outbox entry's fsync, which batching does not remove
  (``bench/bench_outbox.py`` part 2 counts them); 32 is ~1 s of a per-frame cadence;
- ``MAX_BYTES`` (4 MiB): about two seconds of a 4K camera at 16 Mbit/s; encrypting and writing
  it takes tens of milliseconds here, which is what another job of the group may wait.

A message larger than ``MAX_BYTES`` still goes out, alone. The caller stages each message's
journal record first (``ClipJournal.stage``); ``flush`` writes every touched clip's journal
once, before the encryption, so that a crash anywhere leaves each message either recorded as
in flight (rebuilt or re-sent after the restart) or sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from privastead.errors import StorageError
from privastead.hub.delivery.clip_journal import ClipJournal
from privastead.hub.delivery.sender import Sent
from privastead.hub.state.groups import HubGroup
from privastead.protocol.codec import Message

MAX_MESSAGES = 32
MAX_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class BatchLimits:
    messages: int = MAX_MESSAGES
    bytes: int = MAX_BYTES

    def __post_init__(self) -> None:
        if self.messages < 1 or self.bytes < 1:
            raise ValueError("a batch holds at least one message of at least one byte")


@dataclass
class BatchStats:
    """Counted across the batches of one ``ClipDelivery`` (for tests and benchmarks)."""

    batches: int = 0
    messages: int = 0


class OutgoingBatch:
    """Messages staged for one group's next ``send_batch``; used on the group's worker only."""

    def __init__(
        self,
        group: HubGroup,
        journal: ClipJournal,
        limits: BatchLimits,
        stats: BatchStats | None = None,
    ) -> None:
        self.group = group
        self._journal = journal
        self._limits = limits
        self._stats = stats if stats is not None else BatchStats()
        self._messages: list[Message] = []
        self._done: list[Callable[[Sent], None] | None] = []
        self._clips: dict[tuple[str, str], None] = {}  # journals to write, in order
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._messages)

    @property
    def next_app_seq(self) -> int:
        """The app seq the next staged message will take."""
        return self.group.sender.next_app_seq + len(self._messages)

    def full(self) -> bool:
        return len(self._messages) >= self._limits.messages or self._bytes >= self._limits.bytes

    def room_for(self, size: int) -> bool:
        """Whether a message of ``size`` bytes fits (an empty batch takes anything)."""
        if not self._messages:
            return True
        return (
            len(self._messages) < self._limits.messages and self._bytes + size <= self._limits.bytes
        )

    def add(
        self,
        build: Callable[[int], Message],
        size: int,
        *,
        clip: tuple[str, str] | None = None,
        done: Callable[[Sent], None] | None = None,
    ) -> None:
        """Stage ``build(next_app_seq)``; ``clip`` (camera, clip id) names the journal the
        caller staged its record in; ``done`` gets the message's ``Sent`` once the batch is
        durable. The message is built here, so that one that cannot be built (invalid
        content) fails its own caller and not the whole batch."""
        self._messages.append(build(self.next_app_seq))
        self._done.append(done)
        self._bytes += size
        if clip is not None:
            self._clips[clip] = None

    def flush(self) -> None:
        """Journal, encrypt (one durable MLS write) and queue what is staged; then call back."""
        if not self._messages:
            return
        messages, done, clips = self._messages, self._done, list(self._clips)
        self._messages, self._done, self._clips, self._bytes = [], [], {}, 0
        for camera, clip_id in clips:
            self._journal.write(camera, clip_id)
        sent = self.group.sender.send_batch([_built(m) for m in messages])
        self._stats.batches += 1
        self._stats.messages += len(messages)
        for callback, result in zip(done, sent, strict=True):
            if callback is not None:
                callback(result)


def _built(message: Message) -> Callable[[int], Message]:
    """``message``, built for the app seq the sender gives it (checked: only this batch's
    messages may take seqs between staging and the flush)."""

    def build(seq: int) -> Message:
        built_for = getattr(message, "seq", seq)
        if built_for != seq:
            raise StorageError(f"a staged message was built for seq {built_for}, got {seq}")
        return message

    return build


__all__ = ["MAX_BYTES", "MAX_MESSAGES", "BatchLimits", "BatchStats", "OutgoingBatch"]
