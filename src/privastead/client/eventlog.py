"""The client's index of events per camera, in SQLite (WAL), for ``privastead-app events``.

One row per event: camera, time, score, boxes, thumbnail file, and the state and path of its
clip. A clip's fragments may arrive before its notification (the relay reorders, a resend), so
both writers upsert: whichever comes first creates the row, the other fills in its columns.
Only decrypted metadata that the owner already sees lives here; the file is mode 0600.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privastead import compat
from privastead.clock import Clock
from privastead.errors import StorageError
from privastead.protocol.fields import check_hex_id, check_name
from privastead.protocol.messages import Box, Notification

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY,
    camera TEXT NOT NULL,
    at REAL,
    score REAL,
    boxes TEXT NOT NULL DEFAULT '[]',
    thumbnail_path TEXT,
    clip_id TEXT,
    clip_path TEXT,
    clip_state TEXT NOT NULL DEFAULT 'none',
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_camera_time ON events (camera, at);
CREATE INDEX IF NOT EXISTS events_by_clip ON events (clip_id);
"""
_COLUMNS = (
    "event_id, camera, at, score, boxes, thumbnail_path, clip_id, clip_path, clip_state, "
    "received_at"
)


class ClipState(compat.StrEnum):
    NONE = "none"  # no fragment yet
    PARTIAL = "partial"  # fragments are arriving
    COMPLETE = "complete"  # the whole clip is on disk
    # The prefix is kept and playable: the hub dropped the rest (quota), or stopped recording
    # it early because it restarted (``ClipEnd``; the clip store's record says why).
    INCOMPLETE = "incomplete"
    EXPIRED = "expired"  # deleted by this device's clip retention (``client.clip_retention``)


@dataclass(frozen=True)
class EventRecord:
    event_id: str
    camera: str
    at: float | None  # None until the notification arrives
    score: float | None
    boxes: tuple[Box, ...]
    thumbnail_path: Path | None
    clip_id: str | None
    clip_path: Path | None
    clip_state: ClipState
    received_at: float


def _record(row: tuple[Any, ...]) -> EventRecord:
    (event_id, camera, at, score, boxes, thumb, clip_id, clip_path, state, received) = row
    return EventRecord(
        event_id=str(event_id),
        camera=str(camera),
        at=None if at is None else float(at),
        score=None if score is None else float(score),
        boxes=tuple(tuple(b) for b in json.loads(boxes)),
        thumbnail_path=None if thumb is None else Path(thumb),
        clip_id=None if clip_id is None else str(clip_id),
        clip_path=None if clip_path is None else Path(clip_path),
        clip_state=ClipState(state),
        received_at=float(received),
    )


class EventLog:
    def __init__(self, path: Path, *, clock: Clock) -> None:
        self._clock = clock
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.touch(mode=0o600, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise StorageError(f"cannot open the event log {path}: {e}") from e
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise StorageError(f"{path} has event log schema {version}; this build reads 1")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except (StorageError, sqlite3.Error) as e:
            self._db.close()
            if isinstance(e, StorageError):
                raise
            raise StorageError(f"cannot open the event log {path}: {e}") from e

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record_notification(self, note: Notification, thumbnail_path: Path | None) -> None:
        """Store what a notification says (idempotent: a second copy changes nothing)."""
        boxes = json.dumps([list(b) for b in note.boxes])
        thumb = None if thumbnail_path is None else str(thumbnail_path)
        self._write(
            "INSERT INTO events (event_id, camera, at, score, boxes, thumbnail_path, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(event_id) DO UPDATE SET"
            " at = excluded.at, score = excluded.score, boxes = excluded.boxes,"
            " thumbnail_path = COALESCE(excluded.thumbnail_path, thumbnail_path)"
            " WHERE camera = excluded.camera",
            (note.event_id, note.camera, note.at, note.score, boxes, thumb, self._clock.time()),
        )

    def record_clip(
        self, *, camera: str, event_id: str, clip_id: str, state: ClipState, path: Path | None
    ) -> None:
        """Store the progress of an event's clip."""
        check_name(camera, "camera")
        check_hex_id(event_id, "event_id")
        check_hex_id(clip_id, "clip_id")
        self._write(
            "INSERT INTO events (event_id, camera, clip_id, clip_path, clip_state, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(event_id) DO UPDATE SET"
            " clip_id = excluded.clip_id, clip_path = excluded.clip_path,"
            " clip_state = excluded.clip_state WHERE camera = excluded.camera",
            (
                event_id,
                camera,
                clip_id,
                None if path is None else str(path),
                state.value,
                self._clock.time(),
            ),
        )

    def get(self, event_id: str) -> EventRecord | None:
        sql = f"SELECT {_COLUMNS} FROM events WHERE event_id = ?"  # noqa: S608 - constants only
        rows = self._read(sql, (event_id,))
        return _record(rows[0]) if rows else None

    def find(self, event_or_clip_id: str) -> EventRecord | None:
        """The event with this event id or clip id (what `privastead-app clip ID` accepts)."""
        rows = self._read(
            f"SELECT {_COLUMNS} FROM events WHERE event_id = ? OR clip_id = ? LIMIT 1",  # noqa: S608 - constants only
            (event_or_clip_id, event_or_clip_id),
        )
        return _record(rows[0]) if rows else None

    def events(
        self,
        *,
        camera: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[EventRecord]:
        """Events newest first (by event time, or arrival time until the notification came)."""
        where: list[str] = []
        args: list[object] = []
        when = "COALESCE(at, received_at)"
        if camera is not None:
            where.append("camera = ?")
            args.append(camera)
        if since is not None:
            where.append(f"{when} >= ?")
            args.append(since)
        if until is not None:
            where.append(f"{when} < ?")
            args.append(until)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._read(
            f"SELECT {_COLUMNS} FROM events {clause} ORDER BY {when} DESC, event_id LIMIT ?",  # noqa: S608 - constants only
            (*args, max(0, limit)),
        )
        return [_record(r) for r in rows]

    def cameras(self) -> list[str]:
        return [str(r[0]) for r in self._read("SELECT DISTINCT camera FROM events ORDER BY 1", ())]

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        try:
            with self._db:
                cursor = self._db.execute(sql, args)
        except sqlite3.Error as e:
            raise StorageError(f"event log write failed: {e}") from e
        if cursor.rowcount == 0:
            raise StorageError(f"event {args[0]} is already recorded for another camera")

    def _read(self, sql: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
        try:
            return list(self._db.execute(sql, args).fetchall())
        except sqlite3.Error as e:
            raise StorageError(f"event log read failed: {e}") from e


__all__ = ["ClipState", "EventLog", "EventRecord"]
