"""An encrypted livestream through a real relay: hub-side publish, MLS in the ``live`` group,
viewers that decrypt, wait for keyframes and get frames that match what camsim drew."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path

import av
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "relay"))

from relay_harness import InProcess, inproc, mailbox_id

from privastead.camsim.scene import make_scene
from privastead.client.live import LiveAssembler, watch
from privastead.crypto import Identity
from privastead.errors import CameraUnavailableError, DecryptionError
from privastead.hub.capture.camera import Camera
from privastead.hub.config import CameraConfig
from privastead.hub.control.live_publish import LIVE_BATCH, publish, threaded
from privastead.media.live import LiveSession, LiveSettings
from privastead.media.ring import PacketRing
from privastead.protocol.live import LivePayload
from support.luma import block_error, luma
from support.packets import demux, encode_mp4

__all__ = ["inproc"]

FPS = 15


def _group(tmp_path: Path, viewers: int) -> tuple[Identity, bytes, list[Identity]]:
    hub = Identity.create(tmp_path / "hub", b"hub")
    gid = hub.create_group()
    phones = [Identity.create(tmp_path / f"phone{i}", f"phone{i}".encode()) for i in range(viewers)]
    for phone in phones:
        added = hub.add_members(gid, [phone.key_package()])
        for other in phones:
            if other is not phone and gid in other.groups():
                other.process(gid, added.commit)
        assert phone.join(added.welcome, inviter_identity=b"hub") == gid
    commit = hub.self_update(gid)  # the session's rekey: every viewer applies it first
    for phone in phones:
        phone.process(gid, commit)
    return hub, gid, phones


def test_payload_round_trip_and_rejects_garbage() -> None:
    p = LivePayload(index=7, is_init=False, keyframe=True, media_time=1.5, data=b"moof..")
    assert LivePayload.decode(p.encode()) == p
    stamped = LivePayload(8, False, False, 1.6, b"moof..", arrived=1_800_000_000.25)
    assert LivePayload.decode(stamped.encode()) == stamped
    with pytest.raises(DecryptionError.__mro__[1]):  # CryptoError: DecodeError
        LivePayload.decode(b"nope")


def test_assembler_waits_for_a_keyframe_after_joining_and_after_a_gap() -> None:
    a = LiveAssembler()
    frag = lambda i, k: LivePayload(i, False, k, 0.0, bytes([i]))  # noqa: E731
    assert a.accept(frag(3, False)) == []  # joined before the init: nothing to play yet
    assert a.accept(LivePayload(0, True, False, 0.0, b"init")) == []
    assert a.accept(frag(4, False)) == []
    assert a.accept(frag(5, True)) == [b"init", bytes([5])]
    assert a.accept(frag(6, False)) == [bytes([6])]
    assert a.accept(frag(8, False)) == []  # 7 was lost: wait for the next keyframe
    assert a.accept(frag(9, True)) == [bytes([9])]
    assert (a.gaps, a.dropped, a.written) == (1, 3, 3)


def _check_frames(scene: object, data: bytes) -> tuple[int, int]:
    """(scene index of the first frame, frame count); checks pictures against the scene."""
    with av.open(io.BytesIO(data)) as clip:
        frames = list(clip.decode(clip.streams.video[0]))
    assert frames[0].key_frame
    checked = 0
    for frame in frames[::3]:
        index = 30 + round(frame.time * FPS)  # the output timeline starts at the keyframe at 3 s
        if not scene.objects_at(index):  # type: ignore[attr-defined]
            continue  # nobody moving: neighbouring frames look alike
        checked += 1
        got = luma(frame)
        right = block_error(got, scene.render(index)[0])  # type: ignore[attr-defined]
        neighbour = min(
            block_error(got, scene.render(index + d)[0])  # type: ignore[attr-defined]
            for d in (-1, 1)
        )
        assert right < 6.0 and neighbour > max(6.0, 2 * right), (index, right, neighbour)
    assert checked >= 3
    return 30 + round(frames[0].time * FPS), len(frames)


async def test_two_viewers_decrypt_a_livestream_that_matches_the_scene(
    tmp_path: Path, inproc: InProcess
) -> None:
    scene = make_scene("walkers", width=192, height=112, fps=FPS, duration=20.0, seed=0)
    info, packets = demux(encode_mp4(scene, "h264", gop=15, frames=75))
    hub, gid, phones = _group(tmp_path, 2)
    outsider = Identity.create(tmp_path / "outsider", b"outsider")
    ring = PacketRing(keep_seconds=2.0)
    for p in packets[:40]:  # keyframes at 0, 15, 30: the session starts at 30 (3 s)
        ring.push(p)
    session = LiveSession(info, ring, LiveSettings(frames_per_fragment=3, max_queued=1000))
    sid = mailbox_id()
    outs = [io.BytesIO() for _ in phones]
    async with inproc.client() as hub_relay, inproc.client() as app_relay:
        first = await app_relay.live(sid, "viewer")  # waits for the publisher
        pub = await hub_relay.live(sid, "publisher")
        sent: list[bytes] = []
        inits: list[int] = []
        watching, resent = asyncio.Event(), asyncio.Event()

        def encrypt(plaintext: bytes) -> bytes:
            if LivePayload.decode(plaintext).is_init:
                inits.append(len(sent))
            ciphertext = hub.encrypt(gid, plaintext)
            sent.append(ciphertext)
            if len(sent) >= 4:
                watching.set()
            if len(inits) >= 2:
                resent.set()
            return ciphertext

        def viewer(ws: object, phone: Identity, out: io.BytesIO) -> asyncio.Task[LiveAssembler]:
            return asyncio.create_task(
                watch(ws, lambda c: phone.process(gid, c).data, out.write, seconds=60)  # type: ignore[arg-type]
            )

        viewers = [viewer(first, phones[0], outs[0])]
        publisher = asyncio.create_task(publish(session, pub, threaded(encrypt)))
        for p in packets[40:50]:
            session.push(p)
        await asyncio.wait_for(watching.wait(), 30)  # the first viewer is watching
        # the second viewer joins mid-stream: it gets the init again, then waits for keyframe 45
        viewers.append(viewer(await app_relay.live(sid, "viewer"), phones[1], outs[1]))
        await asyncio.wait_for(resent.wait(), 30)  # the hub heard of it, sent the init again
        for p in packets[50:]:
            session.push(p)
            await asyncio.sleep(0.005)
        session.stop("test done")
        stats = await asyncio.wait_for(publisher, 30)
        results = await asyncio.wait_for(asyncio.gather(*viewers), 30)
    assert stats.reason == "test done" and stats.init_resent == 1
    assert stats.sent + stats.init_resent == len(sent)
    # the relay only ever carried ciphertext, which a non-member cannot open
    assert not any(b"moof" in c or b"ftyp" in c for c in sent)
    with pytest.raises(DecryptionError.__mro__[1]):
        outsider.process(gid, sent[1])
    whole, joined = results
    assert whole.gaps == 0 and whole.dropped == 0
    assert whole.written == stats.sent - 1  # every media fragment once, the init once
    assert _check_frames(scene, outs[0].getvalue()) == (30, 75 - 30)
    assert joined.keyframes and joined.keyframes[0] > 1 and joined.written < whole.written
    start, count = _check_frames(scene, outs[1].getvalue())
    assert start in (45, 60) and count == 75 - start  # from a keyframe on, nothing missing


async def test_fragments_that_wait_are_encrypted_together_and_play_whole(
    tmp_path: Path, inproc: InProcess
) -> None:
    """A publisher behind its session (here: the whole stream queued before it starts)
    encrypts what waits in batches of at most ``LIVE_BATCH`` (one state write each); the
    viewer still gets every fragment once, in order, and the pictures match the scene."""
    scene = make_scene("walkers", width=192, height=112, fps=FPS, duration=20.0, seed=0)
    info, packets = demux(encode_mp4(scene, "h264", gop=15, frames=75))
    hub, gid, (phone,) = _group(tmp_path, 1)
    ring = PacketRing(keep_seconds=2.0)
    for p in packets[:40]:
        ring.push(p)
    session = LiveSession(info, ring, LiveSettings(frames_per_fragment=3, max_queued=1000))
    for p in packets[40:]:
        session.push(p)  # everything waits before the publisher takes the first fragment
    session.stop("test done")  # ends once what is queued was taken
    calls: list[int] = []

    def encrypt_one(plaintext: bytes) -> bytes:
        calls.append(1)
        return hub.encrypt(gid, plaintext)

    def encrypt_many(plaintexts: list[bytes]) -> list[bytes]:
        calls.append(len(plaintexts))
        return hub.encrypt_batch(gid, plaintexts)

    async def encrypt_batch(plaintexts: list[bytes]) -> list[bytes]:
        return await asyncio.to_thread(encrypt_many, plaintexts)

    out = io.BytesIO()
    sid = mailbox_id()
    async with inproc.client() as hub_relay, inproc.client() as app_relay:
        viewer_ws = await app_relay.live(sid, "viewer")
        pub = await hub_relay.live(sid, "publisher")
        viewer = asyncio.create_task(
            watch(viewer_ws, lambda c: phone.process(gid, c).data, out.write, seconds=60)
        )
        stats = await asyncio.wait_for(
            publish(session, pub, threaded(encrypt_one), encrypt_batch=encrypt_batch), 60
        )
        whole = await asyncio.wait_for(viewer, 30)
    assert sum(calls) == stats.sent
    assert max(calls) == LIVE_BATCH and all(c <= LIVE_BATCH for c in calls)
    assert stats.batches == sum(1 for c in calls if c > 1) and len(calls) < stats.sent / 2
    assert whole.gaps == 0 and whole.dropped == 0
    assert whole.written == stats.sent - 1  # every media fragment once, the init once
    assert _check_frames(scene, out.getvalue()) == (30, 75 - 30)


def test_camera_feeds_a_livestream_from_its_ring_and_forgets_it_when_ended(
    tmp_path: Path,
) -> None:
    scene = make_scene("walkers", width=192, height=112, fps=FPS, duration=20.0, seed=0)
    info, packets = demux(encode_mp4(scene, "h264", gop=15, frames=75))
    camera = Camera(CameraConfig("porch", "rtsp://127.0.0.1:1/none"), tmp_path)
    with pytest.raises(CameraUnavailableError):
        camera.start_live()
    camera._on_main(info)
    for p in packets[:40]:
        camera._on_main(p)
    session = camera.start_live(LiveSettings(max_queued=1000))
    for p in packets[40:]:
        camera._on_main(p)
    camera.recorder.mux.drain()  # the camera muxes livestreams on its mux thread
    session.stop("done")
    data = b"".join(f.data for f in iter(lambda: session.get(0), None))
    assert _check_frames(scene, data) == (30, 75 - 30)  # ring's newest keyframe, then live
    camera._on_main(packets[-1])
    assert not camera._live
