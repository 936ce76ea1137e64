"""Runs every configured camera concurrently in one asyncio (uvloop) process.

Each camera is supervised on its own: if its pipeline raises (a bug, a full disk), it is logged
and restarted after a pause, and the other cameras never notice. Status lines (one per
camera) go to stderr every ``status_interval`` seconds. ``stop()`` (Ctrl-C, SIGTERM) finishes
the clips being written so they stay playable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from typing import TextIO

from privastead.hub.capture.camera import Camera, ClipSink
from privastead.hub.config import HubConfig
from privastead.hub.recording.recordings import Recordings
from privastead.media.ingest import IngestSettings
from privastead.media.recorder import FragmentCallback

log = logging.getLogger(__name__)

RESTART_DELAY = 5.0


class HubRunner:
    def __init__(
        self,
        config: HubConfig,
        *,
        ingest_settings: IngestSettings | None = None,
        on_fragment: FragmentCallback | None = None,
        status_stream: TextIO | None = None,
        sink: ClipSink | None = None,
        cameras: dict[str, Camera] | None = None,
        recordings: Recordings | None = None,
    ) -> None:
        """``sink`` (``delivery.delivery.Delivery``) gets every camera's events and clips; without
        one, ``on_fragment`` sees the fragments. ``cameras``: the running cameras by name,
        filled here and shared with whoever reads them (livestreams, health). ``recordings``
        gives each camera its continuous recorder (24/7 segments, event marks)."""
        self.recordings = recordings
        self.config = config
        self.sink = sink
        self.ingest_settings = ingest_settings
        self.on_fragment = on_fragment
        self.status_stream = status_stream or sys.stderr
        self.cameras: dict[str, Camera] = cameras if cameras is not None else {}
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()
        for camera in self.cameras.values():
            camera.stop()

    async def run(self) -> None:
        clips = self.config.hub.clips
        await asyncio.to_thread(clips.mkdir, mode=0o700, parents=True, exist_ok=True)
        tasks = [
            asyncio.create_task(self._supervise(cfg.name), name=f"camera-{cfg.name}")
            for cfg in self.config.cameras
        ]
        status = asyncio.create_task(self._status())
        try:
            await self._stop.wait()
        finally:
            self.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            status.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await status
            self.print_status()

    async def _supervise(self, name: str) -> None:
        cfg = next(c for c in self.config.cameras if c.name == name)
        while not self._stop.is_set():
            camera = Camera(
                cfg,
                self.config.hub.clips,
                ingest_settings=self.ingest_settings,
                sink=self.sink,
                on_fragment=self.on_fragment,
                continuous=self.recordings.recorder(cfg) if self.recordings else None,
            )
            self.cameras[name] = camera
            try:
                await camera.run()
                return
            except Exception:
                log.exception("camera %s failed; restarting in %.0f s", name, RESTART_DELAY)
            with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), RESTART_DELAY)

    def print_status(self) -> None:
        for camera in list(self.cameras.values()):
            print(camera.status_line(), file=self.status_stream, flush=True)

    async def _status(self) -> None:
        interval = self.config.hub.status_interval
        if interval <= 0:
            return
        while True:
            await asyncio.sleep(interval)
            self.print_status()


__all__ = ["HubRunner"]
