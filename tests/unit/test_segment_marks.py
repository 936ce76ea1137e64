"""Event marks on the continuous-recording timeline (``SegmentIndex`` table ``marks``)."""

from __future__ import annotations

from pathlib import Path

from privastead.media.segment_index import EventMark, Segment, SegmentIndex


def test_an_event_is_marked_at_start_and_closed_at_its_end(tmp_path: Path) -> None:
    index = SegmentIndex(tmp_path / "index.sqlite")
    index.mark_event(EventMark("porch", "e1", 100.0, None))
    assert index.marks_between("porch", 0, 1000) == [EventMark("porch", "e1", 100.0, None)]
    index.mark_event(EventMark("porch", "e1", 999.0, 130.0))  # the end keeps the start
    assert index.marks_between("porch", 0, 1000) == [EventMark("porch", "e1", 100.0, 130.0)]
    assert index.marks_between("porch", 131, 1000) == []
    assert index.marks_between("garden", 0, 1000) == []


def test_a_running_event_overlaps_any_later_range(tmp_path: Path) -> None:
    index = SegmentIndex(tmp_path / "index.sqlite")
    index.mark_event(EventMark("porch", "e1", 100.0, None))
    index.mark_event(EventMark("porch", "e0", 10.0, 20.0))
    found = index.marks_between("porch", 500, 600)
    assert [m.event_id for m in found] == ["e1"]
    assert [m.event_id for m in index.marks_between("porch", 0, 600)] == ["e0", "e1"]


def test_old_marks_are_forgotten_and_rebuild_keeps_the_rest(tmp_path: Path) -> None:
    index = SegmentIndex(tmp_path / "index.sqlite")
    index.mark_event(EventMark("porch", "old", 10.0, 20.0))
    index.mark_event(EventMark("porch", "new", 500.0, 520.0))
    index.mark_event(EventMark("porch", "running", 30.0, None))
    assert index.forget_marks_before(100.0) == 1
    segment = Segment("porch", 0.0, 60.0, "porch/1970-01-01/0.mp4", 10, 1, ((0.0, 0),))
    index.replace_all([segment])
    assert [m.event_id for m in index.marks_between("porch", 0, 1000)] == ["running", "new"]
    index.close()
    reopened = SegmentIndex(tmp_path / "index.sqlite")
    assert len(reopened.marks_between("porch", 0, 1000)) == 2
