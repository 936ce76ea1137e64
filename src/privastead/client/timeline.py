"""A camera's timeline for a stretch of time: what the hub recorded and the events this device
received, for `privastead-app recordings` and the web UI's day view.

The recorded spans come from the hub (``RecordingsRequest`` in the control group: the client
keeps no copy of continuous recording); the events from this device's own event log, so a day
without continuous recording still shows its events, and a hub that cannot be reached still
leaves the events (``error`` says why the spans are missing).
"""

from __future__ import annotations

import datetime
from typing import Any

from privastead.client.app import Client
from privastead.client.playback_request import ANSWER_TIMEOUT, list_recordings
from privastead.errors import CameraUnavailableError, RelayError

MAX_EVENTS = 2000


def day_range(day: datetime.date) -> tuple[float, float]:
    """Local midnight to the next local midnight of ``day``, as Unix seconds."""
    start = datetime.datetime.combine(day, datetime.time()).astimezone()
    end = datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time()).astimezone()
    return start.timestamp(), end.timestamp()


async def timeline(
    client: Client, camera: str, start: float, end: float, *, timeout: float = ANSWER_TIMEOUT
) -> dict[str, Any]:
    """``{"camera", "start", "end", "spans": [[a, b]], "truncated", "events": [...],
    "error"}`` for [start, end)."""
    client.group_state(camera, "control")  # ConfigError naming the camera if not paired
    spans: list[list[float]] = []
    truncated, error = False, ""
    try:
        answer = await list_recordings(client, camera, start, end, timeout=timeout)
        spans = [[a, b] for a, b in answer.spans]
        truncated = answer.truncated
    except (CameraUnavailableError, RelayError) as e:
        error = str(e)
    records = client.events.events(camera=camera, since=start, until=end, limit=MAX_EVENTS)
    events = [
        {
            "event_id": r.event_id,
            "at": r.at if r.at is not None else r.received_at,
            "score": r.score,
            "clip_state": r.clip_state.value,
        }
        for r in sorted(records, key=lambda r: r.at or r.received_at)
    ]
    return {
        "camera": camera,
        "start": start,
        "end": end,
        "spans": spans,
        "truncated": truncated,
        "events": events,
        "error": error,
    }


__all__ = ["day_range", "timeline"]
