"""A journal of the clips the hub is sending, so that a restart ends them cleanly for clients.

``Delivery`` keeps the clip it is sending in memory: its wire clip id and one fragment held
back so that the last one can carry ``final``. A hub killed while recording (kill -9, OOM, power
cut) would leave that clip "partial" at every client forever. So each open clip has a small
journal file ``<dir>/<camera>--<clip id>.json`` (0600, written atomically)::

    {"v": 1, "camera": ..., "clip_id": ..., "event_id": ..., "part": recorder file or null,
     "sending": [{"index", "app_seq", "offset", "size", "final", "end"}, ...]}

It is written when the clip's init segment arrives and again *before* each batch of the clip's
messages is encrypted (the delivery encrypts what waits for a group in one batch, with one
durable write of the MLS state): which fragments, in order, the app seq each takes, and where
their bytes lie in the recorder's ``.mp4.part`` file (the recorder flushes each piece before
handing it over, so the bytes of a held fragment are on disk, in plaintext, like the rest of
the recording). Whether those messages were encrypted is then read from the group sender's own
state (its next app seq is past them: a batch is encrypted all or nothing); if they were but
never reached the outbox, the sender's recovery rebuilds each through :meth:`replay`. A journal
written by an older hub holds one message in flight as an object (or null): read as a list.

After a restart :func:`end_interrupted_clips` sends what each journal says is still owed: the
complete pieces of the recorder's file after the last fragment sent, then a ``ClipEnd`` naming
how many fragments the clip has (or, if the recorder had finished the file, the last piece with
``final``: the clip is whole). The plaintext file is deleted afterwards unless the hub keeps
plaintext clips (then the ``.part`` becomes a playable ``.mp4``). Orphaned ``.mp4.part`` files
(a clip whose init segment never reached the delivery) are deleted too, in that case.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from privastead.atomic_file import write_atomic
from privastead.errors import MediaError, StorageError
from privastead.hub.delivery.sender import Sent
from privastead.hub.state.groups import HubGroup, HubGroups
from privastead.media.fmp4 import BoxSplitter
from privastead.protocol.codec import Message
from privastead.protocol.messages import ClipEnd, ClipFragment

log = logging.getLogger(__name__)

PART_SUFFIX = ".part"
REASON = "hub_restarted"


@dataclass(frozen=True)
class Sending:
    """The message of a clip that was about to be encrypted when the journal was written."""

    index: int  # fragment index; for an end, the number of fragments
    app_seq: int
    offset: int  # where the fragment's bytes start in the recorder's file
    size: int
    final: bool = False
    end: bool = False  # a ClipEnd rather than a fragment


@dataclass(frozen=True)
class OpenClip:
    camera: str
    clip_id: str
    event_id: str
    part: Path | None  # the recorder's ``.mp4.part`` (None if it could not be found)
    sending: tuple[Sending, ...]  # the last batch in flight, in order (empty: none yet)
    path: Path  # the journal file


@dataclass(frozen=True)
class Owed:
    """What a restarted hub still owes clients for one interrupted clip."""

    first_index: int  # the index of ``pieces[0]``: fragments below it went out
    pieces: tuple[bytes, ...]
    whole: bool  # the recorder had finished the file: the last piece is ``final``
    done: bool  # the final fragment or the end already went out: clean up only

    @property
    def fragments(self) -> int:
        return self.first_index + len(self.pieces)


class ClipJournal:
    def __init__(
        self, directory: Path, clips_dir: Path | None = None, *, keep_plaintext: bool = False
    ) -> None:
        self.directory = directory
        self.clips_dir = clips_dir
        self.keep_plaintext = keep_plaintext
        self._open: dict[tuple[str, str], dict[str, Any]] = {}
        self._next_offset: dict[tuple[str, str], int] = {}
        # Clips whose in-flight list was written: the next ``stage`` starts a new batch.
        self._written: set[tuple[str, str]] = set()
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create {directory}: {e.strerror or e}") from e

    def _file(self, camera: str, clip_id: str) -> Path:
        return self.directory / f"{camera}--{clip_id}.json"

    def _write(self, key: tuple[str, str]) -> None:
        record = self._open[key]
        write_atomic(self._file(*key), json.dumps(record, sort_keys=True).encode())
        self._written.add(key)

    # -- while sending ---------------------------------------------------------------------

    def open(
        self, camera: str, clip_id: str, event_id: str, recorder_clip: str, init: bytes
    ) -> None:
        """A clip starts: ``init`` is its init segment, which the recorder's file begins with."""
        part = self._find_part(camera, recorder_clip, init)
        key = (camera, clip_id)
        self._open[key] = {
            "v": 1,
            "camera": camera,
            "clip_id": clip_id,
            "event_id": event_id,
            "part": None if part is None else str(part),
            "sending": [],
        }
        self._next_offset[key] = 0
        self._write(key)

    def sending(
        self,
        camera: str,
        clip_id: str,
        index: int,
        app_seq: int,
        size: int,
        *,
        final: bool = False,
        end: bool = False,
    ) -> None:
        """Record, durably, the one message about to be encrypted (``stage`` + ``write``)."""
        self.stage(camera, clip_id, index, app_seq, size, final=final, end=end)
        self.write(camera, clip_id)

    def stage(
        self,
        camera: str,
        clip_id: str,
        index: int,
        app_seq: int,
        size: int,
        *,
        final: bool = False,
        end: bool = False,
    ) -> None:
        """Add a message to the batch about to be encrypted (fragments in index order); in
        memory only until :meth:`write`, which must come before the batch's encryption."""
        key = (camera, clip_id)
        record = self._open.get(key)
        if record is None:
            return
        if key in self._written:  # the previous batch is settled: this one starts afresh
            record["sending"] = []
            self._written.discard(key)
        offset = self._next_offset[key]
        record["sending"].append(asdict(Sending(index, app_seq, offset, size, final, end)))
        self._next_offset[key] = offset + size

    def write(self, camera: str, clip_id: str) -> None:
        """Make the staged batch durable: one atomic write for all of its messages."""
        key = (camera, clip_id)
        if key in self._open and key not in self._written:
            self._write(key)

    def read_next(self, camera: str, clip_id: str, size: int) -> bytes | None:
        """The next ``size`` bytes of the clip to send, read back from the recorder's file
        (where the next ``sending`` places them); None if the file or the bytes are missing.
        The delivery reads a fragment back this way when it did not keep it in memory."""
        key = (camera, clip_id)
        record = self._open.get(key)
        if record is None or record["part"] is None:
            return None
        offset = self._next_offset[key]
        for path in _candidates(Path(record["part"])):  # renamed once the clip is complete
            data = _read(path, offset, size)
            if len(data) == size:
                return data
        return None

    def close(self, camera: str, clip_id: str) -> None:
        """The clip went out whole (or was given up by the quota): forget it."""
        key = (camera, clip_id)
        self._open.pop(key, None)
        self._next_offset.pop(key, None)
        self._written.discard(key)
        self._file(*key).unlink(missing_ok=True)

    def _find_part(self, camera: str, recorder_clip: str, init: bytes) -> Path | None:
        """The recorder's file of this clip: ``<clips>/<day>/<camera>-<time>-<event[:8]>...``
        still being written, beginning with ``init``; today's and yesterday's days first. A
        delivery that fell behind may find the recorder done already: then the finished
        ``.mp4`` is the file (named here by its ``.part`` name, as every reader expects)."""
        if self.clips_dir is None:
            return None
        today = datetime.date.today()
        days = [str(today), str(today - datetime.timedelta(days=1)), "*"]
        for suffix in (PART_SUFFIX, ""):  # a file still being written first
            pattern = f"{camera}-*-{recorder_clip[:8]}*.mp4{suffix}"
            for day in days:
                found = sorted(
                    self.clips_dir.glob(f"{day}/{pattern}"),
                    key=lambda p: p.stat().st_mtime_ns if p.exists() else 0,
                    reverse=True,
                )
                for path in found:
                    try:
                        with path.open("rb") as f:
                            if f.read(len(init)) == init:
                                return path.with_name(
                                    path.name.removesuffix(PART_SUFFIX) + PART_SUFFIX
                                )
                    except OSError:
                        continue
        log.warning("%s: the recorder's file of clip %s not found", camera, recorder_clip)
        return None

    # -- after a restart -------------------------------------------------------------------

    def entries(self) -> list[OpenClip]:
        clips = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                value = json.loads(path.read_bytes())
                sending = value["sending"]
                if not isinstance(sending, list):  # an older hub's journal: one or none
                    sending = [] if sending is None else [sending]
                clips.append(
                    OpenClip(
                        camera=str(value["camera"]),
                        clip_id=str(value["clip_id"]),
                        event_id=str(value["event_id"]),
                        part=None if value["part"] is None else Path(value["part"]),
                        sending=tuple(Sending(**item) for item in sending),
                        path=path,
                    )
                )
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.error("clip journal %s unreadable, dropped: %s", path.name, e)
                path.unlink(missing_ok=True)
        return clips

    def replay(self, camera: str, app_seq: int) -> Message | None:
        """The clip message with ``app_seq`` if a journal was sending it (for the sender's
        recovery of a message encrypted but not queued before the crash)."""
        for clip in self.entries():
            s = next((s for s in clip.sending if s.app_seq == app_seq), None)
            if clip.camera != camera or s is None:
                continue
            if s.end:
                return ClipEnd(clip.clip_id, clip.event_id, s.index, REASON, app_seq)
            source, _whole = self._source(clip)
            data = _read(source, s.offset, s.size) if source is not None else b""
            if len(data) != s.size or not data:
                return None
            return ClipFragment(
                clip.clip_id, clip.event_id, s.index, s.final, s.index == 0, app_seq, data
            )
        return None

    def owed(self, clip: OpenClip, next_app_seq: int) -> Owed:
        """What is still to send for ``clip``, given the events group's next app seq."""
        key = (clip.camera, clip.clip_id)
        self._open[key] = {  # resumed: what is sent now is journalled like before
            "v": 1,
            "camera": clip.camera,
            "clip_id": clip.clip_id,
            "event_id": clip.event_id,
            "part": None if clip.part is None else str(clip.part),
            "sending": [asdict(s) for s in clip.sending],
        }
        self._written.add(key)
        self._next_offset[key] = 0
        # A batch is encrypted all or nothing, so its messages are either all below the next
        # app seq or none; the first one not encrypted is where sending resumes either way.
        waiting = [s for s in clip.sending if s.app_seq >= next_app_seq]
        if not clip.sending:
            first, offset = 0, 0
        elif not waiting:  # encrypted (and queued, or rebuilt by the sender)
            last = clip.sending[-1]
            if last.final or last.end:
                return Owed(last.index, (), whole=False, done=True)
            first, offset = last.index + 1, last.offset + last.size
        elif waiting[0].end:
            return Owed(waiting[0].index, (), whole=False, done=False)  # only the end is missing
        else:
            first, offset = waiting[0].index, waiting[0].offset
        source, whole = self._source(clip)
        pieces = _pieces(source, offset) if source is not None else ()
        if first == 0 and len(pieces) <= 1:
            pieces = ()  # nothing went out and there is no frame to send: no clip at all
        self._next_offset[key] = offset
        return Owed(first, pieces, whole=whole and bool(pieces), done=False)

    def discard(self, clip: OpenClip) -> None:
        """The clip is settled: delete (or, keeping plaintext, publish) the recorder's file
        and the journal."""
        for source in _candidates(clip.part):
            if not source.exists():
                continue
            if self.keep_plaintext:
                if source.name.endswith(PART_SUFFIX):
                    source.replace(source.with_name(source.name.removesuffix(PART_SUFFIX)))
            else:
                source.unlink(missing_ok=True)
        self.close(clip.camera, clip.clip_id)

    def sweep_orphans(self, keep: set[Path]) -> int:
        """Delete recorder files of clips that never reached the delivery (plaintext that no
        journal refers to), unless plaintext is kept. Call before cameras start."""
        if self.keep_plaintext or self.clips_dir is None:
            return 0
        removed = 0
        for path in self.clips_dir.glob(f"*/*.mp4{PART_SUFFIX}"):
            if path not in keep:
                log.warning("deleting the plaintext of an unsent clip: %s", path.name)
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def _source(self, clip: OpenClip) -> tuple[Path | None, bool]:
        """The recorder's file: still ``.part`` (cut short), or renamed (finished, whole)."""
        for path in _candidates(clip.part):
            if path.exists():
                return path, not path.name.endswith(PART_SUFFIX)
        return None, False


def _candidates(part: Path | None) -> list[Path]:
    if part is None:
        return []
    return [part, part.with_name(part.name.removesuffix(PART_SUFFIX))]


def _read(path: Path, offset: int, size: int) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read(size)
    except OSError:
        return b""


def _pieces(path: Path, offset: int) -> tuple[bytes, ...]:
    """The complete fMP4 pieces (init segment, then moof+mdat) from ``offset`` on; a piece the
    crash cut in the middle is left out."""
    pieces: list[bytes] = []
    splitter = BoxSplitter(lambda data, _is_init: pieces.append(data))
    try:
        with path.open("rb") as f:
            f.seek(offset)
            while chunk := f.read(1 << 20):
                splitter.write(chunk)
    except (OSError, MediaError) as e:
        log.warning("reading %s after a crash: %s", path.name, e)
    return tuple(pieces)


Send = Callable[[HubGroup, Callable[[int], Message]], Sent]


def end_interrupted_clips(journal: ClipJournal, groups: HubGroups, send: Send) -> int:
    """After a restart, before new clips: finish every clip a journal says was open. Returns
    how many were ended; their fragments go through ``send`` like any other message."""
    ended = 0
    keep: set[Path] = set()
    for clip in journal.entries():
        try:
            group = groups.get(clip.camera, "events")
        except StorageError:  # the camera was removed from the config
            journal.discard(clip)
            continue
        owed = journal.owed(clip, group.sender.next_app_seq)
        refused = False
        for i, data in enumerate(owed.pieces):
            index = owed.first_index + i
            final = owed.whole and i == len(owed.pieces) - 1
            app_seq = group.sender.next_app_seq
            journal.sending(clip.camera, clip.clip_id, index, app_seq, len(data), final=final)
            sent = send(group, _fragment(clip, index, final, data))
            if not sent.accepted:
                refused = True  # the quota dropped the clip: clients learn it from heartbeats
                break
        if not owed.done and not owed.whole and not refused and owed.fragments > 0:
            journal.sending(
                clip.camera, clip.clip_id, owed.fragments, group.sender.next_app_seq, 0, end=True
            )
            send(group, _end(clip, owed.fragments))
            ended += 1
            log.warning(
                "%s: clip %s was cut by a restart; ended after %d fragment(s)",
                clip.camera,
                clip.clip_id,
                owed.fragments,
            )
        if refused and clip.part is not None:
            keep.update(_candidates(clip.part))  # not delivered: the local copy stays
            journal.close(clip.camera, clip.clip_id)
        else:
            journal.discard(clip)
    journal.sweep_orphans(keep)
    return ended


def _fragment(clip: OpenClip, index: int, final: bool, data: bytes) -> Callable[[int], Message]:
    return lambda seq: ClipFragment(
        clip.clip_id, clip.event_id, index, final, index == 0, seq, data
    )


def _end(clip: OpenClip, fragments: int) -> Callable[[int], Message]:
    return lambda seq: ClipEnd(clip.clip_id, clip.event_id, fragments, REASON, seq)


__all__ = ["ClipJournal", "OpenClip", "Owed", "Sending", "end_interrupted_clips"]
