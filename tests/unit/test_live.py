"""Live fMP4 fragments: decodable, keyframe-first, small, bounded under back-pressure, and
showing what camsim drew."""

from __future__ import annotations

import io
import itertools
import struct
from functools import cache

import av
import pytest

from privastead.camsim.scene import make_scene
from privastead.clock import FakeClock
from privastead.media.fmp4 import mime_codec
from privastead.media.ingest import MediaPacket, StreamInfo
from privastead.media.live import LiveFragment, LiveFragmenter, LiveSession, LiveSettings
from privastead.media.ring import PacketRing
from support.frames import BoxSource
from support.luma import block_error, luma
from support.packets import demux, encode_mp4

FPS = 15


@cache
def _stream(codec: str, seconds: float = 4.0) -> tuple[StreamInfo, list[MediaPacket]]:
    source = BoxSource(160, 120, FPS, seconds, motion=(0.0, seconds))
    return demux(encode_mp4(source, codec, gop=10))


def _decode(fragments: list[LiveFragment]) -> list[av.VideoFrame]:
    with av.open(io.BytesIO(b"".join(f.data for f in fragments))) as clip:
        return list(clip.decode(clip.streams.video[0]))


def _run(
    info: StreamInfo, packets: list[MediaPacket], settings: LiveSettings
) -> list[LiveFragment]:
    fragmenter = LiveFragmenter(info, settings)
    out = [f for p in packets for f in fragmenter.push(p)]
    return out + fragmenter.close()


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_fragments_start_on_a_keyframe_and_decode_every_frame(codec: str) -> None:
    info, packets = _stream(codec)
    fragments = _run(info, packets[3:], LiveSettings(frames_per_fragment=3))
    assert fragments[0].is_init and fragments[0].data[4:8] == b"ftyp"
    media = fragments[1:]
    assert all(f.data[4:8] == b"moof" and not f.is_init for f in media)
    assert media[0].keyframe and media[0].media_time == 0.0
    expected = len(packets) - 10  # from the first keyframe (frame 10) on
    assert sum(f.frames for f in media) == expected
    frames = _decode(fragments)
    assert len(frames) == expected and frames[0].key_frame
    # media times follow the frames, fragment after fragment
    assert [round(f.media_time * FPS) for f in media] == list(
        itertools.accumulate([0] + [f.frames for f in media[:-1]])
    )
    with av.open(io.BytesIO(b"".join(f.data for f in fragments))) as clip:
        tag = clip.streams.video[0].codec_context.codec_tag
    assert tag == ("hvc1" if codec == "h265" else "avc1")
    # every fragment uses default-base-is-moof and carries a tfdt (what MSE needs)
    assert all(b"tfdt" in f.data for f in media)


@pytest.mark.parametrize(("frames", "seconds", "most"), [(3, 1.0, 3), (10, 0.14, 2), (1, 1.0, 1)])
def test_fragment_size_is_bounded_by_frames_and_duration(
    frames: int, seconds: float, most: int
) -> None:
    info, packets = _stream("h264")
    fragments = _run(
        info, packets, LiveSettings(frames_per_fragment=frames, max_fragment_seconds=seconds)
    )
    media = fragments[1:]
    assert max(f.frames for f in media) == most
    assert all(f.frames >= 1 for f in media)
    keyframes = [f for f in media if f.keyframe]
    assert len(keyframes) == len([p for p in packets if p.keyframe])  # cut before each keyframe
    assert sum(f.frames for f in media) == len(_decode(fragments)) == len(packets)


def test_fragment_carries_arrival_time_of_its_newest_packet() -> None:
    info, packets = _stream("h264")
    fragments = _run(info, packets, LiveSettings(frames_per_fragment=3))
    by_pts = {p.pts: p for p in packets}
    for fragment in fragments[1:]:
        newest = by_pts[fragment.source_pts]
        assert fragment.arrived == newest.arrived
        assert fragment.emitted >= fragment.arrived


def test_session_starts_at_the_newest_keyframe_of_the_ring(clock: FakeClock) -> None:
    info, packets = _stream("h264")
    ring = PacketRing(keep_seconds=2.0)
    for p in packets[:35]:  # keyframes at 0, 10, 20, 30
        ring.push(p)
    session = LiveSession(info, ring, LiveSettings(frames_per_fragment=2), clock)
    init = session.get(0)
    first = session.get(0)
    assert init is not None and init.is_init
    assert first is not None and first.keyframe
    assert first.source_pts == pytest.approx(packets[31].pts)  # its newest frame; starts at 30
    for p in packets[35:]:
        session.push(p)
    session.stop("viewer left")
    rest = list(iter(lambda: session.get(0), None))
    assert session.ended == "viewer left"
    frames = _decode([init, first, *rest])
    assert len(frames) == len(packets) - 30


def test_slow_consumer_skips_to_keyframes_and_memory_stays_bounded(clock: FakeClock) -> None:
    info, packets = _stream("h264", seconds=8.0)
    settings = LiveSettings(frames_per_fragment=2, max_queued=4)
    session = LiveSession(info, None, settings, clock)
    peak = 0
    for p in packets:  # nobody reads
        session.push(p)
        peak = max(peak, session.queued)
    assert peak <= settings.max_queued + 2
    assert session.skips >= 1
    session.stop()
    taken = list(iter(lambda: session.get(0), None))
    frames = _decode(taken)  # what was kept still plays: skips only ever land on keyframes
    assert (
        len(frames) == sum(f.frames for f in taken) < len([p for p in packets if p.kind == "video"])
    )
    assert session._fragmenter.skipped_packets > 0


def test_skipped_stream_stays_continuous_and_decodable(clock: FakeClock) -> None:
    info, packets = _stream("h264", seconds=4.0)
    session = LiveSession(info, None, LiveSettings(frames_per_fragment=2, max_queued=100), clock)
    out: list[LiveFragment] = []
    for i, p in enumerate(packets):
        if i == 14:
            session.behind()  # frames 14..19 are dropped, the stream resumes at keyframe 20
        session.push(p)
    session.stop()
    out = list(iter(lambda: session.get(0), None))
    assert session.skips == 1
    frames = _decode(out)
    assert len(frames) == len(packets) - 6
    times = [f.time for f in frames]
    steps = [b - a for a, b in itertools.pairwise(times)]
    assert max(steps) == pytest.approx(1 / FPS, abs=1e-3)  # no hole for the player to stall on
    assert frames[14].key_frame


def test_time_limit_and_camera_reconnect_end_the_session(clock: FakeClock) -> None:
    info, packets = _stream("h264")
    session = LiveSession(info, None, LiveSettings(max_session_seconds=1.0), clock)
    for p in packets[:10]:
        session.push(p)
    clock.advance(1.5)
    session.push(packets[10])
    assert session.ended == "time limit reached"
    drained = list(iter(lambda: session.get(0), None))
    assert sum(f.frames for f in drained) == 10
    silent = LiveSession(info, None, LiveSettings(max_session_seconds=1.0), clock)
    silent.push(packets[0])
    clock.advance(2.0)  # the camera sends nothing more: the viewer's get() ends it
    assert [f.is_init for f in iter(lambda: silent.get(0), None)] == [True, False]
    assert silent.ended == "time limit reached"
    other = LiveSession(info, None, LiveSettings(), clock)
    other.push(packets[0])
    p = packets[1]
    other.push(MediaPacket(p.packet, p.kind, p.pts, p.keyframe, p.size, p.epoch + 1, p.arrived))
    assert other.ended is not None and "reconnected" in other.ended


def test_live_frames_match_what_camsim_drew() -> None:
    # "walkers": a person crosses from 2.5 s on; the session starts at the keyframe at 3 s
    scene = make_scene("walkers", width=192, height=112, fps=FPS, duration=20.0, seed=0)
    info, packets = demux(encode_mp4(scene, "h264", gop=15, frames=75))
    fragments = _run(info, packets[31:], LiveSettings(frames_per_fragment=3))
    start = fragments[1].source_first  # camera time of the first frame sent
    frames = _decode(fragments)
    assert start == pytest.approx(3.0) and len(frames) == 75 - 45
    for frame in frames[::7]:
        index = round((start + frame.time) * FPS)  # camera timeline -> scene frame index
        assert scene.objects_at(index)  # someone is in the picture
        got = luma(frame)
        right = block_error(got, scene.render(index)[0])
        neighbour = min(block_error(got, scene.render(index + d)[0]) for d in (-1, 1))
        assert right < 6.0 and neighbour > max(6.0, 2 * right), (index, right, neighbour)


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    end = len(data) if end is None else end
    out = []
    while start + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, start)
        out.append((kind, start + 8, start + size))
        start += size
    return out


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_fragments_have_the_structure_media_source_extensions_need(codec: str) -> None:
    info, packets = _stream(codec)
    fragments = _run(info, packets, LiveSettings(frames_per_fragment=3))
    init = fragments[0].data
    kinds = [k for k, _, _ in _boxes(init)]
    assert kinds == [b"ftyp", b"moov"]
    moov = next((s, e) for k, s, e in _boxes(init) if k == b"moov")
    inside = [k for k, _, _ in _boxes(init, *moov)]
    assert b"mvex" in inside  # fragmented: the samples live in moof boxes
    sequence = []
    for fragment in fragments[1:]:
        top = _boxes(fragment.data)
        assert [k for k, _, _ in top] == [b"moof", b"mdat"] * (len(top) // 2)
        for kind, s, e in top:
            if kind != b"moof":
                continue
            children = _boxes(fragment.data, s, e)
            mfhd = next(c for c in children if c[0] == b"mfhd")
            sequence.append(struct.unpack_from(">I", fragment.data, mfhd[1] + 4)[0])
            for _, ts, te in (c for c in children if c[0] == b"traf"):
                parts = {k: (ps, pe) for k, ps, pe in _boxes(fragment.data, ts, te)}
                assert b"tfdt" in parts and b"trun" in parts
                flags = int.from_bytes(
                    fragment.data[parts[b"tfhd"][0] + 1 : parts[b"tfhd"][0] + 4], "big"
                )
                assert flags & 0x020000  # default-base-is-moof
    assert sequence == list(range(sequence[0], sequence[0] + len(sequence)))


def test_mime_codec_names_the_stream_for_media_source() -> None:
    h264 = _run(*_stream("h264"), LiveSettings())[0].data
    h265 = _run(*_stream("h265"), LiveSettings())[0].data
    info, _ = _stream("h264")
    profile = {"High": "64", "Main": "4D", "Constrained Baseline": "42"}[info.video.profile]
    assert mime_codec(h264).startswith(f"avc1.{profile}")
    assert len(mime_codec(h264)) == len("avc1.64000C")
    assert mime_codec(h265).startswith("hvc1.1.6.L")  # Main profile, main tier
