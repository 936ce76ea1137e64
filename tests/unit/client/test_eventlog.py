from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from privastead.client.eventlog import ClipState, EventLog
from privastead.clock import FakeClock
from privastead.errors import StorageError
from privastead.protocol.messages import Notification


def note(n: int, camera: str = "front", at: float = 1_700_000_000.0) -> Notification:
    return Notification(camera, f"{n:032x}", at + n, 0.1 * n, ((0.1, 0.1, 0.2, 0.2),), n)


def test_notifications_are_listed_newest_first_per_camera(tmp_path: Path, clock: FakeClock) -> None:
    with EventLog(tmp_path / "events.db", clock=clock) as log:
        for n in range(1, 6):
            log.record_notification(note(n, "front" if n % 2 else "back"), tmp_path / f"{n}.jpg")
        events = log.events()
        assert [int(e.event_id, 16) for e in events] == [5, 4, 3, 2, 1]
        assert [int(e.event_id, 16) for e in log.events(camera="back")] == [4, 2]
        assert [
            int(e.event_id, 16) for e in log.events(since=1_700_000_002, until=1_700_000_004)
        ] == [3, 2]
        assert len(log.events(limit=2)) == 2
        first = log.get(f"{1:032x}")
        assert first is not None
        assert first.camera == "front" and first.score == pytest.approx(0.1)
        assert first.boxes == ((0.1, 0.1, 0.2, 0.2),) and first.thumbnail_path == tmp_path / "1.jpg"
        assert first.clip_state is ClipState.NONE and first.clip_id is None
        assert log.cameras() == ["back", "front"]


def test_clip_before_notification_and_after(tmp_path: Path, clock: FakeClock) -> None:
    with EventLog(tmp_path / "events.db", clock=clock) as log:
        event = f"{7:032x}"
        clip = "c" * 32
        log.record_clip(
            camera="front", event_id=event, clip_id=clip, state=ClipState.PARTIAL, path=None
        )
        early = log.get(event)
        assert early is not None and early.at is None and early.clip_state is ClipState.PARTIAL
        log.record_notification(note(7), None)
        log.record_clip(
            camera="front",
            event_id=event,
            clip_id=clip,
            state=ClipState.COMPLETE,
            path=tmp_path / "c.mp4",
        )
        record = log.find(clip)
        assert record is not None and record == log.find(event)
        assert record.at == 1_700_000_007 and record.clip_state is ClipState.COMPLETE
        assert record.clip_path == tmp_path / "c.mp4"
        log.record_notification(note(7), None)  # a duplicate keeps the clip and thumbnail
        again = log.get(event)
        assert again is not None and again.clip_state is ClipState.COMPLETE


def test_an_event_cannot_move_to_another_camera(tmp_path: Path, clock: FakeClock) -> None:
    with EventLog(tmp_path / "events.db", clock=clock) as log:
        log.record_notification(note(1, "front"), None)
        with pytest.raises(StorageError, match="another camera"):
            log.record_notification(note(1, "back"), None)


def test_persists_in_wal_mode_with_private_permissions(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "events.db"
    with EventLog(path, clock=clock) as log:
        log.record_notification(note(1), None)
    assert path.stat().st_mode & 0o777 == 0o600
    with EventLog(path, clock=clock) as log:
        assert len(log.events()) == 1
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute("PRAGMA user_version=9")
    db.close()
    with pytest.raises(StorageError, match="schema 9"):
        EventLog(path, clock=clock)


def test_garbage_file_is_a_storage_error(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "events.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError):
        EventLog(path, clock=clock)
