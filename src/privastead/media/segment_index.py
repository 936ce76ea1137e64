"""Where continuous recording is: an index of segments by camera and wall-clock time.

One SQLite database (WAL, 0600) beside the segment files. A row per finished segment: its
camera, wall-clock start and end, file (relative to the recordings root), size, and the
keyframes inside it as (seconds into the segment, byte offset of the fragment that starts
there), so playback of any moment can start at the keyframe before it without reading the
file. The files are the truth and the index a cache of them: ``rebuild`` recreates it from the
files (after a crash, a lost database, or a disk that filled while the index was written).

Events are marked on the same timeline in a second table, ``marks``: one row per event (its
camera, id, wall-clock start and end; end is NULL while the event runs), written by the hub
whether or not the camera records continuously, so a timeline can show events on days without
recording. ``rebuild`` keeps the marks (they are not in the files); retention drops the marks
older than the oldest thing a timeline could still show (``forget_marks_before``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privastead.errors import StorageError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY,
    camera TEXT NOT NULL,
    start REAL NOT NULL,
    end REAL NOT NULL,
    path TEXT NOT NULL UNIQUE,
    bytes INTEGER NOT NULL,
    frames INTEGER NOT NULL,
    keyframes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS segments_by_time ON segments (camera, start);
CREATE TABLE IF NOT EXISTS marks (
    camera TEXT NOT NULL,
    event_id TEXT NOT NULL,
    start REAL NOT NULL,
    end REAL,
    PRIMARY KEY (camera, event_id)
);
CREATE INDEX IF NOT EXISTS marks_by_time ON marks (camera, start);
"""


@dataclass(frozen=True)
class Segment:
    """One finished segment file."""

    camera: str
    start: float  # wall clock, Unix seconds, of its first frame
    end: float  # wall clock of the end of its last frame
    path: str  # relative to the recordings root
    bytes: int
    frames: int
    keyframes: tuple[tuple[float, int], ...]  # (seconds into the segment, byte offset)

    @property
    def duration(self) -> float:
        return self.end - self.start

    def seek(self, at: float) -> tuple[float, int]:
        """The keyframe to start from to show wall-clock second ``at``: (seconds into the
        segment, byte offset of its fragment)."""
        offset = at - self.start
        best = self.keyframes[0] if self.keyframes else (0.0, 0)
        for keyframe in self.keyframes:
            if keyframe[0] <= offset + 1e-6:
                best = keyframe
        return best


@dataclass(frozen=True)
class EventMark:
    """An event on a camera's timeline (wall clock, Unix seconds; ``end`` None while it runs)."""

    camera: str
    event_id: str
    start: float
    end: float | None


class SegmentIndex:
    """The segment table; thread-safe (one connection behind a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # Keep the write-ahead log small: on a nearly full disk it competes with video.
            self._db.execute("PRAGMA wal_autocheckpoint=64")
            self._db.execute("PRAGMA journal_size_limit=262144")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StorageError(f"segment index {path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return list(self._db.execute(sql, args))
            except sqlite3.Error as exc:
                raise StorageError(f"segment index {self.path}: {exc}") from exc

    def add(self, segment: Segment) -> None:
        self._run(
            "INSERT OR REPLACE INTO segments (camera, start, end, path, bytes, frames, keyframes)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                segment.camera,
                segment.start,
                segment.end,
                segment.path,
                segment.bytes,
                segment.frames,
                json.dumps(segment.keyframes),
            ),
        )

    def remove(self, paths: list[str]) -> None:
        """Forget these segments, in one transaction (one write however many)."""
        with self._lock:
            try:
                self._db.execute("BEGIN")
                self._db.executemany("DELETE FROM segments WHERE path = ?", [(p,) for p in paths])
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise StorageError(f"segment index {self.path}: {exc}") from exc

    @staticmethod
    def _row(row: tuple[Any, ...]) -> Segment:
        camera, start, end, path, size, frames, keyframes = row
        pairs = tuple((float(t), int(o)) for t, o in json.loads(str(keyframes)))
        return Segment(
            str(camera), float(start), float(end), str(path), int(size), int(frames), pairs
        )

    _COLUMNS = "camera, start, end, path, bytes, frames, keyframes"

    def between(self, camera: str, start: float, end: float) -> list[Segment]:
        """Segments of ``camera`` overlapping [start, end), oldest first."""
        rows = self._run(
            f"SELECT {self._COLUMNS} FROM segments WHERE camera = ? AND start < ? AND end > ?"  # noqa: S608 - constant columns
            " ORDER BY start",
            (camera, end, start),
        )
        return [self._row(r) for r in rows]

    def at(self, camera: str, at: float) -> Segment | None:
        """The segment of ``camera`` that holds wall-clock second ``at``."""
        found = self.between(camera, at, at + 1e-6)
        return found[-1] if found else None

    def oldest(self, limit: int = 100, camera: str | None = None) -> list[Segment]:
        where, args = ("WHERE camera = ?", (camera,)) if camera is not None else ("", ())
        rows = self._run(
            f"SELECT {self._COLUMNS} FROM segments {where} ORDER BY start LIMIT ?",  # noqa: S608
            (*args, limit),
        )
        return [self._row(r) for r in rows]

    def all(self) -> list[Segment]:
        return [self._row(r) for r in self._run(f"SELECT {self._COLUMNS} FROM segments")]  # noqa: S608

    def total_bytes(self, camera: str | None = None) -> int:
        where, args = ("WHERE camera = ?", (camera,)) if camera is not None else ("", ())
        (row,) = self._run(f"SELECT COALESCE(SUM(bytes), 0) FROM segments {where}", args)  # noqa: S608
        return int(row[0])

    # -- event marks -------------------------------------------------------------------------
    def mark_event(self, mark: EventMark) -> None:
        """Record an event (again at its end: the row is replaced, its start kept)."""
        self._run(
            "INSERT INTO marks (camera, event_id, start, end) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (camera, event_id) DO UPDATE SET end = excluded.end",
            (mark.camera, mark.event_id, mark.start, mark.end),
        )

    def marks_between(self, camera: str, start: float, end: float) -> list[EventMark]:
        """Events of ``camera`` overlapping [start, end) (a running one reaches to now),
        oldest first."""
        rows = self._run(
            "SELECT camera, event_id, start, end FROM marks WHERE camera = ? AND start < ?"
            " AND (end IS NULL OR end >= ?) ORDER BY start",
            (camera, end, start),
        )
        return [
            EventMark(str(c), str(e), float(s), None if t is None else float(t))
            for c, e, s, t in rows
        ]

    def forget_marks_before(self, before: float) -> int:
        """Drop the marks of events that ended before ``before``; how many."""
        with self._lock:
            try:
                cursor = self._db.execute("DELETE FROM marks WHERE end < ?", (before,))
            except sqlite3.Error as exc:
                raise StorageError(f"segment index {self.path}: {exc}") from exc
            return cursor.rowcount

    def replace_all(self, segments: list[Segment]) -> None:
        """Make the index exactly ``segments`` (used by ``rebuild``)."""
        self._run("DELETE FROM segments")
        for segment in segments:
            self.add(segment)
        self._run("PRAGMA wal_checkpoint(TRUNCATE)")


__all__ = ["EventMark", "Segment", "SegmentIndex"]
