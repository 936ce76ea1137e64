"""The sink records a clip the hub cut short (ClipEnd) as incomplete, with its playable file."""

from __future__ import annotations

from pathlib import Path

from privastead.client.clipstore import ClipStore
from privastead.client.eventlog import ClipState, EventLog
from privastead.client.sink import LocalSink
from privastead.clock import FakeClock
from privastead.protocol.messages import ClipEnd, ClipFragment

CLIP = "c" * 32
EVENT = "e" * 32


def test_a_clip_ended_by_the_hub_is_incomplete_and_kept(tmp_path: Path) -> None:
    store = ClipStore(tmp_path / "clips")
    with EventLog(tmp_path / "events.db", clock=FakeClock()) as events:
        sink = LocalSink(store, events, tmp_path / "thumbs")
        sink.deliver("door", ClipFragment(CLIP, EVENT, 0, False, True, 1, b"init"))
        record = events.get(EVENT)
        assert record is not None and record.clip_state is ClipState.PARTIAL
        sink.deliver("door", ClipEnd(CLIP, EVENT, 2, "hub_restarted", 2))
        assert events.get(EVENT).clip_state is ClipState.PARTIAL  # type: ignore[union-attr]
        sink.deliver("door", ClipFragment(CLIP, EVENT, 1, False, False, 3, b"moof"))
        record = events.get(EVENT)
        assert record is not None and record.clip_state is ClipState.INCOMPLETE
        assert record.clip_path is not None and record.clip_path.read_bytes() == b"initmoof"
        # A complete clip of another event stays "complete".
        other = "d" * 32
        sink.deliver("door", ClipFragment(other, "f" * 32, 0, True, True, 4, b"init"))
        assert events.get("f" * 32).clip_state is ClipState.COMPLETE  # type: ignore[union-attr]
