"""The hub's livestream sessions (hub/control/live_sessions.py) with real MLS groups, a real
outbox and
an in-process relay: rekey before the answer, one session shared by two requesters, the end
only once both sent LiveStop, and a refusal while the camera is disconnected."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "relay"))

from relay_harness import InProcess, inproc, wait_until

from privastead.camsim.scene import make_scene
from privastead.crypto import Identity
from privastead.errors import CameraUnavailableError
from privastead.hub.control.live_sessions import LiveSessions
from privastead.hub.delivery.outbox import EntryKind, Outbox
from privastead.hub.state.groups import HubGroup, HubGroups
from privastead.media.ingest import MediaPacket, StreamInfo
from privastead.media.live import LiveSession, LiveSettings
from privastead.media.ring import PacketRing
from privastead.protocol.codec import decode_message
from privastead.protocol.live import LivePayload
from privastead.protocol.messages import LiveAnswer, LiveRequest, LiveStop
from privastead.relay.client import RelayClient
from support.packets import demux, encode_mp4

__all__ = ["inproc"]

REQUEST_A, REQUEST_B = "a1" * 16, "b2" * 16


class FakeCamera:
    """``start_live`` like ``hub.capture.camera.Camera``: from a ring of demuxed camsim packets;
    ``endless``: then the clip again and again at its frame rate (later timestamps), until the
    session ends, as a camera goes on sending."""

    def __init__(
        self, info: StreamInfo, packets: list[MediaPacket], *, endless: bool = False
    ) -> None:
        self.info, self.packets, self.connected, self.endless = info, packets, True, endless
        self.sessions: list[LiveSession] = []
        self.feeders: set[asyncio.Task[None]] = set()

    async def _feed(self, session: LiveSession) -> None:
        video = [p for p in self.packets if p.kind == "video"]
        step = video[1].pts - video[0].pts
        length = video[-1].pts - video[0].pts + step
        for loop in itertools.count(1):
            for p in self.packets:
                if session.ended is not None:
                    return
                session.push(_later(p, loop * length))
                await asyncio.sleep(step if p.kind == "video" else 0)

    def start_live(self, settings: LiveSettings | None = None) -> LiveSession:
        if not self.connected:
            raise CameraUnavailableError("cam: not connected, no livestream possible")
        ring = PacketRing(keep_seconds=5.0)
        for p in self.packets[:20]:
            ring.push(p)
        session = LiveSession(self.info, ring, settings)
        for p in self.packets[20:]:
            session.push(p)
        self.sessions.append(session)
        if self.endless:
            feeder = asyncio.get_running_loop().create_task(self._feed(session))
            self.feeders.add(feeder)
            feeder.add_done_callback(self.feeders.discard)
        return session


def _later(p: MediaPacket, seconds: float) -> MediaPacket:
    """``p`` ``seconds`` later on the camera's timeline (a copy: packets are never mutated)."""
    src = p.packet
    assert src.time_base is not None and src.pts is not None and src.dts is not None
    ticks = round(seconds / src.time_base)
    packet = av.Packet(bytes(src))
    packet.pts, packet.dts, packet.time_base = src.pts + ticks, src.dts + ticks, src.time_base
    if src.duration:
        packet.duration = src.duration
    return dataclasses.replace(p, packet=packet, pts=p.pts + seconds)


@pytest.fixture(scope="module")
def stream() -> tuple[StreamInfo, list[MediaPacket]]:
    scene = make_scene("walkers", width=160, height=96, fps=15, duration=4.0, seed=1)
    return demux(encode_mp4(scene, "h264", gop=15, frames=45))


def _members(tmp: Path, groups: HubGroups) -> dict[str, dict[str, Identity]]:
    phones: dict[str, dict[str, Identity]] = {}
    for phone in ("a", "b"):
        phones[phone] = {}
        for name in ("control", "live"):
            group = groups.get("cam", name)
            ident = Identity.create(tmp / f"{phone}-{name}.mls", f"{phone}-{name}".encode())
            added = group.add(ident.key_package())
            for other in phones.values():
                if name in other:
                    other[name].process(group.group_id, added.commit)
            ident.join(added.welcome, inviter_signature_key=group.identity.signature_key)
            phones[phone][name] = ident
    return phones


def _queued(group: HubGroup) -> list[tuple[EntryKind, bytes]]:
    return [(e.kind, e.read()) for e in group.sender._queue.pending()]


async def _ask(
    live: LiveSessions, control: HubGroup, phone: dict[str, Identity], message: object
) -> LiveAnswer | None:
    """``phone`` sends ``message`` in control; the hub handles it; ``phone`` reads the answer."""
    body = phone["control"].encrypt(control.group_id, message.encode())  # type: ignore[attr-defined]
    received = control.identity.process(control.group_id, body)
    before = len(_queued(control))
    await live.handle(control, received.sender, message)  # type: ignore[arg-type]
    after = _queued(control)
    if len(after) == before:
        return None
    answer = decode_message(phone["control"].process(control.group_id, after[-1][1]).data)
    assert isinstance(answer, LiveAnswer)
    return answer


@dataclasses.dataclass
class _Hub:
    """The hub's live sessions over real groups and an in-process relay, two members."""

    live: LiveSessions
    relay: RelayClient
    camera: FakeCamera
    phones: dict[str, dict[str, Identity]]
    control: HubGroup
    live_group: HubGroup

    async def ask(self, phone: str, message: LiveRequest | LiveStop) -> LiveAnswer | None:
        return await _ask(self.live, self.control, self.phones[phone], message)

    async def session(self, request: str) -> tuple[LiveAnswer, aiohttp.ClientWebSocketResponse]:
        """Phone a asks for a session, reads its commit and joins it as a viewer."""
        answer = await self.ask("a", LiveRequest("cam", request))
        assert answer is not None and not answer.error, answer
        commit = _queued(self.live_group)[-1][1]
        self.phones["a"]["live"].process(self.live_group.group_id, commit)
        return answer, await self.relay.live(answer.session_id, "viewer")

    async def payloads(self, ws: aiohttp.ClientWebSocketResponse, count: int) -> list[LivePayload]:
        """The next ``count`` payloads phone a receives (the relay's text signals skipped)."""
        got: list[LivePayload] = []
        while len(got) < count:
            msg = await asyncio.wait_for(ws.receive(), 20)
            assert msg.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT), msg
            if msg.type == aiohttp.WSMsgType.BINARY:
                data = self.phones["a"]["live"].process(self.live_group.group_id, msg.data).data
                got.append(LivePayload.decode(data))
        return got


@contextlib.asynccontextmanager
async def _hub(
    tmp_path: Path,
    inproc: InProcess,
    stream: tuple[StreamInfo, list[MediaPacket]],
    *,
    endless: bool = False,
    **settings: Any,
) -> AsyncIterator[_Hub]:
    """``LiveSessions(**settings)`` for camera ``cam`` (``endless``: it goes on sending)."""
    groups = HubGroups(tmp_path, Outbox(tmp_path / "outbox", quota_bytes=1 << 26), ["cam"])
    phones = _members(tmp_path, groups)
    async with inproc.client() as relay:
        live = LiveSessions(groups, relay, lambda g, build: g.sender.send(build), **settings)
        camera = FakeCamera(*stream, endless=endless)
        live.cameras = {"cam": camera}
        try:
            yield _Hub(
                live,
                relay,
                camera,
                phones,
                groups.get("cam", "control"),
                groups.get("cam", "live"),
            )
        finally:
            live.stop_all("test over")
            for phone in phones.values():
                for ident in phone.values():
                    ident.close()
            groups.close()


async def test_sessions_rekey_answer_share_and_end_on_both_stops(
    tmp_path: Path, inproc: InProcess, stream: tuple[StreamInfo, list[MediaPacket]]
) -> None:
    async with _hub(tmp_path, inproc, stream) as hub:
        live, live_group, phones = hub.live, hub.live_group, hub.phones
        epoch = live_group.identity.epoch(live_group.group_id)
        commits = sum(1 for k, _ in _queued(live_group) if k is EntryKind.COMMIT)
        answer = await hub.ask("a", LiveRequest("cam", REQUEST_A))
        assert answer is not None and not answer.error and answer.request == REQUEST_A
        # A fresh session id (not the request id) and a rekey of the live group first.
        assert answer.session_id != REQUEST_A and answer.epoch == epoch + 1
        queued = _queued(live_group)
        assert sum(1 for k, _ in queued if k is EntryKind.COMMIT) == commits + 1
        for phone in phones.values():  # both read the session's commit from the mailbox
            phone["live"].process(live_group.group_id, queued[-1][1])

        # A second request joins the running session: same id, no new commit.
        second = await hub.ask("b", LiveRequest("cam", REQUEST_B))
        assert second is not None and second.session_id == answer.session_id
        assert second.epoch == answer.epoch and len(_queued(live_group)) == len(queued)

        # A viewer gets the init segment, then a keyframe, all decryptable with the rekey.
        ws = await hub.relay.live(answer.session_id, "viewer")
        payloads = await hub.payloads(ws, 3)
        assert payloads[0].is_init and payloads[1].keyframe

        # LiveStop from one requester keeps the session for the other; the second ends it.
        await hub.ask("a", LiveStop("cam", answer.session_id))
        assert "cam" in live.running and hub.camera.sessions[-1].ended is None
        await hub.ask("b", LiveStop("cam", answer.session_id))
        await wait_until(lambda: "cam" not in live.running, 10)
        assert live.ended[-1] == "stopped by its viewers"
        await ws.close()

        # Camera disconnected: an answer with the reason, no rekey, no session.
        hub.camera.connected = False
        refused = await hub.ask("a", LiveRequest("cam", REQUEST_B))
        assert refused is not None and "not connected" in refused.error
        assert live_group.identity.epoch(live_group.group_id) == epoch + 1
        assert "cam" not in live.running


async def test_a_session_nobody_joins_ends_and_frees_the_camera(
    tmp_path: Path, inproc: InProcess, stream: tuple[StreamInfo, list[MediaPacket]]
) -> None:
    async with _hub(tmp_path, inproc, stream, join_timeout=0.5) as hub:
        first = await hub.ask("a", LiveRequest("cam", REQUEST_A))
        await wait_until(lambda: "cam" not in hub.live.running, 10)
        assert hub.live.ended[-1] == "no viewer joined"
        again = await hub.ask("a", LiveRequest("cam", REQUEST_B))
        assert first is not None and again is not None
        assert again.session_id != first.session_id and again.epoch == first.epoch + 1


async def test_a_viewer_that_comes_back_in_the_grace_period_resumes_the_same_session(
    tmp_path: Path, inproc: InProcess, stream: tuple[StreamInfo, list[MediaPacket]]
) -> None:
    """The last viewer's socket closes (no LiveStop): the session pauses instead of ending; the
    viewer joining the same id again gets the init segment, then a keyframe; after
    ``max_resumes`` such returns the next pause ends the session and tells the relay (the
    viewer waiting gets ``ended``). With no viewer back in time, it ends: ``no viewers``."""
    async with _hub(tmp_path, inproc, stream, endless=True, grace=5.0, max_resumes=2) as hub:
        live = hub.live
        answer, ws = await hub.session(REQUEST_A)
        first = await hub.payloads(ws, 3)
        assert first[0].is_init and first[1].keyframe
        for resumes in (1, 2):
            await ws.close()  # the socket breaks: no LiveStop
            await wait_until(lambda: not live.running["cam"].publishing)  # paused
            ws = await hub.relay.live(answer.session_id, "viewer")
            again = await hub.payloads(ws, 2)
            while not again[-1].keyframe:
                again += await hub.payloads(ws, 1)
            # The init, at most the fragmenter's tail (muxed before the pause), then a
            # keyframe: what queued during the pause was dropped, not sent late.
            assert again[0].is_init and len(again) <= 3, again
            assert again[1].index > first[-1].index  # the same session, going on
            running = live.running["cam"]
            assert running.session_id == answer.session_id and running.resumes == resumes
            first = again
        await ws.close()
        ws = await hub.relay.live(answer.session_id, "viewer")
        await wait_until(lambda: "cam" not in live.running, 20)
        assert live.ended[-1] == "gave up after 2 resumes"
        assert hub.camera.sessions[-1].ended == "gave up after 2 resumes"
        ends = [m async for m in ws]  # the relay's word that the session is over, then close
        texts = [json.loads(m.data) for m in ends if m.type == aiohttp.WSMsgType.TEXT]
        assert texts[-1] == {"type": "ended"}

        # A new session whose viewer leaves for good: over after the grace period.
        live.grace = 0.5
        answer, ws = await hub.session(REQUEST_B)
        await hub.payloads(ws, 2)
        await ws.close()
        await wait_until(lambda: "cam" not in live.running, 20)
        assert live.ended[-1] == "no viewers" and hub.camera.sessions[-1].ended == "no viewers"


async def test_a_livestop_during_the_grace_period_ends_the_session_at_once(
    tmp_path: Path, inproc: InProcess, stream: tuple[StreamInfo, list[MediaPacket]]
) -> None:
    """A paused session (its viewer's socket closed) waits for no grace period once its last
    requester said LiveStop: a grace far longer than the wait here."""
    async with _hub(tmp_path, inproc, stream, endless=True, grace=600.0) as hub:
        answer, ws = await hub.session(REQUEST_A)
        await hub.payloads(ws, 2)
        await ws.close()
        await wait_until(lambda: not hub.live.running["cam"].publishing)  # paused, not ended
        await hub.ask("a", LiveStop("cam", answer.session_id))
        await wait_until(lambda: "cam" not in hub.live.running, 10)
        assert hub.live.ended[-1] == "stopped by its viewers"
        await wait_until(lambda: not inproc.state.live.sessions)  # the relay's too
