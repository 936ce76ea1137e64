"""The hub's metrics and health endpoint (``[metrics]``, off by default), for your own monitoring.

- ``GET /metrics``: Prometheus text format. Per camera (label ``camera``): connected, time of
  the newest frame, reconnects, decode errors, fps, bitrate, events, clips, dropped packets;
  the outbox (messages and bytes waiting for the relay, dropped clips); what delivery sent;
  the jobs each camera's group workers ran; the event loop's lag (p50, p99, max of the last
  60 s, ``admin.loop_lag``); the disk (free and total bytes, its state), continuous recording
  per camera (recording or not, segments and bytes written, packets dropped) and what
  retention deleted (``recording.recordings``); livestream sessions (running, publishing or
  paused; started, ended and resumed since the hub started).
- ``GET /health``: JSON ``{"status": "ok" | "degraded", "cameras": {...}, "disk": ...}``;
  200 when every camera is connected and the disk is not full, 503 otherwise (what a load
  balancer or a script checks).
- Anything else: a JSON 404/405.

Everything comes from ``capture.health.CameraHealth`` (the same source as the heartbeat) and
the delivery's counters; the outbox status is read in a thread (it takes the outbox's lock,
which a worker may hold during a durable write). No authentication: ``[metrics] listen``
accepts loopback and private addresses only. Labels carry camera names, never device names,
mailboxes or keys.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from privastead import __version__
from privastead.errors import ConfigError
from privastead.hub.admin.loop_lag import LoopLag
from privastead.hub.capture.health import CameraHealth, CameraReport
from privastead.hub.delivery.delivery import Delivery
from privastead.hub.recording.recordings import Recordings
from privastead.relay.metrics import Metrics

log = logging.getLogger(__name__)

_CAMERA_METRICS: tuple[tuple[str, str, str], ...] = (
    ("privastead_hub_camera_connected", "gauge", "1 while frames arrive (none for 10 s: 0)"),
    (
        "privastead_hub_camera_last_frame_timestamp_seconds",
        "gauge",
        "Unix time of the newest packet from the camera (absent before the first)",
    ),
    ("privastead_hub_camera_reconnects_total", "counter", "reconnections to the camera"),
    ("privastead_hub_camera_decode_errors_total", "counter", "analysis and recording errors"),
    ("privastead_hub_camera_fps", "gauge", "video frames per second received"),
    ("privastead_hub_camera_bitrate_bits_per_second", "gauge", "bitrate received"),
    ("privastead_hub_camera_events_total", "counter", "motion events started"),
    ("privastead_hub_camera_clips_total", "counter", "clips recorded"),
    (
        "privastead_hub_camera_dropped_packets_total",
        "counter",
        "detection packets dropped because the analysis fell behind",
    ),
)


_RECORDING_METRICS: tuple[tuple[str, str, str], ...] = (
    ("privastead_hub_continuous_recording", "gauge", "1 while recording (0: paused, stopped)"),
    ("privastead_hub_continuous_segments_total", "counter", "segments finished"),
    ("privastead_hub_continuous_bytes_total", "counter", "bytes of finished segments"),
    (
        "privastead_hub_continuous_dropped_packets_total",
        "counter",
        "packets dropped because the segment writer fell behind (a stalled disk)",
    ),
)


def _camera_values(report: CameraReport) -> dict[str, float | None]:
    return {
        "privastead_hub_camera_connected": float(report.connected),
        "privastead_hub_camera_last_frame_timestamp_seconds": report.last_frame or None,
        "privastead_hub_camera_reconnects_total": report.reconnects,
        "privastead_hub_camera_decode_errors_total": report.decode_errors,
        "privastead_hub_camera_fps": report.fps,
        "privastead_hub_camera_bitrate_bits_per_second": report.bitrate,
        "privastead_hub_camera_events_total": report.events,
        "privastead_hub_camera_clips_total": report.clips,
        "privastead_hub_camera_dropped_packets_total": report.dropped,
    }


@dataclass
class HubMetrics:
    """What one scrape reads: the cameras' health and, with a relay, the delivery."""

    health: CameraHealth
    delivery: Delivery | None
    lag: LoopLag
    recordings: Recordings | None = None

    async def render(self) -> str:
        m = Metrics()
        m.describe("privastead_hub_info", "gauge", "always 1; the version in a label")
        m.set("privastead_hub_info", 1, version=__version__)
        lag = "privastead_hub_event_loop_lag_seconds"
        m.describe(lag, "summary", "how late the event loop ran a 10 ms timer (last 60 s)")
        for q, lagged in zip((0.5, 0.99, 1.0), self.lag.quantiles(0.5, 0.99, 1.0), strict=True):
            if not math.isnan(lagged):
                m.set(lag, lagged, quantile=str(q))
        m.describe(f"{lag}_count", "counter", "timer wake-ups measured since the hub started")
        m.set(f"{lag}_count", float(self.lag.count))
        for name, kind, text in _CAMERA_METRICS:
            m.describe(name, kind, text)
        for report in self.health.reports():
            for name, value in _camera_values(report).items():
                if value is not None:
                    m.set(name, float(value), camera=report.camera)
        if self.delivery is not None:
            await self._delivery(m, self.delivery)
        if self.recordings is not None:
            self._recordings(m, self.recordings)
        return m.render()

    @staticmethod
    def _recordings(m: Metrics, recordings: Recordings) -> None:
        status = recordings.watcher.status
        if status is not None:
            m.describe("privastead_hub_disk_free_bytes", "gauge", "free bytes on the data disk")
            m.set("privastead_hub_disk_free_bytes", float(status.free))
            m.describe("privastead_hub_disk_total_bytes", "gauge", "size of the data disk")
            m.set("privastead_hub_disk_total_bytes", float(status.total))
            m.describe(
                "privastead_hub_disk_state", "gauge", "1 for the disk's state: ok, low, full"
            )
            for state in ("ok", "low", "full"):
                m.set("privastead_hub_disk_state", float(status.state == state), state=state)
        for name, kind, text in _RECORDING_METRICS:
            m.describe(name, kind, text)
        for camera, recorder in sorted(recordings.recorders.items()):
            if not recorder.record:
                continue
            values = {
                "privastead_hub_continuous_recording": float(recorder.state == "recording"),
                "privastead_hub_continuous_segments_total": float(recorder.segments),
                "privastead_hub_continuous_bytes_total": float(recorder.bytes),
                "privastead_hub_continuous_dropped_packets_total": float(recorder.dropped),
            }
            for name, value in values.items():
                m.set(name, value, camera=camera)
        m.describe("privastead_hub_retention_deleted_files_total", "counter", "files deleted")
        m.set("privastead_hub_retention_deleted_files_total", float(recordings.deleted))
        m.describe("privastead_hub_retention_freed_bytes_total", "counter", "bytes freed")
        m.set("privastead_hub_retention_freed_bytes_total", float(recordings.freed))

    @staticmethod
    async def _delivery(m: Metrics, delivery: Delivery) -> None:
        status = await asyncio.to_thread(delivery.outbox.status)
        for key, text in (
            ("pending_messages", "messages waiting for the relay"),
            ("pending_bytes", "bytes waiting for the relay"),
            ("quota_bytes", "the outbox quota"),
            ("dropped_clips", "clips the quota dropped since the hub started"),
            ("dropped_bytes", "bytes the quota dropped since the hub started"),
        ):
            name = f"privastead_hub_outbox_{key}"
            m.describe(name, "counter" if key.startswith("dropped") else "gauge", text)
            m.set(name, float(status.as_dict().get(key, 0)))
        m.describe("privastead_hub_sent_notifications_total", "counter", "event notifications")
        m.set("privastead_hub_sent_notifications_total", float(delivery.sent_notifications))
        m.describe("privastead_hub_sent_fragments_total", "counter", "clip fragments encrypted")
        m.set("privastead_hub_sent_fragments_total", float(delivery.sent_fragments))
        clips = delivery.clips
        m.describe(
            "privastead_hub_clip_fragments_spilled_total",
            "counter",
            "clip fragments queued without their bytes (over the per-camera queue budget; "
            "read back from the recording)",
        )
        m.set("privastead_hub_clip_fragments_spilled_total", float(clips.spilled_fragments))
        m.describe(
            "privastead_hub_clip_fragments_unreadable_total",
            "counter",
            "spilled clip fragments missing from the recording (their clip was cut there)",
        )
        m.set("privastead_hub_clip_fragments_unreadable_total", float(clips.unreadable_fragments))
        for name, kind, text, value in (
            (
                "privastead_hub_delivery_batches_total",
                "counter",
                "batches the events workers encrypted (one durable MLS state write each)",
                clips.batch_stats.batches,
            ),
            (
                "privastead_hub_delivery_batched_messages_total",
                "counter",
                "notifications and clip fragments sent in those batches",
                clips.batch_stats.messages,
            ),
            (
                "privastead_hub_delivery_calls_failed_total",
                "counter",
                "queued delivery calls or batches that raised (logged)",
                clips.failed_calls,
            ),
            (
                "privastead_hub_live_sessions_started_total",
                "counter",
                "livestream sessions started",
                delivery.live.started,
            ),
            (
                "privastead_hub_live_sessions_ended_total",
                "counter",
                "livestream sessions ended (their camera session and sockets freed)",
                delivery.live.finished,
            ),
            (
                "privastead_hub_live_resumes_total",
                "counter",
                "times a livestream went on after a lost socket or its viewer's return",
                delivery.live.resumed,
            ),
        ):
            m.describe(name, kind, text)
            m.set(name, float(value))
        m.describe(
            "privastead_hub_live_sessions",
            "gauge",
            "livestream sessions running: publishing, or paused (waiting for a viewer)",
        )
        running = list(delivery.live.running.values())
        for state, publishing in (("publishing", True), ("paused", False)):
            count = sum(1 for r in running if r.publishing is publishing)
            m.set("privastead_hub_live_sessions", float(count), state=state)
        m.describe("privastead_hub_group_jobs_total", "counter", "jobs run by a group's worker")
        m.describe("privastead_hub_group_jobs_failed_total", "counter", "jobs that raised")
        for group in delivery.groups:
            labels = {"camera": group.camera, "group": group.group}
            m.set("privastead_hub_group_jobs_total", float(group.worker.jobs), **labels)
            m.set("privastead_hub_group_jobs_failed_total", float(group.worker.failed), **labels)

    def health_report(self) -> tuple[int, dict[str, Any]]:
        reports = self.health.reports()
        ok = all(r.connected for r in reports)
        body: dict[str, Any] = {"cameras": {r.camera: r.facts() for r in reports}}
        status = self.recordings.watcher.status if self.recordings is not None else None
        if status is not None:
            body["disk"] = {"state": status.state, "free": status.free, "detail": status.detail}
            ok = ok and status.state != "full"
        body = {"status": "ok" if ok else "degraded", **body}
        return (200 if ok else 503), body


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class MetricsServer:
    def __init__(self, host: str, port: int, metrics: HubMetrics) -> None:
        self.host = host
        self.port = port
        self.metrics = metrics
        self._runner: web.AppRunner | None = None

    def _app(self) -> web.Application:
        @web.middleware
        async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
            try:
                response: web.StreamResponse = await handler(request)
                return response
            except web.HTTPException as e:
                return _error(e.status, e.reason or "error")
            except Exception:  # a scrape must never see a 500 page or stop the hub
                log.exception("metrics endpoint failed")
                return _error(503, "the hub could not read its state; see its log")

        app = web.Application(middlewares=[errors])
        app.router.add_get("/metrics", self._metrics, allow_head=False)
        app.router.add_get("/health", self._health, allow_head=False)
        return app

    async def _metrics(self, _request: web.Request) -> web.Response:
        text = await self.metrics.render()
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    async def _health(self, _request: web.Request) -> web.Response:
        status, body = self.metrics.health_report()
        return web.json_response(body, status=status)

    async def start(self) -> None:
        runner = web.AppRunner(self._app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            raise ConfigError(
                f"[metrics] cannot listen on {self.host}:{self.port}: {e.strerror or e}; "
                "pick another listen address or stop what uses it"
            ) from None
        self._runner = runner
        log.info("metrics and health on http://%s:%d/metrics and /health", self.host, self.port)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


__all__ = ["HubMetrics", "MetricsServer"]
