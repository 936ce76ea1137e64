"""Where a client's decrypted messages go: thumbnails and clips on disk, events in the log."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from privastead.atomic_file import write_atomic
from privastead.client.clipstore import ClipStore, FragmentStatus
from privastead.client.eventlog import ClipState, EventLog
from privastead.protocol.codec import Message
from privastead.protocol.messages import ClipEnd, ClipFragment, Heartbeat, Notification


class LocalSink:
    """Stores notifications and clip fragments; passes heartbeats to ``on_heartbeat``."""

    def __init__(
        self,
        clips: ClipStore,
        events: EventLog,
        thumbnails: Path,
        on_heartbeat: Callable[[str, Heartbeat], None] | None = None,
    ) -> None:
        self._clips = clips
        self._events = events
        self._thumbnails = thumbnails
        self._on_heartbeat = on_heartbeat
        thumbnails.mkdir(mode=0o700, parents=True, exist_ok=True)

    def deliver(self, camera: str, message: Message) -> None:
        if isinstance(message, Notification):
            path = None
            if message.thumbnail:
                path = self._thumbnails / f"{message.event_id}.jpg"
                write_atomic(path, message.thumbnail)
            self._events.record_notification(message, path)
        elif isinstance(message, ClipFragment | ClipEnd):
            progress = (
                self._clips.add(message)
                if isinstance(message, ClipFragment)
                else self._clips.end(message)
            )
            done = progress.path is not None and progress.status in (
                FragmentStatus.COMPLETE,
                FragmentStatus.DUPLICATE,
            )
            # A clip the hub cut short (it restarted mid-recording) is whole as far as it
            # goes, and playable, but not the complete event: recorded as incomplete.
            state = ClipState.COMPLETE if progress.ended is None else ClipState.INCOMPLETE
            self._events.record_clip(
                camera=camera,
                event_id=message.event_id,
                clip_id=message.clip_id,
                state=state if done else ClipState.PARTIAL,
                path=progress.path if done else None,
            )
        elif isinstance(message, Heartbeat) and self._on_heartbeat is not None:
            self._on_heartbeat(camera, message)


__all__ = ["LocalSink"]
