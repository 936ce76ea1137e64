"""Publishing one livestream session: ``LiveSession`` fragments, MLS-encrypted, to the relay.

Each fragment (init segment first) becomes a ``LivePayload`` (index, keyframe flag, media
time, fMP4 bytes), is encrypted as one application message of the camera's ``live`` group and
sent as one binary frame on the relay's live channel ``/v1/live/{session}``. The relay's text
signals steer the session: ``viewers`` with a higher count (someone joined mid-stream; the
relay replays nothing) makes the hub send the init segment again, ``lagging`` (a viewer's
queue overflowed) makes the session skip to the next keyframe when every viewer lags (one slow
viewer alone only loses frames at the relay) and ``no_viewers`` pauses it: ``publish``
returns with ``idle`` set, the socket open and the session running, so that the caller can
wait a while for a viewer whose connection broke to join again. The channel closing under it
(the relay process died, the connection broke) does not end the session either: ``publish``
returns with ``lost`` set, so that the caller can join the same channel again (behind a load
balancer, on a surviving relay). Either way the caller then calls ``publish`` once more with
``resume``: the init segment first, then from the next keyframe. A session that ends on
purpose says ``end`` to the relay before closing, so that its viewers learn it is over; a
socket that just closes tells them the publisher was lost (they wait for it).
The caller rekeys the ``live`` group (a self-update commit) before a session starts, so a
session never shares keys with an earlier one.

Fragments are taken from the session in a thread (``LiveSession.get`` blocks) and encrypted by
``encrypt``, in the hub a job on the ``live`` group's worker, so the event loop, and with it
every other camera, never waits on one livestream. Given ``encrypt_batch``, the fragments that
are already waiting when one is taken (the publisher fell behind: a slow disk under the MLS
state write, a busy machine) are encrypted together, up to ``LIVE_BATCH``: one durable write
of the group's state for all of them instead of one each. Nothing waits for a fragment to
come, so batching adds no latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from privastead.media.live import LiveFragment, LiveSession
from privastead.protocol.live import LivePayload, live_signal

log = logging.getLogger(__name__)

#: Encrypts one payload off the loop: in the hub, a job on the live group's worker.
Encrypt = Callable[[bytes], Awaitable[bytes]]
#: Encrypts several payloads with one durable write of the group's state (same worker).
EncryptBatch = Callable[[list[bytes]], Awaitable[list[bytes]]]

# Fragments encrypted together at most: 8 fragments are ~0.8 s of a 30 fps camera at the
# default 3 frames per fragment; a publisher further behind is skipped to a keyframe by the
# session's back-pressure anyway, so a larger batch would only hold the live worker longer.
LIVE_BATCH = 8


def threaded(encrypt: Callable[[bytes], bytes]) -> Encrypt:
    """``encrypt`` run in a worker thread (for a caller that owns the group alone)."""

    def run(plaintext: bytes) -> Awaitable[bytes]:
        return asyncio.to_thread(encrypt, plaintext)

    return run


LAG_WINDOW = 2.5  # seconds a lagging signal counts (the relay repeats it at most once a second)
POLL_SECONDS = 0.25  # how long one worker-thread get() waits: bounds the reaction to an end


@dataclass
class PublishStats:
    sent: int = 0
    bytes: int = 0
    lagging: int = 0
    skipped: int = 0  # times the session skipped to a keyframe because every viewer lagged
    init_resent: int = 0
    batches: int = 0  # encrypt_batch calls (several fragments waited): one state write each
    lost: bool = False  # the channel closed under a running session (it may be joined again)
    idle: bool = False  # the last viewer left; the socket is open and the session running
    reason: str = ""


async def publish(
    session: LiveSession,
    ws: aiohttp.ClientWebSocketResponse,
    encrypt: Encrypt,
    *,
    viewers: int = 0,
    encrypt_batch: EncryptBatch | None = None,
    resume: bool = False,
) -> PublishStats:
    """Send ``session`` on the publisher socket ``ws`` until it ends, the channel is lost
    (``lost``) or the relay reports no viewers (``idle``); in the last two the session still
    runs. Closes the socket unless idle, and ends the session (saying ``end``) unless lost or
    idle.
    ``viewers``: how many the relay already reported (if the caller read its signals first);
    ``encrypt_batch``: encrypt what already waits together (see the module's docstring);
    ``resume``: the session was published before on a channel now lost: send the init segment
    again and go on from the next keyframe (what queued meanwhile is stale)."""
    stats = PublishStats()
    signals = asyncio.create_task(_follow_signals(session, ws, encrypt, stats, viewers))
    limit = LIVE_BATCH if encrypt_batch is not None else 1
    try:
        if resume and session.init is not None:
            session.catch_up()
            init = await encrypt(_payload(session.init).encode())
            stats.lost = not await _send_all(ws, [init], stats)
        while not stats.lost and not stats.idle:
            fragments = await asyncio.to_thread(_take, session, limit)
            if not fragments:
                if session.ended is not None or signals.done():
                    break
                continue
            # On the live group's worker (hub.delivery.worker): a 4K fragment's encryption and
            # state write never hold up the loop.
            plaintexts = [_payload(f).encode() for f in fragments]
            if encrypt_batch is not None and len(plaintexts) > 1:
                ciphertexts = await encrypt_batch(plaintexts)
                stats.batches += 1
            else:
                ciphertexts = [await encrypt(plaintexts[0])]
            if not await _send_all(ws, ciphertexts, stats):
                stats.lost = True
    finally:
        signals.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await signals
        if not stats.lost and not stats.idle:
            session.stop("publisher stopped")
            await end_channel(ws)
        elif not stats.idle:  # lost: nobody to tell, but the connection is given back
            await ws.close()
    paused = "relay connection lost" if stats.lost else "no viewers" if stats.idle else ""
    stats.reason = session.ended or paused
    # One line per channel use; the session's own start, resumes and end (with totals) are
    # logged once by its owner (``LiveSessions``), so that a log reader has one line to find.
    log.info(
        "live channel %s (%s): %d messages sent",
        "closed" if session.ended else "paused",
        stats.reason,
        stats.sent,
    )
    return stats


async def end_channel(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Close the publisher socket of a session that is over, first telling the relay it ended
    on purpose (its viewers get ``ended``, not ``publisher_lost``); best effort: a socket
    already closed or lost has nobody left to tell, and is closed all the same."""
    if not ws.closed:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_json({"type": "end"})
    await ws.close()


def _take(session: LiveSession, limit: int) -> list[LiveFragment]:
    """The next fragment (waiting up to ``POLL_SECONDS``) and, up to ``limit`` in all, those
    already queued behind it; never waits for one more. Runs in a thread."""
    first = session.get(POLL_SECONDS)
    if first is None:
        return []
    taken = [first]
    while len(taken) < limit and (more := session.get(0)) is not None:
        taken.append(more)
    return taken


async def _send_all(
    ws: aiohttp.ClientWebSocketResponse, ciphertexts: list[bytes], stats: PublishStats
) -> bool:
    """Send each ciphertext as one frame, in order; False once the relay connection is gone."""
    for ciphertext in ciphertexts:
        try:
            await ws.send_bytes(ciphertext)
        except (ConnectionError, RuntimeError):
            return False
        stats.sent += 1
        stats.bytes += len(ciphertext)
    return True


def _payload(fragment: LiveFragment) -> LivePayload:
    return LivePayload(
        index=fragment.index,
        is_init=fragment.is_init,
        keyframe=fragment.keyframe,
        media_time=fragment.media_time,
        data=fragment.data,
        arrived=fragment.arrived,  # the hub clock's Unix time (ingest: clock.time())
    )


async def relay_signals(ws: aiohttp.ClientWebSocketResponse) -> AsyncIterator[dict[str, Any]]:
    """The relay's JSON text signals on a publisher socket (binary frames and junk skipped),
    until the socket closes."""
    async for msg in ws:
        event = live_signal(msg.data) if msg.type == aiohttp.WSMsgType.TEXT else None
        if event is not None:
            yield event


async def _follow_signals(
    session: LiveSession,
    ws: aiohttp.ClientWebSocketResponse,
    encrypt: Encrypt,
    stats: PublishStats,
    viewers: int,
) -> None:
    lagging: dict[str, float] = {}  # viewer id -> when the relay last dropped frames for it
    async for event in relay_signals(ws):
        kind = event.get("type")
        if kind == "viewers":
            count = int(event.get("count", 0))
            if count > viewers and stats.sent > 0 and session.init is not None:
                # sent before any later fragment: the joiner can start at the next keyframe
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_bytes(await encrypt(_payload(session.init).encode()))
                    stats.init_resent += 1
            viewers = count
        elif kind == "viewer_left":
            viewers = int(event.get("count", 0))
            lagging.pop(str(event.get("viewer", "")), None)
        elif kind == "lagging":
            stats.lagging += 1
            now = time.monotonic()
            lagging[str(event.get("viewer", ""))] = now
            recent = sum(1 for t in lagging.values() if now - t <= LAG_WINDOW)
            # The relay already drops frames for the slow viewer alone; skipping here too
            # helps only when everyone is behind (the hub's uplink), and would otherwise make
            # one stalled viewer cost every other viewer pictures.
            if recent >= max(viewers, 1):
                stats.skipped += 1
                session.behind()
        elif kind == "no_viewers":
            # Not the end: the last viewer's connection may have broken (it joins again at
            # once); the caller waits a grace period for one, not sending meanwhile.
            stats.idle = True
            return
    stats.lost = True  # the channel closed under the session: the caller may join it again


__all__ = ["Encrypt", "PublishStats", "end_channel", "publish", "relay_signals", "threaded"]
