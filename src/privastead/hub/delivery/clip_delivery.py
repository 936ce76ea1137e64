"""The cameras' ``ClipSink``: events and clip fragments queued on each camera's events worker.

The camera calls it on the event loop; each call only queues a job on the camera's ``events``
group worker (``delivery.worker``) and returns, so packet routing never waits for MLS or a
disk:

- event start: a ``Notification`` without thumbnail (256 bytes of plaintext, small enough for
  the push wake-up), then the same event id with the thumbnail once it exists;
- clip: a self-update commit in ``events`` before its init segment (a leaked key opens one
  clip at most), then each fMP4 fragment as a ``ClipFragment``. One fragment is held back so
  the last one can carry ``final`` when the recorder closes the clip.

**Batches.** Calls are queued per group in order; one job on the worker drains the queue and
encrypts what waits with one durable MLS write per batch (``delivery.batch``: bounded by count
and bytes, all or nothing). A batch is flushed before anything that must follow durable
ciphertext or precede an encryption (a clip's self-update commit, the plaintext's deletion at
a clip's end, giving up a clip), and the job defers the rest of the queue after each full batch
so that other jobs of the group run in between.

**Bounded queue, nothing lost.** The loop cannot wait for a worker that falls behind (a slow
disk, a 4K burst on a loaded machine), and queueing every fragment's bytes would let memory
grow without end. Each camera's queued fragment bytes are limited (``queue_bytes``). Over the
limit a fragment is queued *without* its bytes, only its size: the recorder flushed them to
the clip file before handing them over, and the worker reads them back from there through the
clip journal, which knows where each fragment lies. Order, ``final`` flags and every byte are
kept; only where the bytes wait changes (the page cache or the disk instead of the heap).
A fragment that cannot be read back (the file vanished) ends that clip's delivery, logged and
counted (``unreadable_fragments``), like a clip the outbox quota refuses.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from privastead.hub.delivery.batch import BatchLimits, BatchStats, OutgoingBatch
from privastead.hub.delivery.clip_journal import ClipJournal
from privastead.hub.delivery.sender import Sent
from privastead.hub.recording.clips import EventNotice
from privastead.hub.state.groups import HubGroup, HubGroups
from privastead.protocol.messages import ClipFragment, Notification

log = logging.getLogger(__name__)

QUEUE_BYTES = 32 * 1024 * 1024  # per camera: ~15-30 s of 4K fragments


def wire_event_id(event_id: str) -> str:
    """The protocol's 128-bit hex form; the detector's ids have it already (older 64-bit ids,
    e.g. in a journal written before, are padded)."""
    return event_id.rjust(32, "0")


class ByteBudget:
    """Bytes queued for one worker: taken on the loop, given back on the worker."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        with self._lock:
            if self.used + size > self.limit:
                return False
            self.used += size
            return True

    def give_back(self, size: int) -> None:
        with self._lock:
            self.used -= size


# A fragment's bytes, or only its size when they wait in the clip file (over the budget).
Payload = bytes | int


@dataclass
class _Clip:
    clip_id: str
    event_id: str
    held: tuple[int, Payload] | None = None  # the latest fragment, sent when the next arrives
    refused: bool = False  # the outbox refused a fragment (quota): the rest is not sent


# One queued camera callback, run on the group's worker with the batch being filled.
Op = Callable[[HubGroup, OutgoingBatch], None]


@dataclass
class _GroupQueue:
    """Callbacks waiting for one group's worker; ``scheduled``: a drain job is queued."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    ops: collections.deque[Op] = field(default_factory=collections.deque)
    scheduled: bool = False


class ClipDelivery:
    def __init__(
        self,
        groups: HubGroups,
        journal: ClipJournal,
        *,
        keep_plaintext_clips: bool = False,
        queue_bytes: int = QUEUE_BYTES,
        batch_limits: BatchLimits | None = None,
    ) -> None:
        self.groups = groups
        self.batch_limits = batch_limits or BatchLimits()
        self.batch_stats = BatchStats()
        self._queues: dict[str, _GroupQueue] = {}
        self._queues_lock = threading.Lock()
        # Open clips on disk, so that a restart ends a clip cut mid-recording (clip_journal).
        self.journal = journal
        self.keep_plaintext_clips = keep_plaintext_clips
        self.queue_bytes = queue_bytes
        self._budgets: dict[str, ByteBudget] = {}
        # Touched only by the camera's events worker (one per camera: keys never collide).
        self._clips: dict[tuple[str, str], _Clip] = {}
        self.sent_notifications = 0
        self.sent_fragments = 0
        self.spilled_fragments = 0  # queued without their bytes (over the budget)
        self.unreadable_fragments = 0  # spilled, then not found in the clip file
        self.failed_calls = 0  # queued calls or batches that raised (logged)

    def budget(self, camera: str) -> ByteBudget:
        budget = self._budgets.get(camera)
        if budget is None:
            budget = self._budgets[camera] = ByteBudget(self.queue_bytes)
        return budget

    # -- ClipSink: called by the cameras on the event loop; each call only queues a job ---------

    def on_event(self, notice: EventNotice) -> None:
        group = self.groups.get(notice.camera, "events")
        self._enqueue(group, lambda g, batch: self._notify(g, batch, notice))

    def on_fragment(self, camera: str, clip: str, index: int, data: bytes, is_init: bool) -> None:
        group = self.groups.get(camera, "events")
        payload: Payload = data
        # The init segment always travels in memory: the journal finds the clip file by it.
        if not is_init and not self.budget(camera).take(len(data)):
            payload = len(data)
            self.spilled_fragments += 1
        self._enqueue(
            group, lambda g, batch: self._fragment(g, batch, clip, index, payload, is_init=is_init)
        )

    def on_clip_end(self, camera: str, clip: str, path: Path) -> None:
        group = self.groups.get(camera, "events")
        self._enqueue(group, lambda g, batch: self._clip_end(g, batch, clip, path))

    def _enqueue(self, group: HubGroup, op: Op) -> None:
        with self._queues_lock:
            queue = self._queues.setdefault(group.key, _GroupQueue())
        with queue.lock:
            queue.ops.append(op)
            if queue.scheduled:
                return  # the queued drain job takes this one too
            queue.scheduled = True
        group.worker.submit(self._drain, group, queue)

    # -- on the events group's worker -----------------------------------------------------------

    def _drain(self, group: HubGroup, queue: _GroupQueue) -> None:
        """Run the queued calls in order, sending their messages in batches; after a full
        batch, defer the rest so that other jobs of the group (heartbeats, commits) run in
        between (a closing worker takes no new job: then go on here)."""
        while self._drain_batch(group, queue):
            if group.worker.defer(self._drain, group, queue):
                return

    def _drain_batch(self, group: HubGroup, queue: _GroupQueue) -> bool:
        """One batch of queued calls, flushed; True if calls are left. A call or a flush that
        fails is logged and counted, and the rest go on, as separate jobs would."""
        batch = OutgoingBatch(group, self.journal, self.batch_limits, self.batch_stats)
        more = True
        while more and not batch.full():
            with queue.lock:
                if not queue.ops:
                    queue.scheduled = more = False
                    break
                op = queue.ops.popleft()
            try:
                op(group, batch)
            except Exception:
                self.failed_calls += 1
                log.exception("%s: a queued delivery call failed", group.key)
        staged = len(batch)
        try:
            batch.flush()
        except Exception:
            self.failed_calls += 1
            log.exception("%s: a batch of %d message(s) failed", group.key, staged)
        return more

    def _notify(self, group: HubGroup, batch: OutgoingBatch, notice: EventNotice) -> None:
        def build(seq: int) -> Notification:
            return Notification(
                camera=notice.camera,
                event_id=wire_event_id(notice.event_id),
                at=notice.at,
                score=notice.score,
                boxes=notice.boxes,
                seq=seq,
                thumbnail=notice.thumbnail,
            )

        size = 256 + len(notice.thumbnail or b"")
        if not batch.room_for(size):
            batch.flush()
        batch.add(build, size, done=self._notified)

    def _notified(self, _sent: Sent) -> None:
        self.sent_notifications += 1

    def _fragment(
        self,
        group: HubGroup,
        batch: OutgoingBatch,
        clip: str,
        index: int,
        payload: Payload,
        *,
        is_init: bool,
    ) -> None:
        camera = group.camera
        if isinstance(payload, bytes) and not is_init:
            self.budget(camera).give_back(len(payload))  # off the queue: one held per clip
        key = (camera, clip)
        if is_init:
            assert isinstance(payload, bytes)
            # New keys before every clip: whoever steals one epoch's keys reads one clip. What
            # is staged was built for the old epoch's seqs: it goes out first.
            batch.flush()
            group.self_update()
            new = _Clip(clip_id=secrets.token_hex(16), event_id=wire_event_id(clip))
            self._clips[key] = new
            self.journal.open(camera, new.clip_id, new.event_id, clip, payload)
        state = self._clips.get(key)
        if state is None:
            log.warning("%s: fragment %d of an unknown clip: not sent", camera, index)
            return
        if state.held is not None:
            self._send_fragment(group, batch, state, state.held, final=False)
        state.held = (index, payload)

    def _clip_end(self, group: HubGroup, batch: OutgoingBatch, clip: str, path: Path) -> None:
        camera = group.camera
        state = self._clips.pop((camera, clip), None)
        if state is None:
            return
        if state.held is not None:
            self._send_fragment(group, batch, state, state.held, final=True)
        batch.flush()  # the plaintext goes only once every fragment's ciphertext is durable
        self.journal.close(camera, state.clip_id)
        if not self.keep_plaintext_clips and not state.refused:
            with contextlib.suppress(OSError):
                path.unlink()

    def _send_fragment(
        self,
        group: HubGroup,
        batch: OutgoingBatch,
        state: _Clip,
        held: tuple[int, Payload],
        *,
        final: bool,
    ) -> None:
        if state.refused:
            return
        index, payload = held
        camera = group.camera
        size = payload if isinstance(payload, int) else len(payload)
        if not batch.room_for(size):
            batch.flush()
        if isinstance(payload, bytes):
            data = payload
        else:
            read = self.journal.read_next(camera, state.clip_id, payload)
            if read is None:
                batch.flush()  # what is staged of this clip goes out with its journal
                self.unreadable_fragments += 1
                state.refused = True
                self.journal.close(camera, state.clip_id)
                log.error(
                    "%s: fragment %d of clip %s is no longer in the recording; the clip is "
                    "sent only up to here",
                    camera,
                    index,
                    state.clip_id,
                )
                return
            data = read

        def build(seq: int) -> ClipFragment:
            return ClipFragment(
                clip_id=state.clip_id,
                event_id=state.event_id,
                index=index,
                final=final,
                is_init=index == 0,
                seq=seq,
                data=data,
            )

        def done(sent: Sent) -> None:
            self.sent_fragments += 1
            if not sent.accepted and not state.refused:
                state.refused = True
                self.journal.close(camera, state.clip_id)
                log.warning("%s: outbox full, clip %s not sent", camera, state.clip_id)

        app_seq = batch.next_app_seq
        batch.add(build, len(data), clip=(camera, state.clip_id), done=done)
        # Journalled once built (a fragment that cannot be built takes no app seq); written
        # by the flush, before the encryption.
        self.journal.stage(camera, state.clip_id, index, app_seq, len(data), final=final)


__all__ = ["ByteBudget", "ClipDelivery", "wire_event_id"]
