"""What the livestream e2e tests share: a stream opened once the hub's camera is connected,
and the decoded frames of what a viewer wrote."""

from __future__ import annotations

import asyncio
import io
import time

import av

from privastead.client.app import Client
from privastead.client.live_request import LiveStatus, LiveStream, open_live
from privastead.errors import CameraUnavailableError


async def open_when_ready(
    syncer: Client, camera: str = "door", *, seconds: float | None = None
) -> tuple[LiveStream, bytes, LiveStatus]:
    """An open livestream of ``camera`` (its first piece read) once the hub has connected to
    the camera; ``seconds``: its time limit (``open_live``)."""
    deadline = time.monotonic() + 90
    while True:
        status = LiveStatus()
        stream = open_live(syncer, camera, seconds=seconds, status=status)
        try:
            first = await stream.__anext__()
            return stream, first, status
        except CameraUnavailableError:
            await stream.aclose()
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1.0)


def decoded_frames(data: bytes) -> list[av.VideoFrame]:
    """Every video frame of an fMP4 stream (raises if it does not decode)."""
    with av.open(io.BytesIO(data)) as clip:
        return list(clip.decode(clip.streams.video[0]))
