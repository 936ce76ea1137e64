"""The hub's heartbeats: what a client needs to judge the hub and the relay on its own.

Every ``interval`` each camera's ``control`` group gets a ``Heartbeat`` carrying, inside the
ciphertext, the hub's clock (``hub_time``: freshness is judged by it, not by delivery time),
the epochs of the camera's groups, the outbox counters and, per group with application
messages, the highest app seq the relay has accepted (``sent``): a client missing any of those
knows the relay holds them back even if nothing later ever arrives.

A client's ``ClockProbe`` is answered at once by an extra heartbeat listing its nonce
(``answers``), at most one extra heartbeat per camera per ``min_answer_gap`` (a member cannot
make the hub flood the mailbox); nonces that arrive meanwhile ride in that next heartbeat. A
camera that goes away or comes back (``capture.health.CameraHealth.watch``) gets its heartbeat
early the same way, so clients hear of it within seconds rather than at the next interval.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

from privastead import __version__
from privastead.clock import Clock
from privastead.hub.delivery.outbox import Outbox
from privastead.hub.delivery.sender import Sent
from privastead.hub.state.groups import HubGroup, HubGroups
from privastead.protocol.codec import Message
from privastead.protocol.messages import MAX_ANSWERS, Heartbeat

log = logging.getLogger(__name__)

Send = Callable[[HubGroup, Callable[[int], Message]], Sent]


def sent_high(group: HubGroup, outbox: Outbox) -> int | None:
    """The highest app seq of ``group`` the relay has accepted (None: none yet).

    The outbox uploads in order and app seqs grow with outbox seqs, so it is the one below the
    oldest application message still pending; with none pending, the last one encrypted. A
    message the quota dropped counts as sent: a client asking for it hears it is gone."""
    pending = [e.app_seq for e in outbox.mailbox(group.mailbox).pending() if e.app_seq is not None]
    high = (min(pending) if pending else group.sender.next_app_seq) - 1
    return high if high >= 0 else None


class Heartbeats:
    def __init__(
        self,
        groups: HubGroups,
        outbox: Outbox,
        send: Send,
        *,
        clock: Clock,
        interval: float,
        health: Callable[[str], dict[str, Any]] | None = None,
        min_answer_gap: float = 1.0,
    ) -> None:
        self.groups = groups
        self.outbox = outbox
        self.send = send
        self.clock = clock
        self.interval = interval
        self.health = health  # camera -> flat health facts (``capture.health.CameraHealth``)
        self.min_answer_gap = min_answer_gap
        self._answers: dict[str, list[str]] = {}  # camera -> nonces to answer
        self._last_sent: dict[str, float] = {}  # camera -> monotonic time of its last beat
        self._scheduled: set[str] = set()
        self._due: set[str] = set()  # cameras whose next heartbeat should not wait

    def send_all(self) -> None:
        for camera in self.groups.cameras():
            self.send_one(camera)

    def send_one(self, camera: str) -> None:
        facts: dict[str, Any] = self.health(camera) if self.health is not None else {}
        epochs = {k: v for k, v in self.groups.epochs().items() if k.startswith(camera + "/")}
        sent = {}
        for group in self.groups:
            if group.camera == camera:
                high = sent_high(group, self.outbox)
                if high is not None:
                    sent[group.key] = high
        answers = tuple(self._answers.pop(camera, ()))
        status = self.outbox.status().as_dict()
        build = functools.partial(self._build, camera, facts, epochs, status, sent, answers)
        self.send(self.groups.get(camera, "control"), build)
        self._last_sent[camera] = self.clock.monotonic()
        self._due.discard(camera)

    def _build(  # noqa: PLR0917 - partial()'s private target
        self,
        camera: str,
        facts: dict[str, Any],
        epochs: dict[str, int],
        status: dict[str, int],
        sent: dict[str, int],
        answers: tuple[str, ...],
        seq: int,
    ) -> Heartbeat:
        return Heartbeat(
            hub_time=self.clock.time(),
            seq=seq,
            hub_version=__version__,
            cameras={camera: facts},
            epochs=epochs,
            outbox=status,
            sent=sent,
            answers=answers,
        )

    def answer(self, camera: str, nonce: str) -> None:
        """A client's clock probe: a heartbeat listing ``nonce``, now or as soon as allowed."""
        waiting = self._answers.setdefault(camera, [])
        if nonce not in waiting:
            waiting.append(nonce)
            del waiting[:-MAX_ANSWERS]  # a flood keeps only the newest
        self.soon(camera)

    def soon(self, camera: str) -> None:
        """``camera``'s heartbeat now, or as soon as ``min_answer_gap`` allows (a probe to
        answer, or a change of the camera's health that clients should hear at once)."""
        self._due.add(camera)
        wait = self._last_sent.get(camera, float("-inf")) + self.min_answer_gap
        wait -= self.clock.monotonic()
        if wait <= 0:
            self._dispatch(camera)
        elif camera not in self._scheduled:
            self._scheduled.add(camera)
            asyncio.get_running_loop().call_later(wait, self._send_later, camera)

    def _send_later(self, camera: str) -> None:
        self._scheduled.discard(camera)
        if camera in self._due:
            self._dispatch(camera)

    def _dispatch(self, camera: str) -> None:
        """From the loop: the beat is built and sent on the control group's worker."""
        self._last_sent[camera] = self.clock.monotonic()  # the gap counts from the request
        self.groups.get(camera, "control").worker.submit(self._send_safely, camera)

    def _send_safely(self, camera: str) -> None:
        try:
            self.send_one(camera)
        except Exception:  # a heartbeat must never stop the hub
            log.exception("%s: heartbeat failed", camera)

    async def run(self) -> None:
        while True:
            for camera in self.groups.cameras():
                await self.groups.get(camera, "control").worker.call(self._send_safely, camera)
            await self.clock.sleep(self.interval)


__all__ = ["Heartbeats", "sent_high"]
