"""This device's clip retention (``client.toml`` ``[clips]``): the oldest complete clips go by
age and size, the event log says the clip expired, the event stays; a bad file names its line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from privastead.client.clip_retention import ClipKeeping, load_config, prune, usage
from privastead.client.eventlog import ClipState, EventLog
from privastead.clock import FakeClock
from privastead.errors import ConfigError
from privastead.media.retention import DAY

NOW = 1_900_000_000.0


def _clip(clips: Path, log: EventLog, n: int, age_days: float, size: int) -> str:
    clip_id, event_id = f"{n:032x}", f"{n + 1000:032x}"
    path = clips / f"{clip_id}.mp4"
    path.write_bytes(b"\0" * size)
    (clips / f"{clip_id}.json").write_text("{}")
    when = NOW - age_days * DAY
    os.utime(path, (when, when))
    log.record_clip(
        camera="door", event_id=event_id, clip_id=clip_id, state=ClipState.COMPLETE, path=path
    )
    return clip_id


def test_old_and_oversized_clips_go_oldest_first_and_their_events_stay(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    log = EventLog(tmp_path / "events.db", clock=FakeClock(NOW))
    ids = [_clip(clips, log, n, age, 1000) for n, age in enumerate([40, 20, 10, 5, 1])]
    partial = tmp_path / "partial.part"  # not a complete clip: never listed
    partial.write_bytes(b"\0" * 5000)
    assert usage(clips).clips == 5 and usage(clips).bytes == 5000
    assert prune(clips, log, ClipKeeping(keep_days=30, keep_gb=2.5e-6), NOW) == 3
    assert sorted(p.stem for p in clips.glob("*.mp4")) == ids[3:]
    assert not (clips / f"{ids[0]}.json").exists()
    for clip_id in ids[:3]:
        record = log.find(clip_id)
        assert record is not None and record.clip_state is ClipState.EXPIRED
        assert record.clip_path is None
    record = log.find(ids[4])
    assert record is not None and record.clip_state is ClipState.COMPLETE
    assert partial.exists()
    assert prune(clips, log, ClipKeeping(keep_days=0), NOW) == 0  # 0: no age limit


def test_client_toml_is_optional_strict_and_named_in_errors(tmp_path: Path) -> None:
    assert load_config(tmp_path).clips == ClipKeeping()
    (tmp_path / "client.toml").write_text("[clips]\nkeep_days = 7\nkeep_gb = 1.5\n")
    assert load_config(tmp_path).clips == ClipKeeping(keep_days=7, keep_gb=1.5)
    (tmp_path / "client.toml").write_text("[clips]\nkeep_days = 7\nkeep_gbs = 1\n")
    with pytest.raises(ConfigError, match=r"client.toml:3: clips.keep_gbs"):
        load_config(tmp_path)
    (tmp_path / "client.toml").write_text("[clips]\nkeep_days = -1\n")
    with pytest.raises(ConfigError, match="keep_days must be >= 0"):
        load_config(tmp_path)
