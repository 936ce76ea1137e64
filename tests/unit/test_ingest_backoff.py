"""Reconnect backoff: exponential, capped, jittered within bounds, reset after success."""

from __future__ import annotations

import random

from privastead.media.ingest import Backoff, IngestSettings


def test_backoff_doubles_caps_and_resets() -> None:
    settings = IngestSettings(backoff_initial=0.5, backoff_max=4.0, backoff_jitter=0.0)
    backoff = Backoff(settings, random.Random(1))
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_jitter_stays_within_its_band_and_varies() -> None:
    settings = IngestSettings(backoff_initial=1.0, backoff_max=1.0, backoff_jitter=0.25)
    backoff = Backoff(settings, random.Random(7))
    delays = [backoff.next_delay() for _ in range(200)]
    assert all(0.75 <= d <= 1.25 for d in delays)
    assert max(delays) - min(delays) > 0.3  # cameras do not reconnect in lockstep
