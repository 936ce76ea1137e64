"""The hub's durable upload queue: ciphertext waits here until the relay has it.

One directory per group mailbox, one file per message (``outbox_files``), in seq order. The
caller's MLS state records the highest seq it encrypted (its *high water*) in the same atomic
write that advanced the ratchet, and appends the ciphertext right after; ``recover`` compares
that high water with what is on disk and names the seqs lost in between (a crash after the state
write, before the append), so the caller can re-encrypt them from the plaintext it still holds.

Uploaded entries may be kept in ``sent/`` (``sent_retention_bytes``) to answer a client's resend
request; each file's metadata names the application seq it carries, and the outbox indexes the
archive by it when it opens, so resends keep working across hub restarts.

Each mailbox also has ``state.json``: the highest seq uploaded (everything at or below it is
done, uploads go in order) and the seqs dropped by the quota policy, so neither is mistaken for a
crash gap.

Quota policy (explicit, reported): when an append would exceed ``quota_bytes``, the oldest whole
clips (all of their fragments not yet uploaded, in every mailbox) are dropped first. If that is
not enough, a clip fragment is refused and the rest of its clip too; notifications, commits,
heartbeats and control messages are never dropped: they are small, and losing a commit would
desync every client. Drops are returned by ``append`` and collected for the heartbeat.

Thread safety: one writer per mailbox (its group's worker) and the uploader may call
concurrently. Changes (and the disk writes that go with them: entry files, ``state.json``, all
fsynced) happen under the outbox's ``lock``. The uploader's questions on the event loop
(``first_pending``, ``contains``, ``mailbox``, ``mailboxes``) take only a small index lock that
no one holds across disk I/O: otherwise the loop would wait for another camera's fsync
(``docs/design/hub-concurrency.md`` measured it as the largest share of the loop's stalls).
"""

from __future__ import annotations

import collections
import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from privastead import compat
from privastead.errors import DecodeError, StorageError
from privastead.hub.delivery.outbox_files import (
    TMP_SUFFIX,
    EntryMeta,
    entry_name,
    pack_entry,
    parse_entry_name,
    read_entry,
    read_meta,
    write_atomic,
)
from privastead.protocol.fields import check_hex_id

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
SENT_DIR = "sent"
Range = tuple[int, int]


class EntryKind(compat.StrEnum):
    COMMIT = "commit"
    NOTIFICATION = "notification"
    CLIP_FRAGMENT = "clip_fragment"
    HEARTBEAT = "heartbeat"
    CONTROL = "control"  # any other control-group message (resend answers, device list ...)


@dataclass(frozen=True)
class OutboxEntry:
    mailbox: str
    seq: int
    kind: EntryKind
    clip_id: str | None
    push_payload: bytes | None
    size: int
    path: Path = field(repr=False)
    app_seq: int | None = None

    def read(self) -> bytes:
        """The ciphertext (CRC-checked). Raises ``StorageError`` if it is gone or corrupt."""
        meta, ciphertext = read_entry(self.path)
        if meta.seq != self.seq:
            raise StorageError(f"outbox entry {self.path} holds seq {meta.seq}")
        return ciphertext


@dataclass(frozen=True)
class DroppedClip:
    """A clip the quota policy dropped (its not-yet-uploaded fragments)."""

    clip_id: str
    mailbox: str
    seqs: tuple[int, ...]
    bytes: int


@dataclass(frozen=True)
class AppendResult:
    accepted: bool  # False: this clip fragment was refused by the quota policy
    dropped: tuple[DroppedClip, ...] = ()


@dataclass(frozen=True)
class OutboxStatus:
    pending_messages: int
    pending_bytes: int
    quota_bytes: int
    dropped_clips: int  # since the outbox was opened
    dropped_bytes: int

    def as_dict(self) -> dict[str, int]:
        """For the heartbeat's ``outbox`` field."""
        return {
            "pending_messages": self.pending_messages,
            "pending_bytes": self.pending_bytes,
            "quota_bytes": self.quota_bytes,
            "dropped_clips": self.dropped_clips,
            "dropped_bytes": self.dropped_bytes,
        }


def _add_range(ranges: list[Range], seq: int) -> list[Range]:
    merged: list[Range] = []
    for a, b in sorted([*ranges, (seq, seq)]):
        if merged and a <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


class MailboxQueue:
    """The queue of one group mailbox. Obtain it from ``Outbox.mailbox``."""

    def __init__(self, outbox: Outbox, mailbox: str, directory: Path) -> None:
        self._outbox = outbox
        self.mailbox = mailbox
        self._dir = directory
        self._entries: dict[int, OutboxEntry] = {}
        # Guards ``_entries`` for readers that must not wait on disk (the uploader on the
        # loop). Taken after ``outbox.lock`` when both are needed, never held across I/O.
        self._index = threading.Lock()
        self._uploaded_through = -1
        self._dropped: list[Range] = []
        self._load()

    # -- opening ---------------------------------------------------------------------------

    def _load(self) -> None:
        state_path = self._dir / STATE_FILE
        if state_path.exists():
            try:
                state = json.loads(state_path.read_bytes())
                self._uploaded_through = int(state["uploaded_through"])
                self._dropped = [(int(a), int(b)) for a, b in state["dropped"]]
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise StorageError(f"outbox state {state_path} is corrupt: {e}") from None
        for path in sorted(self._dir.iterdir()):
            if path.name.endswith(TMP_SUFFIX):
                log.info("outbox %s: removing unfinished write %s", self.mailbox, path.name)
                path.unlink()
                continue
            seq = parse_entry_name(path.name)
            if seq is None:
                continue
            if seq <= self._uploaded_through:
                # Uploaded; the crash came between recording that and moving the file on.
                try:
                    app_seq = read_meta(path)[0].app_seq
                except StorageError:
                    app_seq = None
                self._retire(path, seq, app_seq)
                continue
            try:
                meta, size = read_meta(path)
                if meta.seq != seq:
                    raise StorageError(f"{path} holds seq {meta.seq}")
                kind = EntryKind(meta.kind)
            except (StorageError, ValueError) as e:
                log.error("outbox %s: quarantining unreadable entry: %s", self.mailbox, e)
                path.rename(path.with_name(path.name + ".corrupt"))
                continue
            self._entries[seq] = OutboxEntry(
                self.mailbox, seq, kind, meta.clip_id, meta.push_payload, size, path, meta.app_seq
            )

    def _save_state(self) -> None:
        state = {"uploaded_through": self._uploaded_through, "dropped": self._dropped}
        write_atomic(self._dir / STATE_FILE, json.dumps(state).encode())

    # -- the writer ------------------------------------------------------------------------

    def append(
        self,
        seq: int,
        ciphertext: bytes,
        *,
        kind: EntryKind,
        clip_id: str | None = None,
        push_payload: bytes | None = None,
        app_seq: int | None = None,
        sync_dir: bool = True,
    ) -> AppendResult:
        """Persist ``ciphertext`` as message ``seq``; durable when this returns. ``app_seq`` is
        the envelope seq of an application message (how clients name it in resend requests).

        ``sync_dir=False`` (for all but the last of a batch the caller can rebuild after a
        crash) skips the directory fsync: the next append or state write of this mailbox makes
        the rename durable with its own."""
        if (clip_id is None) != (kind is not EntryKind.CLIP_FRAGMENT):
            raise ValueError("clip_id is required for clip fragments and only for them")
        if clip_id is not None:
            try:
                check_hex_id(clip_id, "clip_id")
            except DecodeError as e:
                raise ValueError(str(e)) from None
        with self._outbox.lock:
            if seq < 0 or seq <= self._uploaded_through or seq in self._entries:
                raise StorageError(f"outbox {self.mailbox}: seq {seq} is already queued or sent")
            if self._is_dropped(seq):
                raise StorageError(f"outbox {self.mailbox}: seq {seq} was dropped by the quota")
            size = len(ciphertext)
            dropped, accepted = self._outbox._make_room(size, kind, clip_id)
            if not accepted:
                self._dropped = _add_range(self._dropped, seq)
                self._save_state()
                assert clip_id is not None
                refused = DroppedClip(clip_id, self.mailbox, (seq,), size)
                self._outbox._note_refused(refused)
                return AppendResult(False, (*dropped, refused))
            path = self._dir / entry_name(seq)
            meta = EntryMeta(seq, kind.value, clip_id, push_payload, app_seq)
            write_atomic(path, pack_entry(meta, ciphertext), sync_dir=sync_dir)
            with self._index:
                self._entries[seq] = OutboxEntry(
                    self.mailbox, seq, kind, clip_id, push_payload, size, path, app_seq
                )
            self._outbox._note_append(self, seq, size, clip_id)
        self._outbox._notify(self.mailbox)
        return AppendResult(True, dropped)

    def recover(self, high_water: int) -> tuple[Range, ...]:
        """Seqs at or below ``high_water`` that are neither on disk, uploaded nor dropped.

        These were encrypted (the MLS state says so) but their ciphertext never reached the
        outbox: the caller must re-encrypt them. Call once after opening, before appending.
        """
        with self._outbox.lock:
            gaps: list[Range] = []
            start = None
            for seq in range(self._uploaded_through + 1, high_water + 1):
                lost = seq not in self._entries and not self._is_dropped(seq)
                if lost and start is None:
                    start = seq
                elif not lost and start is not None:
                    gaps.append((start, seq - 1))
                    start = None
            if start is not None:
                gaps.append((start, high_water))
            return tuple(gaps)

    # -- the uploader ----------------------------------------------------------------------

    def pending(self) -> list[OutboxEntry]:
        """Entries not yet uploaded, lowest seq first."""
        with self._index:
            return [self._entries[s] for s in sorted(self._entries)]

    def first_pending(self) -> OutboxEntry | None:
        """The lowest entry not yet uploaded; never waits for a disk write."""
        with self._index:
            return self._entries[min(self._entries)] if self._entries else None

    def contains(self, seq: int) -> bool:
        with self._index:
            return seq in self._entries

    @property
    def uploaded_through(self) -> int:
        return self._uploaded_through

    def mark_uploaded(self, seq: int) -> None:
        """The relay has message ``seq``: forget it. Uploads happen in order."""
        with self._outbox.lock:
            if seq not in self._entries:
                return  # dropped by the quota while it was being uploaded
            if seq != min(self._entries):
                raise StorageError(f"outbox {self.mailbox}: seq {seq} uploaded out of order")
            with self._index:
                entry = self._entries.pop(seq)
            # Record first, delete second: a crash in between leaves a file that _load deletes.
            self._uploaded_through = seq
            self._dropped = [r for r in self._dropped if r[1] > seq]
            self._save_state()
            self._retire(entry.path, seq, entry.app_seq)
            self._outbox._note_removed(entry)

    def _retire(self, path: Path, seq: int, app_seq: int | None) -> None:
        """An uploaded entry: keep it in ``sent/`` for resends if the outbox keeps any, else
        delete it. The budget counts whole files, as on disk."""
        if self._outbox.sent_retention_bytes <= 0:
            path.unlink(missing_ok=True)
            return
        size = path.stat().st_size
        sent = self._dir / SENT_DIR
        sent.mkdir(mode=0o700, exist_ok=True)
        target = sent / path.name
        path.replace(target)
        self._outbox._note_sent(self.mailbox, seq, size, target, app_seq)

    def archived(self, seq: int) -> bytes | None:
        """The ciphertext of an uploaded message if still kept (to answer a resend request)."""
        path = self._dir / SENT_DIR / entry_name(seq)
        try:
            meta, ciphertext = read_entry(path)
        except StorageError:
            return None
        return ciphertext if meta.seq == seq else None

    def archived_app(self, app_seq: int) -> tuple[int, bytes] | None:
        """(seq, ciphertext) of the uploaded application message with envelope seq
        ``app_seq``, if the archive still keeps it; works after a restart too."""
        with self._outbox.lock:
            seq = self._outbox._sent_by_app.get(self.mailbox, {}).get(app_seq)
        if seq is None:
            return None
        ciphertext = self.archived(seq)
        return None if ciphertext is None else (seq, ciphertext)

    def discard(self, seq: int, reason: str) -> None:
        """Give up on one entry the relay keeps refusing; it counts as dropped, not lost."""
        with self._outbox.lock:
            with self._index:
                entry = self._entries.pop(seq, None)
            if entry is None:
                return
            log.error("outbox %s: dropping seq %d (%s): %s", self.mailbox, seq, entry.kind, reason)
            self._dropped = _add_range(self._dropped, seq)
            self._save_state()
            entry.path.unlink(missing_ok=True)
            self._outbox._note_removed(entry)

    def skip(self, seq: int, reason: str) -> None:
        """Record that ``seq`` will never be queued (lost and not rebuildable), so that it is
        neither reported by ``recover`` again nor waited for."""
        with self._outbox.lock:
            if seq in self._entries or seq <= self._uploaded_through or self._is_dropped(seq):
                return
            log.error("outbox %s: skipping seq %d: %s", self.mailbox, seq, reason)
            self._dropped = _add_range(self._dropped, seq)
            self._save_state()

    # -- helpers for the Outbox ------------------------------------------------------------

    def _is_dropped(self, seq: int) -> bool:
        return any(a <= seq <= b for a, b in self._dropped)

    def _drop_entries(self, seqs: Iterable[int]) -> None:
        for seq in seqs:
            with self._index:
                entry = self._entries.pop(seq, None)
            if entry is not None:
                self._dropped = _add_range(self._dropped, seq)
                entry.path.unlink(missing_ok=True)
                self._outbox._note_removed(entry)
        self._save_state()

    def _entries_view(self) -> dict[int, OutboxEntry]:
        return self._entries


class Outbox:
    """All mailbox queues of a hub under one directory, sharing one disk quota."""

    def __init__(self, root: Path, *, quota_bytes: int, sent_retention_bytes: int = 0) -> None:
        """``sent_retention_bytes``: how much uploaded ciphertext to keep (oldest goes first) so
        that a message the relay lost can be sent again; 0 keeps none."""
        if quota_bytes <= 0:
            raise ValueError("quota_bytes must be positive")
        self.root = root
        self.quota_bytes = quota_bytes
        self.sent_retention_bytes = sent_retention_bytes
        # The archive, oldest first: (mailbox, seq, app seq, size, path); and by app seq.
        self._sent: collections.deque[tuple[str, int, int | None, int, Path]] = collections.deque()
        self._sent_by_app: dict[str, dict[int, int]] = {}
        self._sent_bytes = 0
        self.lock = threading.RLock()
        self._queues: dict[str, MailboxQueue] = {}
        self._index = threading.Lock()  # ``_queues`` for readers that must not wait on disk
        self._listeners: list[Callable[[str], None]] = []
        self._clip_order: dict[str, int] = {}  # clip id -> age rank (lower is older)
        self._counter = 0
        self._pending_bytes = 0
        self._dropped_clips = 0
        self._dropped_bytes = 0
        self._unreported: list[DroppedClip] = []
        self._clip_pending: dict[str, int] = {}  # clip id -> fragments still queued
        # Clips refused for lack of space: their later fragments are refused too, so a clip is
        # never delivered with a hole in the middle.
        self._refused: set[str] = set()
        try:
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
            for path in sorted(root.iterdir()):
                if path.is_dir() and parse_mailbox(path.name):
                    self._open_queue(path.name)
            self._load_sent()
        except OSError as e:
            raise StorageError(f"cannot open outbox {root}: {e.strerror or e}") from e

    def _open_queue(self, mailbox: str) -> MailboxQueue:
        directory = self.root / mailbox
        directory.mkdir(mode=0o700, exist_ok=True)
        queue = MailboxQueue(self, mailbox, directory)
        with self._index:
            self._queues[mailbox] = queue
        for entry in queue.pending():
            self._note_append(queue, entry.seq, entry.size, entry.clip_id)
        return queue

    def _tick(self) -> int:
        self._counter += 1
        return self._counter

    def mailbox(self, mailbox: str) -> MailboxQueue:
        """The queue of ``mailbox`` (32 hex digits), created on first use."""
        if not parse_mailbox(mailbox):
            raise ValueError("a mailbox id is 32 lowercase hex digits")
        with self._index:
            known = self._queues.get(mailbox)
        if known is not None:
            return known  # the common case, on the loop: no wait for another writer's disk
        with self.lock:
            queue = self._queues.get(mailbox)
            if queue is None:
                try:
                    queue = self._open_queue(mailbox)
                except OSError as e:
                    raise StorageError(f"cannot create outbox {mailbox}: {e}") from e
            return queue

    def mailboxes(self) -> list[str]:
        with self._index:
            return sorted(self._queues)

    def subscribe(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(mailbox)`` after each append (from the writer's thread)."""
        with self.lock:
            self._listeners.append(callback)

        def unsubscribe() -> None:
            with self.lock:
                self._listeners.remove(callback)

        return unsubscribe

    def status(self) -> OutboxStatus:
        with self.lock:
            pending = sum(len(q._entries_view()) for q in self._queues.values())
            return OutboxStatus(
                pending,
                self._pending_bytes,
                self.quota_bytes,
                self._dropped_clips,
                self._dropped_bytes,
            )

    def take_dropped(self) -> list[DroppedClip]:
        """Drops since the last call, for logging and the heartbeat."""
        with self.lock:
            dropped, self._unreported = self._unreported, []
            return dropped

    # -- called by queues under the lock ---------------------------------------------------

    def _notify(self, mailbox: str) -> None:
        with self.lock:
            listeners = list(self._listeners)
        for callback in listeners:
            callback(mailbox)

    def _note_append(self, queue: MailboxQueue, seq: int, size: int, clip_id: str | None) -> None:
        self._pending_bytes += size
        if clip_id is not None:
            # Age = order of first appearance (on open: seq order per mailbox, i.e. append order).
            self._clip_order.setdefault(clip_id, self._tick())
            self._clip_pending[clip_id] = self._clip_pending.get(clip_id, 0) + 1

    def _note_removed(self, entry: OutboxEntry) -> None:
        self._pending_bytes -= entry.size
        if entry.clip_id is not None:
            left = self._clip_pending.get(entry.clip_id, 1) - 1
            if left > 0:
                self._clip_pending[entry.clip_id] = left
            else:
                self._clip_pending.pop(entry.clip_id, None)
                self._clip_order.pop(entry.clip_id, None)

    def _make_room(
        self, size: int, kind: EntryKind, clip_id: str | None
    ) -> tuple[tuple[DroppedClip, ...], bool]:
        """Apply the quota policy for an append of ``size`` bytes: (drops, accepted)."""
        dropped: list[DroppedClip] = []
        if clip_id is not None and clip_id in self._refused:
            return (), False
        for victim in sorted(self._clip_order, key=self._clip_order.__getitem__):
            if self._pending_bytes + size <= self.quota_bytes:
                break
            if victim != clip_id:
                dropped.extend(self._drop_clip(victim))
        accepted = True
        if self._pending_bytes + size > self.quota_bytes and kind is EntryKind.CLIP_FRAGMENT:
            assert clip_id is not None
            dropped.extend(self._drop_clip(clip_id))
            self._refused.add(clip_id)
            accepted = False
        return tuple(dropped), accepted

    def _load_sent(self) -> None:
        self._sent.clear()  # rebuilt from disk, oldest first
        self._sent_by_app.clear()
        self._sent_bytes = 0
        found = []
        for queue_dir in self.root.iterdir():
            sent = queue_dir / SENT_DIR
            if not sent.is_dir():
                continue
            for path in sent.iterdir():
                seq = parse_entry_name(path.name)
                if seq is None:
                    path.unlink()  # a .tmp cannot be here; anything else is not ours
                    continue
                try:
                    meta, _size = read_meta(path)
                except StorageError as e:
                    log.warning("outbox: deleting unreadable archived entry: %s", e)
                    path.unlink()
                    continue
                stat = path.stat()
                found.append((stat.st_mtime_ns, seq, meta.app_seq, stat.st_size, path))
        for _mtime, seq, app_seq, size, path in sorted(found, key=lambda f: (f[0], f[1])):
            self._note_sent(path.parent.parent.name, seq, size, path, app_seq)

    def _note_sent(
        self, mailbox: str, seq: int, size: int, path: Path, app_seq: int | None = None
    ) -> None:
        self._sent.append((mailbox, seq, app_seq, size, path))
        if app_seq is not None:
            self._sent_by_app.setdefault(mailbox, {})[app_seq] = seq
        self._sent_bytes += size
        while self._sent and self._sent_bytes > self.sent_retention_bytes:
            old_mailbox, old_seq, old_app, old_size, old_path = self._sent.popleft()
            old_path.unlink(missing_ok=True)
            self._sent_bytes -= old_size
            by_app = self._sent_by_app.get(old_mailbox, {})
            if old_app is not None and by_app.get(old_app) == old_seq:
                del by_app[old_app]

    def _note_refused(self, drop: DroppedClip) -> None:
        self._dropped_bytes += drop.bytes
        self._unreported.append(drop)

    def _drop_clip(self, clip_id: str) -> list[DroppedClip]:
        self._clip_order.pop(clip_id, None)
        result = []
        for queue in self._queues.values():
            seqs = tuple(
                s for s, e in sorted(queue._entries_view().items()) if e.clip_id == clip_id
            )
            if not seqs:
                continue
            size = sum(queue._entries_view()[s].size for s in seqs)
            queue._drop_entries(seqs)
            drop = DroppedClip(clip_id, queue.mailbox, seqs, size)
            log.warning(
                "outbox full: dropped clip %s (%d messages, %d bytes)", clip_id, len(seqs), size
            )
            self._dropped_clips += 1
            self._dropped_bytes += size
            self._unreported.append(drop)
            result.append(drop)
        return result


def parse_mailbox(name: str) -> bool:
    return len(name) == 32 and all(c in "0123456789abcdef" for c in name)


__all__ = [
    "AppendResult",
    "DroppedClip",
    "EntryKind",
    "MailboxQueue",
    "Outbox",
    "OutboxEntry",
    "OutboxStatus",
]
