"""camsim against a real RTSP client (FFmpeg via PyAV) over loopback TCP."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import av
import pytest

from privastead.camsim.auth import DigestAuth
from privastead.camsim.encoder import EncodedStream, load, save
from privastead.camsim.filesource import load_file
from privastead.camsim.server import RtspServer
from support.rtsp import box_stream, read_frames, write_mp4


async def _serving(mounts: dict[str, EncodedStream], **kwargs: object) -> RtspServer:
    server = RtspServer(mounts, port=0, **kwargs)  # type: ignore[arg-type]
    await server.start()
    return server


@pytest.fixture
async def server() -> AsyncIterator[RtspServer]:
    srv = await _serving(
        {
            "/main": box_stream("h264", duration=2.0, motion=(0.5, 1.5)),
            "/sub": box_stream("h265", width=160, height=120, duration=1.0),
        }
    )
    yield srv
    await srv.close()


async def test_h264_and_h265_paths_decode_with_continuous_timestamps(server: RtspServer) -> None:
    main, sub = server.urls()
    # 40 frames spans more than one 30-frame loop: timestamps must continue across the loop point.
    r264, r265 = await asyncio.gather(
        asyncio.to_thread(read_frames, main, 40), asyncio.to_thread(read_frames, sub, 20)
    )
    assert (r264.codec, r264.width, r264.height, r264.frames) == ("h264", 320, 240, 40)
    assert (r265.codec, r265.width, r265.height, r265.frames) == ("hevc", 160, 120, 20)
    assert r264.keyframe_first and r265.keyframe_first
    pts = [p for p in r264.pts if p is not None]
    steps = {b - a for a, b in itertools.pairwise(pts)}
    assert steps == {6000}  # 90 kHz / 15 fps, including across the loop point


async def test_two_clients_at_once_each_start_on_a_keyframe(server: RtspServer) -> None:
    url = server.urls()[0]
    a, b = await asyncio.gather(
        asyncio.to_thread(read_frames, url, 20), asyncio.to_thread(read_frames, url, 20)
    )
    assert a.frames == b.frames == 20
    assert a.keyframe_first and b.keyframe_first


async def test_digest_auth_rejects_then_accepts(tmp_path: Path) -> None:
    srv = await _serving(
        {"/main": box_stream("h264", duration=1.0)}, auth=DigestAuth("admin", "s3cret pass")
    )
    try:
        url = srv.urls()[0]
        with pytest.raises(av.FFmpegError) as info:
            await asyncio.to_thread(read_frames, url, 5)
        assert "401" in str(info.value) or "Unauthorized" in str(info.value)
        wrong = url.replace("rtsp://", "rtsp://admin:nope@")
        with pytest.raises(av.FFmpegError):
            await asyncio.to_thread(read_frames, wrong, 5)
        good = url.replace("rtsp://", "rtsp://admin:s3cret%20pass@")
        result = await asyncio.to_thread(read_frames, good, 5)
        assert result.frames == 5
    finally:
        await srv.close()


async def test_udp_setup_is_refused_with_461_when_udp_is_off() -> None:
    server = await _serving({"/main": box_stream("h264", duration=1.0)}, udp=False)
    reader, writer = await asyncio.open_connection(server.host, server.port)
    url = server.urls()[0]
    writer.write(
        f"SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\n"
        "Transport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n".encode()
    )
    reply = await reader.readuntil(b"\r\n\r\n")
    assert reply.startswith(b"RTSP/1.0 461")
    writer.close()
    await writer.wait_closed()
    await server.close()


async def test_looped_mp4_file_and_cache_round_trip(tmp_path: Path) -> None:
    stream = box_stream("h264", duration=1.0, motion=(0.2, 0.8))
    save(stream, tmp_path / "cache.bin")
    assert load(tmp_path / "cache.bin") == stream
    write_mp4(stream, tmp_path / "clip.mp4")
    looped = load_file(tmp_path / "clip.mp4")
    assert looped.frame_count == stream.frame_count
    assert [u.keyframe for u in looped.units] == [u.keyframe for u in stream.units]
    srv = await _serving({"/main": looped})
    try:
        result = await asyncio.to_thread(read_frames, srv.urls()[0], 25)
        assert result.frames == 25 and result.keyframe_first
    finally:
        await srv.close()


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_encoding_is_deterministic(codec: str) -> None:
    from privastead.camsim.encoder import encode
    from support.frames import BoxSource

    source = BoxSource(width=160, height=120, duration=1.0, seed=3, motion=(0.2, 0.8))
    first, second = encode(source, codec), encode(source, codec)  # type: ignore[arg-type]
    assert first == second
    assert first.units[0].keyframe and sum(u.keyframe for u in first.units) == 1
    other = encode(BoxSource(width=160, height=120, duration=1.0, seed=4), codec)  # type: ignore[arg-type]
    assert other.units != first.units


def test_encoded_streams_are_cached_per_encoder_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another PyAV build encodes other bytes: camsim must not serve one build's stream as
    # another's (tests compare what they decode with what was encoded).
    import av

    from privastead.camsim.encoder import encode_cached, encoder_build
    from support.frames import BoxSource

    source = BoxSource(width=160, height=120, duration=0.5, seed=3)
    first = encode_cached(source, "h264", tmp_path, {"scene": "box"})  # type: ignore[arg-type]
    assert encode_cached(source, "h264", tmp_path, {"scene": "box"}) == first  # type: ignore[arg-type]
    assert len(list(tmp_path.glob("*.bin"))) == 1
    build = encoder_build()
    monkeypatch.setattr(av, "__version__", "0.0.0+other")
    assert encoder_build() != build
    encode_cached(source, "h264", tmp_path, {"scene": "box"})  # type: ignore[arg-type]
    assert len(list(tmp_path.glob("*.bin"))) == 2
