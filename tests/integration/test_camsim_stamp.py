"""camsim's send-time stamps (``--stamp``): an SEI message per access unit that FFmpeg's
decoders hand back as side data and that survives stream copy into fMP4 fragments."""

from __future__ import annotations

import asyncio
import io
import random
import time
from typing import Any

import av
import pytest

from privastead.camsim.rtp import Codec
from privastead.camsim.server import RtspServer
from privastead.camsim.stamp import (
    escape,
    frame_stamp,
    frame_user_data,
    read_stamp,
    sample_stamp,
    sei_nal,
    unescape,
)
from privastead.media.fmp4 import track_samples
from support.rtsp import READ_OPTIONS, box_stream


def _prefixed(*nals: bytes) -> bytes:
    return b"".join(len(n).to_bytes(4, "big") + n for n in nals)


def test_emulation_prevention_round_trips() -> None:
    rng = random.Random(1)
    for _ in range(200):
        raw = bytes(rng.choice((0, 0, 0, 1, 2, 3, 0x80, 0xFF)) for _ in range(rng.randrange(40)))
        escaped = escape(raw)
        assert unescape(escaped) == raw
        # no start code or reserved pattern can appear inside a NAL unit
        assert not any(
            escaped[i : i + 2] == b"\0\0" and escaped[i + 2] <= 3 and escaped[i + 2] != 3
            for i in range(len(escaped) - 2)
        )


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_a_stamp_is_read_back_from_an_mp4_sample(codec: Codec) -> None:
    slice_nal = b"\x65\x88\x84" if codec == "h264" else b"\x26\x01\xaf"
    for when in (1.0, 1_700_000_000.123456, 0.000001):  # 1.0 s = 00 00 00 00 00 0f 42 40
        sample = _prefixed(sei_nal(codec, when), slice_nal)
        assert sample_stamp(codec, sample) == pytest.approx(when, abs=1e-6)
    assert sample_stamp(codec, _prefixed(slice_nal)) is None
    assert read_stamp(b"\x00" * 24) is None  # another user-data SEI (x264 writes one)


def _read(url: str, count: int) -> tuple[list[float | None], bytes, list[float]]:
    """Decoded frames' stamps, and the same packets remuxed into per-frame fMP4 fragments
    (as the hub's livestream muxer does), with the wall-clock window of the read."""
    start = time.time()
    stamps: list[float | None] = []
    out = io.BytesIO()
    with av.open(url, options=READ_OPTIONS, timeout=(5.0, 3.0)) as container:
        stream = container.streams.video[0]
        flags = "frag_every_frame+empty_moov+default_base_moof"
        with av.open(out, "w", format="mp4", options={"movflags": flags}) as mp4:
            copy: Any = mp4.add_stream_from_template(stream)
            first: int | None = None
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                frames = packet.decode()
                if packet.pts is not None:  # FFmpeg's RTSP demuxer may leave the first unset
                    first = packet.pts if first is None else first
                    packet.pts = packet.dts = packet.pts - first
                    packet.stream = copy
                    mp4.mux(packet)
                for frame in frames:
                    stamp = frame_stamp(frame)
                    # PyAV from 18.1.1 hands out one side-data entry per type: where x264's
                    # own user-data SEI (its first frame) shares the frame, that one shows.
                    foreign = any(read_stamp(d) is None for d in frame_user_data(frame))
                    stamps.append(-1.0 if stamp is None and foreign else stamp)
                if len(stamps) >= count:
                    break
    return stamps, out.getvalue(), [start, time.time()]


@pytest.mark.parametrize("codec", ["h264", "h265"])
async def test_every_frame_carries_its_send_time_through_rtsp_decode_and_fmp4(
    codec: Codec,
) -> None:
    server = RtspServer({"/main": box_stream(codec, duration=1.0)}, port=0, stamp=True)
    plain = RtspServer({"/main": box_stream(codec, duration=1.0)}, port=0)
    await server.start()
    await plain.start()
    try:
        (stamps, fmp4, (start, end)), (unstamped, _, _) = await asyncio.gather(
            asyncio.to_thread(_read, server.urls()[0], 20),
            asyncio.to_thread(_read, plain.urls()[0], 5),
        )
    finally:
        await server.close()
        await plain.close()
    # Every frame shows its stamp, or (PyAV from 18.1.1) x264's SEI in its place (-1).
    assert len(stamps) >= 20 and None not in stamps
    if av.__version__ == "18.1.0":  # the last that lists every entry
        assert -1.0 not in stamps
    sent = [s for s in stamps if s is not None and s >= 0]
    assert all(start <= s <= end for s in sent)
    assert sent == sorted(sent) and len(set(sent)) == len(sent)  # one per frame, in order
    assert unstamped and set(unstamped) <= {None, -1.0}  # off by default: no stamp at all
    # stream copy into fMP4 keeps them: read straight from the samples, no decoding
    samples = track_samples(fmp4[fmp4.index(b"moof") - 4 :])
    from_samples = [sample_stamp(codec, s) for s in samples]
    assert len(from_samples) >= len(sent) - 2 and None not in from_samples
    extra = {round(s, 6) for s in from_samples if s is not None} - {round(s, 6) for s in sent}
    assert len(extra) <= stamps.count(-1.0)  # only those x264's SEI hid when decoding
