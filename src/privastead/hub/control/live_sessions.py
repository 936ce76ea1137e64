"""The hub's livestream sessions: answering ``LiveRequest``/``LiveStop`` from the control group.

A client asks for a livestream with a ``LiveRequest`` (its own random request id) in the
camera's ``control`` group; MLS authenticates it as a member of that group, never the relay.

- **No session runs for the camera:** the hub rekeys the ``live`` group first (a self-update
  commit through the group's sender and durable outbox, so it reaches the relay's ``live``
  mailbox in order and before any fragment is decryptable), starts the camera's
  ``LiveSession`` (it fails at once if the camera is not connected), picks a fresh random
  session id and answers with a ``LiveAnswer`` in ``control``: the session id to join and the
  ``live`` epoch the client must have processed. A task then opens the relay's publisher socket,
  waits for the first viewer (so the first fragment, a keyframe from the ring, is not sent into
  the void) and runs ``hub.control.live_publish.publish``.
- **A session runs:** the answer names the running session; the new viewer joins it (the
  publisher resends the init segment; the viewer starts at the next keyframe).

Live fragments are encrypted as ``live`` application messages straight through the group's
identity: they are ephemeral and never enter the outbox (``app_data``, i.e. the sender's
state, is left as it is). Only the commit and the answers are durable.

A session ends when every device that asked for it has sent ``LiveStop``, at the session's
time limit, when the camera disconnects, when no viewer joins within ``join_timeout``, or
when no viewer is back within ``grace`` (``LIVE_REJOIN_SECONDS``) after a pause. Pauses do not
end it at once: the relay's ``no_viewers`` (the last viewer's connection may have broken: a
Wi-Fi hand-over, a proxy) keeps the publisher socket open without sending, and a relay
connection lost under it (the relay process died, the hub's socket was cut) makes the hub join
the same session id again (behind a load balancer it now leads to a surviving relay); either
way it goes on from the next keyframe once a viewer is there. After ``max_resumes``
(``LIVE_MAX_RESUMES``) such pauses the session ends: a relay that keeps cutting it does not
keep the publisher rejoining. A session that ends says so to the relay (``end``), which tells
its viewers ``ended``. Each session is
its own task; it takes fragments in a thread and encrypts them on the ``live`` group's worker
(``hub.delivery.worker``, the hub's one rule for MLS work), so one camera's livestream stalls
neither the others nor detection and recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from privastead import compat
from privastead.errors import CameraUnavailableError, RelayError
from privastead.hub.control.live_publish import PublishStats, end_channel, publish, relay_signals
from privastead.hub.state.groups import HubGroup, HubGroups
from privastead.media.live import LiveSession, LiveSettings
from privastead.protocol.codec import Message
from privastead.protocol.messages import LiveAnswer, LiveRequest, LiveStop
from privastead.relay.client import LIVE_MAX_RESUMES, LIVE_REJOIN_SECONDS, RelayClient

log = logging.getLogger(__name__)

JOIN_TIMEOUT = 30.0  # seconds for the first viewer to connect after the answer
_TOTALS = ("sent", "bytes", "lagging", "skipped")  # PublishStats summed in the session's log line
FRESH_SECONDS = 1.0  # a session older than this at the first join restarts at a new keyframe


class LiveSource(Protocol):
    """What a session needs from ``hub.capture.camera.Camera`` (which fits as it is)."""

    def start_live(self, settings: LiveSettings | None = None) -> LiveSession: ...


Send = Callable[[HubGroup, Callable[[int], Message]], object]


@dataclass
class _Running:
    camera: str
    session_id: str
    session: LiveSession
    started: float
    requesters: set[bytes] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    publishing: bool = False
    resumes: int = 0  # times it went on after a lost channel or a viewer's return
    stats: list[PublishStats] = field(default_factory=list)  # one per publish (resume)


class LiveSessions:
    """Built by the hub's root (``hub.app``); ``cameras`` is the running cameras by name (the
    runner fills it), ``send`` queues a control-group message on that group's worker."""

    def __init__(
        self,
        groups: HubGroups,
        relay: RelayClient,
        send: Send,
        *,
        settings: LiveSettings | None = None,
        join_timeout: float = JOIN_TIMEOUT,
        cameras: Mapping[str, LiveSource] | None = None,
        grace: float = LIVE_REJOIN_SECONDS,
        max_resumes: int = LIVE_MAX_RESUMES,
    ) -> None:
        self.groups = groups
        self.relay = relay
        self.send = send  # app messages through the sender (outbox: indexed for resends)
        self.settings = settings or LiveSettings()
        self.join_timeout = join_timeout
        self.grace = grace  # how long a paused session waits for a viewer to come back
        self.max_resumes = max_resumes  # per session: then a relay cutting it wins, clearly
        self.cameras: Mapping[str, LiveSource] = cameras if cameras is not None else {}
        self.running: dict[str, _Running] = {}
        self.started = 0
        self.finished = 0  # sessions over, their camera session and sockets given back
        self.resumed = 0  # resumes of all sessions (after a lost socket or a viewer's return)
        self.ended: list[str] = []  # reasons, newest last (bounded)

    # -- requests (from ControlReader, on the loop) -------------------------------------------

    async def handle(self, group: HubGroup, sender: bytes, message: LiveRequest | LiveStop) -> None:
        if group.group != "control" or message.camera != group.camera:
            log.warning("%s: live message for another camera ignored", group.key)
            return
        if isinstance(message, LiveStop):
            self._stop_request(message, sender)
            return
        running = self.running.get(message.camera)
        if running is not None and running.session.ended is not None:
            running = None  # ending right now: a joiner would wait for a publisher in vain
        error = ""
        if running is None:
            try:
                running = await self._start(message.camera)
            except CameraUnavailableError as e:
                error = str(e)[:200]
        live = self.groups.get(message.camera, "live")
        session_id = message.session_id if running is None else running.session_id
        if running is not None:
            running.requesters.add(sender)
        epoch = await live.worker.call(live.identity.epoch, live.group_id)
        self.send(
            group,
            lambda seq: LiveAnswer(
                camera=message.camera,
                request=message.session_id,
                session_id=session_id,
                epoch=epoch,
                seq=seq,
                error=error,
            ),
        )
        if error:
            log.info("%s: live request refused: %s", group.key, error)

    async def _start(self, camera: str) -> _Running:
        source = self.cameras.get(camera)
        if source is None:
            raise CameraUnavailableError(f"camera {camera} is not running on the hub")
        session = source.start_live(self.settings)  # raises while the camera is disconnected
        live = self.groups.get(camera, "live")
        try:
            # New keys for every session: whoever steals one session's keys sees that one only.
            await live.worker.call(live.self_update)
        except BaseException:
            session.stop("rekey failed")
            raise
        running = _Running(camera, secrets.token_hex(16), session, time.monotonic())
        self.running[camera] = running
        running.task = asyncio.get_running_loop().create_task(
            self._serve(running, live), name=f"live-{camera}"
        )
        self.started += 1
        log.info("%s: live session %s… started", camera, running.session_id[:8])
        return running

    def _stop_request(self, message: LiveStop, sender: bytes) -> None:
        running = self.running.get(message.camera)
        if running is None or running.session_id != message.session_id:
            return
        running.requesters.discard(sender)
        if not running.requesters:
            self._end(running, "stopped by its viewers")

    def _end(self, running: _Running, reason: str) -> None:
        running.session.stop(reason)
        if not running.publishing and running.task is not None:
            running.task.cancel()  # still waiting for a viewer: nothing to flush

    def stop_all(self, reason: str) -> None:
        for running in list(self.running.values()):
            self._end(running, reason)

    async def run(self) -> None:
        """Until cancelled; then every session ends (the hub is stopping)."""
        try:
            await asyncio.Event().wait()
        finally:
            self.stop_all("the hub is stopping")
            tasks = [r.task for r in self.running.values() if r.task is not None]
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 5.0)

    # -- one session -------------------------------------------------------------------------

    async def _come_back(
        self, running: _Running, ws: aiohttp.ClientWebSocketResponse, *, lost: bool
    ) -> tuple[aiohttp.ClientWebSocketResponse, int]:
        """After a pause of the session (``lost``: its channel closed under it; else the relay
        reported no viewers and ``ws`` is still open): the publisher socket and how many
        viewers are there once one is (0 if none came within ``grace``).
        Nothing is sent meanwhile; ``LiveStop`` from the last requester cancels the wait."""
        running.publishing = False  # a LiveStop now ends the session at once
        try:
            if lost:
                # The relay carrying the channel is gone (behind a load balancer the same
                # session id now leads to a survivor): join it again; nothing is rekeyed (the
                # session's keys stay the same).
                again = await self.relay.rejoin_live(
                    running.session_id, "publisher", wanted=lambda: running.session.ended is None
                )
                if again is None:
                    return ws, 0
                ws = again
            return ws, await _first_viewer(ws, self.grace)
        finally:
            running.publishing = True

    async def _serve(self, running: _Running, live: HubGroup) -> None:
        reason = "ended"
        ws: aiohttp.ClientWebSocketResponse | None = None
        try:
            ws = await self.relay.live(running.session_id, role="publisher")
            viewers = await _first_viewer(ws, self.join_timeout)
            if not viewers:
                reason = "no viewer joined"
                return
            if time.monotonic() - running.started > FRESH_SECONDS:
                # Fragments queued while nobody watched would only add delay: start again at
                # the ring's newest keyframe.
                running.session.stop("restarted for the first viewer")
                source = self.cameras.get(running.camera)
                if source is None:
                    reason = "camera gone"
                    return
                running.session = source.start_live(self.settings)
            running.publishing = True

            async def encrypt(plaintext: bytes) -> bytes:
                # Not through the sender: live fragments are ephemeral (no outbox, no app seq),
                # but on the group's worker like everything that touches the group.
                return await live.worker.call(live.identity.encrypt, live.group_id, plaintext)

            async def encrypt_batch(plaintexts: list[bytes]) -> list[bytes]:
                # What already waited: one durable write of the group's state for all of them.
                return await live.worker.call(
                    live.identity.encrypt_batch, live.group_id, plaintexts
                )

            stats = await publish(
                running.session, ws, encrypt, viewers=viewers, encrypt_batch=encrypt_batch
            )
            running.stats.append(stats)
            while (stats.lost or stats.idle) and running.session.ended is None:
                if running.resumes >= self.max_resumes:
                    # A relay that keeps cutting the sockets: stop rejoining for it.
                    running.session.stop(f"gave up after {running.resumes} resumes")
                    break
                ws, viewers = await self._come_back(running, ws, lost=stats.lost)
                if not viewers:
                    running.session.stop("relay connection lost" if stats.lost else "no viewers")
                    break
                running.resumes += 1
                self.resumed += 1
                log.info("%s: live session %s… resumed", running.camera, running.session_id[:8])
                stats = await publish(
                    running.session,
                    ws,
                    encrypt,
                    viewers=viewers,
                    encrypt_batch=encrypt_batch,
                    resume=True,
                )
                running.stats.append(stats)
            reason = running.session.ended or stats.reason
        except asyncio.CancelledError:
            reason = running.session.ended or "cancelled"
            raise
        except (RelayError, CameraUnavailableError) as e:
            reason = f"relay or camera unavailable: {e}"
            log.warning("%s: live session failed: %s", running.camera, e)
        except Exception:  # a livestream must never take the hub down
            reason = "internal error"
            log.exception("%s: live session failed", running.camera)
        finally:
            await self._finish(running, ws, reason)

    async def _finish(
        self, running: _Running, ws: aiohttp.ClientWebSocketResponse | None, reason: str
    ) -> None:
        """A session is over: its camera session, its socket and its place are given back."""
        running.session.stop(reason)
        if ws is not None:
            with contextlib.suppress(Exception):  # closed or not: gives its connection back
                await end_channel(ws)
        if self.running.get(running.camera) is running:
            del self.running[running.camera]
        self.ended = [*self.ended[-31:], reason]
        self.finished += 1
        log.info(
            "%s: live session %s… ended (%s): %d messages, %d bytes, %d lagging signals, "
            "%d skips, %d resumes",
            running.camera,
            running.session_id[:8],
            reason,
            *(sum(getattr(s, n) for s in running.stats) for n in _TOTALS),
            running.resumes,
        )


async def _first_viewer(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> int:
    """Wait for the relay to report viewers on the publisher socket: how many (0 on timeout or
    close)."""
    with contextlib.suppress(TimeoutError):
        async with compat.timeout(seconds):
            async for event in relay_signals(ws):
                if event.get("type") == "viewers":
                    count = int(event.get("count", 0))
                    if count > 0:
                        return count
    return 0


__all__ = ["LiveSessions", "LiveSource"]
