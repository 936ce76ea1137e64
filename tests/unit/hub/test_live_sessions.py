"""The hub's livestream sessions (hub/control/live_sessions.py) with real MLS groups, a real
outbox and
an in-process relay: rekey before the answer, one session shared by two requesters, the end
only once both sent LiveStop, and a refusal while the camera is disconnected."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

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
from support.packets import demux, encode_mp4

__all__ = ["inproc"]

REQUEST_A, REQUEST_B = "a1" * 16, "b2" * 16


class FakeCamera:
    """``start_live`` like ``hub.capture.camera.Camera``: from a ring of demuxed camsim packets."""

    def __init__(self, info: StreamInfo, packets: list[MediaPacket]) -> None:
        self.info, self.packets, self.connected = info, packets, True
        self.sessions: list[LiveSession] = []

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
        return session


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


async def test_sessions_rekey_answer_share_and_end_on_both_stops(
    tmp_path: Path, inproc: InProcess, stream: tuple[StreamInfo, list[MediaPacket]]
) -> None:
    outbox = Outbox(tmp_path / "outbox", quota_bytes=1 << 26)
    groups = HubGroups(tmp_path, outbox, ["cam"])
    phones = _members(tmp_path, groups)
    control, live_group = groups.get("cam", "control"), groups.get("cam", "live")
    camera = FakeCamera(*stream)
    async with inproc.client() as relay:
        live = LiveSessions(groups, relay, lambda g, build: g.sender.send(build))
        live.cameras = {"cam": camera}
        try:
            epoch = live_group.identity.epoch(live_group.group_id)
            commits = sum(1 for k, _ in _queued(live_group) if k is EntryKind.COMMIT)
            answer = await _ask(live, control, phones["a"], LiveRequest("cam", REQUEST_A))
            assert answer is not None and not answer.error and answer.request == REQUEST_A
            # A fresh session id (not the request id) and a rekey of the live group first.
            assert answer.session_id != REQUEST_A and answer.epoch == epoch + 1
            queued = _queued(live_group)
            assert sum(1 for k, _ in queued if k is EntryKind.COMMIT) == commits + 1
            for phone in phones.values():  # both read the session's commit from the mailbox
                phone["live"].process(live_group.group_id, queued[-1][1])

            # A second request joins the running session: same id, no new commit.
            second = await _ask(live, control, phones["b"], LiveRequest("cam", REQUEST_B))
            assert second is not None and second.session_id == answer.session_id
            assert second.epoch == answer.epoch and len(_queued(live_group)) == len(queued)

            # A viewer gets the init segment, then a keyframe, all decryptable with the rekey.
            ws = await relay.live(answer.session_id, "viewer")
            payloads: list[LivePayload] = []
            while len(payloads) < 3:
                msg = await asyncio.wait_for(ws.receive(), 20)
                if msg.type.name == "BINARY":
                    data = phones["a"]["live"].process(live_group.group_id, msg.data).data
                    payloads.append(LivePayload.decode(data))
            assert payloads[0].is_init and payloads[1].keyframe

            # LiveStop from one requester keeps the session for the other; the second ends it.
            await _ask(live, control, phones["a"], LiveStop("cam", answer.session_id))
            assert "cam" in live.running and camera.sessions[-1].ended is None
            await _ask(live, control, phones["b"], LiveStop("cam", answer.session_id))
            await wait_until(lambda: "cam" not in live.running, 10)
            assert live.ended[-1] == "stopped by its viewers"
            await ws.close()

            # Camera disconnected: an answer with the reason, no rekey, no session.
            camera.connected = False
            refused = await _ask(live, control, phones["a"], LiveRequest("cam", REQUEST_B))
            assert refused is not None and "not connected" in refused.error
            assert live_group.identity.epoch(live_group.group_id) == epoch + 1
            assert "cam" not in live.running
        finally:
            live.stop_all("test over")
            for phone in phones.values():
                for ident in phone.values():
                    ident.close()
            groups.close()


async def test_a_session_nobody_joins_ends_and_frees_the_camera(
    tmp_path: Path, inproc: InProcess, stream: tuple[StreamInfo, list[MediaPacket]]
) -> None:
    outbox = Outbox(tmp_path / "outbox", quota_bytes=1 << 26)
    groups = HubGroups(tmp_path, outbox, ["cam"])
    phones = _members(tmp_path, groups)
    control = groups.get("cam", "control")
    async with inproc.client() as relay:
        live = LiveSessions(groups, relay, lambda g, build: g.sender.send(build), join_timeout=0.5)
        live.cameras = {"cam": FakeCamera(*stream)}
        try:
            first = await _ask(live, control, phones["a"], LiveRequest("cam", REQUEST_A))
            await wait_until(lambda: "cam" not in live.running, 10)
            assert live.ended[-1] == "no viewer joined"
            again = await _ask(live, control, phones["a"], LiveRequest("cam", REQUEST_B))
            assert first is not None and again is not None
            assert again.session_id != first.session_id and again.epoch == first.epoch + 1
        finally:
            live.stop_all("test over")
            for phone in phones.values():
                for ident in phone.values():
                    ident.close()
            groups.close()
