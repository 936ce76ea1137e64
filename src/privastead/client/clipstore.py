"""Assembles decrypted clip fragments into playable MP4 files, durably and in order.

Layout under ``root``::

    partial/<clip>.part          fragments 0..next-1 appended in order (fMP4 is concatenable)
    partial/<clip>.json          sidecar: event id, next index, bytes written, final index
    partial/<clip>.<index>.ahead a fragment that arrived before its predecessors (its envelope)
    partial/<clip>.end           a ``ClipEnd`` that arrived before the init segment (its envelope)
    clips/<clip>.mp4             a complete clip, renamed into place when the final one lands
    clips/<clip>.json            its record (event id, final index, size), written just before

Rules (protocol.md): index 0 is the init segment; fragments are appended in index order only,
with none missing; every fragment of a clip names the same event (no splicing across clips);
nothing after the final fragment. A ``ClipEnd`` (the hub restarted while recording) sets the
final index instead: the clip is finished once fragments ``0 .. fragments - 1`` are in, and its
record says why it ended early (``ended``). A fragment that arrives early (relay reordering,
a resend) is kept aside, durably, until the gap is filled. Violations raise ``PolicyError``.

Crash safety: data is appended and fsynced *before* the sidecar records it (atomic rename), so on
open a ``.part`` longer than its sidecar says is cut back to it; ``add`` returns only when the
fragment is durable, which is when the client may acknowledge it to the relay.

Single-threaded: one receive loop owns a ClipStore.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privastead.atomic_file import fsync_dir, write_atomic
from privastead.errors import DecodeError, PolicyError, StorageError
from privastead.protocol.codec import decode_message
from privastead.protocol.fields import check_hex_id
from privastead.protocol.messages import ClipEnd, ClipFragment

log = logging.getLogger(__name__)


class FragmentStatus(enum.Enum):
    APPENDED = "appended"  # written in order (and maybe earlier-arrived successors with it)
    BUFFERED = "buffered"  # arrived early; kept aside until its predecessors arrive
    DUPLICATE = "duplicate"  # already have it: safe to acknowledge and drop
    COMPLETE = "complete"  # this fragment completed the clip: ``path`` is the MP4


@dataclass(frozen=True)
class ClipProgress:
    status: FragmentStatus
    clip_id: str
    next_index: int
    path: Path | None = None
    ended: str | None = None  # the clip was cut short (``ClipEnd.reason``): incomplete


@dataclass(frozen=True)
class IncompleteClip:
    clip_id: str
    event_id: str | None  # None if even the init segment is missing
    next_index: int
    waiting: tuple[int, ...]  # indices that arrived early
    final_index: int | None
    size: int


@dataclass
class ClipRecord:
    event_id: str
    next_index: int
    size: int
    final_index: int | None
    ended: str | None = None  # why the hub stopped it early (``ClipEnd``), None if it did not

    @property
    def complete(self) -> bool:
        return self.final_index is not None and self.next_index > self.final_index

    def dump(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode()

    @classmethod
    def load(cls, path: Path) -> ClipRecord:
        try:
            value: Any = json.loads(path.read_bytes())
            sidecar = cls(**value)
            check_hex_id(sidecar.event_id, "event_id")
        except (OSError, ValueError, TypeError) as e:
            raise StorageError(f"clip state {path} is corrupt: {e}") from None
        return sidecar


class ClipStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._partial = root / "partial"
        self._clips = root / "clips"
        self._aside: dict[str, dict[int, tuple[str, bool]]] = {}
        try:
            for d in (root, self._partial, self._clips):
                d.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._recover()
        except OSError as e:
            raise StorageError(f"cannot open the clip store {root}: {e.strerror or e}") from e

    # -- paths ---------------------------------------------------------------------------

    def clip_path(self, clip_id: str) -> Path:
        return self._clips / f"{check_hex_id(clip_id, 'clip_id')}.mp4"

    def _part(self, clip_id: str) -> Path:
        return self._partial / f"{clip_id}.part"

    def _sidecar(self, clip_id: str) -> Path:
        return self._partial / f"{clip_id}.json"

    def _ahead(self, clip_id: str, index: int) -> Path:
        return self._partial / f"{clip_id}.{index}.ahead"

    def _end_path(self, clip_id: str) -> Path:
        return self._partial / f"{clip_id}.end"

    # -- public API ------------------------------------------------------------------------

    def add(self, fragment: ClipFragment) -> ClipProgress:
        """Store ``fragment`` durably; see ``FragmentStatus`` for the outcomes."""
        clip = fragment.clip_id
        done = self.record(clip)
        if done is not None:
            # Already complete: a late copy of one of its fragments is a duplicate, anything
            # else would extend or splice the clip.
            self._check_same_event(fragment, done.event_id)
            if (
                done.final_index is None
                or fragment.index > done.final_index
                or (fragment.final and fragment.index != done.final_index)
            ):
                raise PolicyError(f"clip {clip}: fragment {fragment.index} is not part of it")
            return ClipProgress(
                FragmentStatus.DUPLICATE, clip, done.next_index, self.clip_path(clip), done.ended
            )
        sidecar = self._load_sidecar(clip)
        if sidecar is not None and fragment.index < sidecar.next_index:
            self._check_same_event(fragment, sidecar.event_id)
            return ClipProgress(FragmentStatus.DUPLICATE, clip, sidecar.next_index)
        self._check_against_others(fragment, sidecar)
        if sidecar is None and fragment.index == 0:
            sidecar = ClipRecord(fragment.event_id, 0, 0, None)
            end = self._read_end(clip)  # the hub's ClipEnd came before the init segment
            if end is not None:
                sidecar.final_index, sidecar.ended = end.fragments - 1, end.reason
        if sidecar is None or fragment.index > sidecar.next_index:
            self._keep_aside(fragment)
            return ClipProgress(FragmentStatus.BUFFERED, clip, sidecar.next_index if sidecar else 0)
        self._append(fragment, sidecar)
        return self._progress(clip, sidecar, FragmentStatus.APPENDED)

    def end(self, message: ClipEnd) -> ClipProgress:
        """The hub stopped recording this clip early: it is fragments ``0 .. fragments-1``.

        Finishes the clip (``ended`` set, status COMPLETE) once all of them are in, now or when
        the last one arrives; a fragment beyond the end is refused from then on."""
        clip = message.clip_id
        last = message.fragments - 1
        done = self.record(clip)
        if done is not None:
            if done.event_id != message.event_id or done.final_index != last:
                raise PolicyError(f"clip {clip}: an end that does not match the finished clip")
            return ClipProgress(
                FragmentStatus.DUPLICATE, clip, done.next_index, self.clip_path(clip), done.ended
            )
        sidecar = self._load_sidecar(clip)
        others = self._aside_meta(clip)
        if sidecar is not None:
            self._check_same_event_id(clip, message.event_id, sidecar.event_id)
        for event_id, _final in others.values():
            self._check_same_event_id(clip, message.event_id, event_id)
        finals = {i for i, (_e, final) in others.items() if final}
        if sidecar is not None and sidecar.final_index is not None:
            finals.add(sidecar.final_index)
        beyond = max([*others, sidecar.next_index - 1 if sidecar else -1])
        if finals - {last} or beyond > last:
            raise PolicyError(f"clip {clip}: the hub's end ({message.fragments}) contradicts it")
        if sidecar is None:
            write_atomic(self._end_path(clip), message.encode())  # applied with the init
            return ClipProgress(FragmentStatus.BUFFERED, clip, 0)
        sidecar.final_index, sidecar.ended = last, message.reason
        write_atomic(self._sidecar(clip), sidecar.dump())
        return self._progress(clip, sidecar, FragmentStatus.BUFFERED)

    def _progress(self, clip: str, sidecar: ClipRecord, status: FragmentStatus) -> ClipProgress:
        """Append what was kept aside and is now next, and finish the clip if it is whole."""
        self._drain(clip, sidecar)
        if sidecar.complete:
            path = self._finish(clip, sidecar)
            return ClipProgress(
                FragmentStatus.COMPLETE, clip, sidecar.next_index, path, sidecar.ended
            )
        return ClipProgress(status, clip, sidecar.next_index)

    def record(self, clip_id: str) -> ClipRecord | None:
        """The record of a complete clip (event id, final index, size), or None."""
        path = self._clips / f"{check_hex_id(clip_id, 'clip_id')}.json"
        if not path.exists() or not self.clip_path(clip_id).exists():
            return None
        return ClipRecord.load(path)

    def incomplete(self) -> list[IncompleteClip]:
        """Clips that started (or have early fragments) but are not complete."""
        clips: dict[str, IncompleteClip] = {}
        for path in sorted(self._partial.iterdir()):
            clip = path.name.split(".", 1)[0]
            if path.name.endswith(".tmp"):
                continue
            if clip in clips:
                continue
            sidecar = self._load_sidecar(clip)
            waiting = self._waiting(clip)
            if sidecar is None:
                clips[clip] = IncompleteClip(clip, None, 0, waiting, self._final_of(clip), 0)
            else:
                clips[clip] = IncompleteClip(
                    clip,
                    sidecar.event_id,
                    sidecar.next_index,
                    waiting,
                    sidecar.final_index,
                    sidecar.size,
                )
        return list(clips.values())

    def abandon(self, clip_id: str) -> Path | None:
        """Stop waiting for a clip (e.g. the hub dropped the rest): keep what is playable.

        The in-order prefix becomes ``clips/<clip>.incomplete.mp4`` (returned), early fragments
        are deleted. None if not even the init segment had arrived.
        """
        check_hex_id(clip_id, "clip_id")
        kept = None
        if self._load_sidecar(clip_id) is not None and self._part(clip_id).exists():
            kept = self._clips / f"{clip_id}.incomplete.mp4"
            self._part(clip_id).replace(kept)
            fsync_dir(self._clips)
        self._cleanup(clip_id)
        return kept

    # -- internals -----------------------------------------------------------------------

    def _load_sidecar(self, clip_id: str) -> ClipRecord | None:
        path = self._sidecar(clip_id)
        return ClipRecord.load(path) if path.exists() else None

    @staticmethod
    def _check_same_event_id(clip: str, got: str, event_id: str) -> None:
        if got != event_id:
            raise PolicyError(f"clip {clip}: an end for another event (splicing across clips)")

    @staticmethod
    def _check_same_event(fragment: ClipFragment, event_id: str) -> None:
        if fragment.event_id != event_id:
            raise PolicyError(
                f"clip {fragment.clip_id}: fragment {fragment.index} belongs to another event "
                "(splicing across clips)"
            )

    def _check_against_others(self, fragment: ClipFragment, sidecar: ClipRecord | None) -> None:
        """Same event as everything else of this clip, and nothing beyond its final fragment."""
        clip = fragment.clip_id
        others = self._aside_meta(clip)
        if sidecar is not None:
            self._check_same_event(fragment, sidecar.event_id)
        for event_id, _final in others.values():
            self._check_same_event(fragment, event_id)
        finals = {i for i, (_e, final) in others.items() if final}
        if fragment.final:
            finals.add(fragment.index)
        if sidecar is not None and sidecar.final_index is not None:
            finals.add(sidecar.final_index)  # set by a ClipEnd
        end = self._read_end(clip) if sidecar is None else None
        if end is not None:
            self._check_same_event(fragment, end.event_id)
            finals.add(end.fragments - 1)
        if len(finals) > 1:
            raise PolicyError(f"clip {clip}: two different final fragments {sorted(finals)}")
        if finals:
            last = max([fragment.index, *others])
            if sidecar is not None:
                last = max(last, sidecar.next_index - 1)
            if last > min(finals):
                raise PolicyError(f"clip {clip}: fragment {last} comes after the final fragment")

    def _append(self, fragment: ClipFragment, sidecar: ClipRecord) -> None:
        part = self._part(fragment.clip_id)
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.ftruncate(fd, sidecar.size)  # drop bytes a crash left beyond the record
                os.lseek(fd, sidecar.size, os.SEEK_SET)
                view = memoryview(fragment.data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise StorageError(f"cannot write clip {fragment.clip_id}: {e.strerror or e}") from e
        sidecar.next_index = fragment.index + 1
        sidecar.size += len(fragment.data)
        if fragment.final:
            sidecar.final_index = fragment.index
        write_atomic(self._sidecar(fragment.clip_id), sidecar.dump())
        self._aside_meta(fragment.clip_id).pop(fragment.index, None)
        with contextlib.suppress(FileNotFoundError):
            self._ahead(fragment.clip_id, fragment.index).unlink()

    def _drain(self, clip_id: str, sidecar: ClipRecord) -> None:
        """Append the fragments kept aside that are now next in line."""
        while not sidecar.complete:
            early = self._read_aside(clip_id, sidecar.next_index)
            if early is None:
                return
            self._append(early, sidecar)

    def _keep_aside(self, fragment: ClipFragment) -> None:
        write_atomic(self._ahead(fragment.clip_id, fragment.index), fragment.encode())
        self._aside_meta(fragment.clip_id)[fragment.index] = (fragment.event_id, fragment.final)

    def _aside_meta(self, clip_id: str) -> dict[int, tuple[str, bool]]:
        """index -> (event id, final) of the fragments kept aside; read from disk once per clip
        and then kept in memory, so checking a fragment never re-reads the others."""
        meta = self._aside.get(clip_id)
        if meta is None:
            meta = {}
            for path in self._partial.glob(f"{clip_id}.*.ahead"):
                middle = path.name[len(clip_id) + 1 : -len(".ahead")]
                if middle.isdigit() and (f := self._read_aside(clip_id, int(middle))):
                    meta[f.index] = (f.event_id, f.final)
            self._aside[clip_id] = meta
        return meta

    def _read_aside(self, clip_id: str, index: int) -> ClipFragment | None:
        path = self._ahead(clip_id, index)
        try:
            message = decode_message(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, DecodeError) as e:
            log.error("clip %s: discarding unreadable early fragment %d: %s", clip_id, index, e)
            path.unlink(missing_ok=True)
            return None
        if (
            not isinstance(message, ClipFragment)
            or message.clip_id != clip_id
            or message.index != index
        ):
            path.unlink(missing_ok=True)
            return None
        return message

    def _read_end(self, clip_id: str) -> ClipEnd | None:
        path = self._end_path(clip_id)
        try:
            message = decode_message(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, DecodeError) as e:
            log.error("clip %s: discarding an unreadable end: %s", clip_id, e)
            path.unlink(missing_ok=True)
            return None
        if not isinstance(message, ClipEnd) or message.clip_id != clip_id:
            path.unlink(missing_ok=True)
            return None
        return message

    def _waiting(self, clip_id: str) -> tuple[int, ...]:
        return tuple(sorted(self._aside_meta(clip_id)))

    def _final_of(self, clip_id: str) -> int | None:
        finals = [i for i, (_e, final) in self._aside_meta(clip_id).items() if final]
        return min(finals) if finals else None

    def _finish(self, clip_id: str, sidecar: ClipRecord) -> Path:
        final = self.clip_path(clip_id)
        write_atomic(self._clips / f"{clip_id}.json", sidecar.dump())
        self._part(clip_id).replace(final)
        fsync_dir(self._clips)
        self._cleanup(clip_id)
        return final

    def _cleanup(self, clip_id: str) -> None:
        for index in self._waiting(clip_id):
            self._ahead(clip_id, index).unlink(missing_ok=True)
        self._part(clip_id).unlink(missing_ok=True)
        self._sidecar(clip_id).unlink(missing_ok=True)
        self._end_path(clip_id).unlink(missing_ok=True)
        self._aside.pop(clip_id, None)
        fsync_dir(self._partial)

    def _recover(self) -> None:
        for path in list(self._partial.iterdir()):
            if path.name.endswith(".tmp"):
                path.unlink()
        for sidecar_path in list(self._partial.glob("*.json")):
            clip = sidecar_path.stem
            if (self._clips / f"{clip}.mp4").exists():
                self._cleanup(clip)  # crashed after the final rename
                continue
            sidecar = ClipRecord.load(sidecar_path)
            part = self._part(clip)
            if not part.exists() and sidecar.size == 0:
                continue
            size = part.stat().st_size if part.exists() else -1
            if size < sidecar.size:
                raise StorageError(f"clip {clip}: {part} is shorter than recorded")
            if size > sidecar.size:
                log.info("clip %s: cutting %d unrecorded bytes", clip, size - sidecar.size)
                os.truncate(part, sidecar.size)
            # A crash right after appending a fragment kept aside leaves its copy behind.
            for index in self._waiting(clip):
                if index < sidecar.next_index:
                    self._aside_meta(clip).pop(index, None)
                    self._ahead(clip, index).unlink(missing_ok=True)
            # A crash while appending fragments kept aside leaves the next one still aside (it
            # was acknowledged when it was put there, so nobody will send it again): resume.
            self._drain(clip, sidecar)
            if sidecar.complete:
                self._finish(clip, sidecar)  # crashed between the last append and the rename
        for part in list(self._partial.glob("*.part")):
            if not self._sidecar(part.stem).exists():
                part.unlink()  # the init segment was never recorded


__all__ = ["ClipProgress", "ClipRecord", "ClipStore", "FragmentStatus", "IncompleteClip"]
