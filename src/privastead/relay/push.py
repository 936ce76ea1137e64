"""Wake-up pushes: FCM (through firebase-admin) and UnifiedPush-style webhooks.

A push carries only the uploader's opaque ciphertext (or nothing): Google and the webhook
host learn a device token or URL, timing and a size, never content. Pushes run on worker
tasks behind a bounded queue, so an upload never waits for Google; failures are retried a
few times with backoff and every outcome is counted in ``/metrics``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from privastead.clock import Clock
from privastead.errors import RelayRejectedError
from privastead.relay.config import PushConfig
from privastead.relay.fairqueue import FairQueue
from privastead.relay.metrics import Metrics
from privastead.relay.webhook import TargetPolicy, connector_options

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushJob:
    account: str  # whose share of the push queue this job uses
    device_id: str
    payload: bytes
    fcm_token: str | None
    webhook_url: str | None


class _Permanent(Exception):
    pass


class FcmSender:
    """Sends data-only FCM messages with firebase-admin (its HTTP calls run in a thread)."""

    def __init__(self, config: PushConfig) -> None:
        import firebase_admin
        from firebase_admin import credentials, messaging

        assert config.fcm_credentials_file is not None
        options: dict[str, Any] = {"httpTimeout": config.timeout_seconds}
        if config.fcm_project_id:
            options["projectId"] = config.fcm_project_id
        self._app = firebase_admin.initialize_app(
            credentials.Certificate(str(config.fcm_credentials_file)),
            options,
            name=f"privastead-relay-{id(self)}",
        )
        self._messaging = messaging
        if config.fcm_endpoint:
            # firebase-admin has no public knob for the endpoint; its service object keeps the
            # URL in one attribute. The OAuth endpoint comes from the key file's token_uri.
            service = messaging._get_messaging_service(self._app)
            service._fcm_url = config.fcm_endpoint.replace("{project}", self._app.project_id)

    def close(self) -> None:
        import firebase_admin

        firebase_admin.delete_app(self._app)

    def _send(self, token: str, payload: bytes) -> None:
        m = self._messaging
        data = {"body": base64.b64encode(payload).decode("ascii")} if payload else {}
        message = m.Message(fid=token, data=data, android=m.AndroidConfig(priority="high"))
        try:
            m.send(message, app=self._app)
        except (m.UnregisteredError, m.SenderIdMismatchError, ValueError) as exc:
            raise _Permanent(type(exc).__name__) from exc

    async def send(self, token: str, payload: bytes) -> None:
        await asyncio.to_thread(self._send, token, payload)


class Pusher:
    """Sends wake-ups through a ``FairQueue``: per-account concurrency and queue share, so
    one household's slow or silent webhook never delays another's."""

    def __init__(self, config: PushConfig, clock: Clock, metrics: Metrics) -> None:
        self._config = config
        self._clock = clock
        self._metrics = metrics
        self._fcm: FcmSender | None = None
        self._session: aiohttp.ClientSession | None = None
        self._targets = TargetPolicy(config.webhook_allow_networks)
        self._queue: FairQueue[PushJob] = FairQueue(
            self._send,
            running=config.concurrency,
            queued=config.max_in_flight,
            per_key_running=config.per_account_concurrency,
            per_key_queue=config.per_account_queue,
        )

    async def start(self) -> None:
        if self._config.fcm_credentials_file is not None:
            self._fcm = FcmSender(self._config)
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._config.timeout_seconds),
            connector=aiohttp.TCPConnector(**connector_options(self._targets)),
        )

    async def stop(self) -> None:
        # Give queued pushes a moment; wake-ups are best-effort by design.
        await self._queue.drain(2.0)
        if self._session is not None:
            await self._session.close()
        if self._fcm is not None:
            # firebase-admin's clean-up runs its own event loop: keep it off ours.
            await asyncio.to_thread(self._fcm.close)

    def submit(self, job: PushJob) -> None:
        """Queue a push without waiting; past the account's share (or the global bound) it
        is dropped and counted."""
        if not self._queue.submit(job.account, job):
            self._metrics.inc("relay_push_total", channel="any", outcome="dropped")

    async def _send(self, job: PushJob) -> None:
        try:
            if job.fcm_token and self._fcm is not None:
                await self._attempt("fcm", job, self._fcm_once)
            if job.webhook_url:
                await self._attempt("webhook", job, self._webhook_once)
        except Exception:  # a bug here must not stop the other pushes
            _log.exception("push failed")

    async def _attempt(self, channel: str, job: PushJob, once: Any) -> None:
        delay = self._config.retry_delay_seconds
        for attempt in range(self._config.retries + 1):
            try:
                await once(job)
            except _Permanent as exc:
                self._metrics.inc("relay_push_total", channel=channel, outcome="rejected")
                _log.info("%s push for device %s rejected: %s", channel, job.device_id, exc)
                return
            except Exception as exc:
                _log.debug("%s push attempt failed", channel, exc_info=True)
                if attempt == self._config.retries:
                    self._metrics.inc("relay_push_total", channel=channel, outcome="failed")
                    _log.warning(
                        "%s push for device %s failed: %s",
                        channel,
                        job.device_id,
                        type(exc).__name__,
                    )
                    return
                self._metrics.inc("relay_push_total", channel=channel, outcome="retried")
                await self._clock.sleep(delay)
                delay *= 2
            else:
                self._metrics.inc("relay_push_total", channel=channel, outcome="sent")
                return

    async def _fcm_once(self, job: PushJob) -> None:
        assert self._fcm is not None and job.fcm_token
        await self._fcm.send(job.fcm_token, job.payload)

    async def _webhook_once(self, job: PushJob) -> None:
        assert self._session is not None and job.webhook_url
        host = urlsplit(job.webhook_url).hostname or ""
        try:
            self._targets.check_literal(host)  # names are checked by the session's resolver
        except RelayRejectedError as exc:
            raise _Permanent(str(exc)) from None
        async with self._session.post(
            job.webhook_url,
            data=job.payload,
            headers={"Content-Type": "application/octet-stream", "TTL": "86400", "Urgency": "high"},
            allow_redirects=False,
        ) as resp:
            if resp.status in (404, 410):  # the endpoint is gone (UnifiedPush semantics)
                raise _Permanent(f"HTTP {resp.status}")
            if resp.status >= 300:
                raise RuntimeError(f"HTTP {resp.status}")


__all__ = ["FcmSender", "PushJob", "Pusher"]
