"""Camera audio (AAC, G.711 mu-law and A-law, Opus) through the hub into clips and livestreams.

A real camsim serves its stepping tone (440 Hz in the loop's first second, 550 Hz in the next,
then 660, 770) over RTSP with a keyframe at every whole second; the hub's ingest reads it
(G.711 becomes AAC, AAC and Opus are copied); the clip writer and the live fragmenter mux it
beside the stream-copied video. Each test decodes what came out and listens: the pitch proves
the audio is the camera's, and the pitch steps falling on the video's whole seconds (within
0.1 s, where the clip starts on a keyframe) prove it is in step with the picture.
"""

from __future__ import annotations

import io
import itertools
import stat
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from privastead.camsim.audio import tone
from privastead.media.fmp4 import fragment_info, mime_codec
from privastead.media.ingest import IngestSettings, MediaPacket, StreamInfo
from privastead.media.live import LiveFragmenter
from privastead.media.recorder import ClipWriter
from privastead.media.transcode import FragmentTranscoder, transcode_clip
from support.rtsp import box_stream, capture

CODECS = ["aac", "pcmu", "pcma", "opus"]
MUXED = {"aac": "aac", "pcmu": "aac", "pcma": "aac", "opus": "opus"}
FFMPEG = {"aac": "aac", "pcmu": "pcm_mulaw", "pcma": "pcm_alaw", "opus": "opus"}
PITCH = (440.0, 550.0, 660.0, 770.0)  # camsim's tone, one step per second


@pytest.fixture(scope="module", params=CODECS)
def recorded(request: pytest.FixtureRequest) -> tuple[str, StreamInfo, list[MediaPacket]]:
    codec = request.param
    info, packets = capture(box_stream("h264", duration=4.0), 3.2, audio=tone(4.0, codec=codec))
    return codec, info, packets


def decode_audio(data: bytes) -> tuple[np.ndarray, int, float]:
    """Mono samples of the first audio track, its sample rate and the first sample's time."""
    chunks, start, rate = [], None, 0
    with av.open(io.BytesIO(data)) as container:
        for frame in container.decode(audio=0):
            array = frame.to_ndarray().astype(np.float64)
            channels = frame.layout.nb_channels
            mono = (
                array.mean(axis=0)
                if frame.format.is_planar
                else array.reshape(-1, channels).mean(axis=1)
            )
            chunks.append(mono)
            rate = frame.sample_rate
            if start is None and frame.time is not None:
                start = frame.time
    return np.concatenate(chunks), rate, start or 0.0


def pitch(samples: np.ndarray, rate: int, start: float, at: float, span: float = 0.4) -> float:
    """The dominant frequency of the ``span`` seconds around media second ``at``."""
    first = round((at - span / 2 - start) * rate)
    window = samples[max(first, 0) : first + round(span * rate)]
    spectrum = np.abs(np.fft.rfft(window * np.hanning(len(window))))
    freqs = np.fft.rfftfreq(len(window), 1 / rate)
    band = (freqs > 100) & (freqs < 2000)
    return float(freqs[band][np.argmax(spectrum[band])])


def _step(heard: float) -> int:
    index = min(range(4), key=lambda i: abs(PITCH[i] - heard))
    assert abs(PITCH[index] - heard) < 20, heard
    return index


def assert_tone_in_step(data: bytes, seconds: int) -> None:
    samples, rate, start = decode_audio(data)
    assert np.sqrt(np.mean(samples**2)) > 0.02 * np.abs(samples).max() > 0  # not silence
    steps = [_step(pitch(samples, rate, start, s + 0.5)) for s in range(seconds)]
    assert steps == [(steps[0] + s) % 4 for s in range(seconds)]  # the camera's tone, in order
    for s in range(1, seconds):  # the pitch changes on the video's whole seconds
        before = _step(pitch(samples, rate, start, s - 0.1, span=0.15))
        after = _step(pitch(samples, rate, start, s + 0.1, span=0.15))
        assert (before, after) == (steps[s - 1], steps[s]), s


def video_frames(data: bytes) -> int:
    with av.open(io.BytesIO(data)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_camera_audio_reaches_the_clip_in_step(
    recorded: tuple[str, StreamInfo, list[MediaPacket]], tmp_path: Path
) -> None:
    codec, info, packets = recorded
    assert info.camera_audio == FFMPEG[codec]
    writer = ClipWriter("a", info, tmp_path / "a.mp4")
    for packet in packets:
        writer.write(packet)
    summary = writer.close()
    assert stat.S_IMODE(summary.path.stat().st_mode) == 0o600  # plaintext video: private
    data = summary.path.read_bytes()
    with av.open(io.BytesIO(data)) as clip:
        assert clip.streams.audio[0].codec_context.name == MUXED[codec]
        assert clip.streams.video[0].codec_context.name == "h264"  # video untouched
    assert video_frames(data) == summary.video_frames
    assert summary.audio_packets > 20
    assert_tone_in_step(data, 3)
    assert mime_codec(data).endswith(", opus" if codec == "opus" else ", mp4a.40.2")


def test_camera_audio_reaches_the_livestream(
    recorded: tuple[str, StreamInfo, list[MediaPacket]],
) -> None:
    codec, info, packets = recorded
    fragmenter = LiveFragmenter(info)
    pieces: list[bytes] = []
    for packet in packets:
        pieces.extend(f.data for f in fragmenter.push(packet))
    pieces.extend(f.data for f in fragmenter.close())
    mime = mime_codec(pieces[0])
    assert mime.startswith("avc1.") and mime.endswith("opus" if codec == "opus" else "mp4a.40.2")
    # every audio sample keeps its duration and the next one starts where it ends: what a
    # browser's audio renderer needs (FFmpeg's frag_every_frame broke exactly this)
    runs = [r for piece in pieces[1:] for r in fragment_info(piece) if r.track_id == 2]
    assert runs and all(r.duration > 0 for r in runs)
    assert all(b.base_time == a.base_time + a.duration for a, b in itertools.pairwise(runs))
    assert_tone_in_step(b"".join(pieces), 3)


@pytest.mark.parametrize(("policy", "expected"), [("aac", "aac"), ("off", None)])
def test_audio_policy_transcodes_opus_or_drops_audio(policy: str, expected: str | None) -> None:
    settings = IngestSettings(audio_policy=policy)  # type: ignore[arg-type]
    info, packets = capture(
        box_stream("h264", duration=4.0), 2.2, settings=settings, audio=tone(4.0, codec="opus")
    )
    audio = [p for p in packets if p.kind == "audio"]
    if expected is None:
        assert info.audio is None and not audio
    else:
        assert info.audio is not None and info.audio.codec_context.name == expected
        assert len(audio) > 20


@pytest.fixture(scope="module")
def h265_with_audio(tmp_path_factory: pytest.TempPathFactory) -> tuple[StreamInfo, list[Any], Path]:
    info, packets = capture(box_stream("h265", duration=4.0), 3.2, audio=tone(4.0, codec="pcmu"))
    writer = ClipWriter("h", info, tmp_path_factory.mktemp("h265") / "h.mp4")
    for packet in packets:
        writer.write(packet)
    return info, packets, writer.close().path


def test_h265_clip_transcode_keeps_the_audio(
    h265_with_audio: tuple[StreamInfo, list[Any], Path], tmp_path: Path
) -> None:
    _, _, path = h265_with_audio
    out = tmp_path / "h264.mp4"
    result = transcode_clip(path, out)
    assert not result.passthrough
    data = out.read_bytes()
    with av.open(io.BytesIO(data)) as clip, av.open(str(path)) as source:
        assert clip.streams.video[0].codec_context.name == "h264"
        assert clip.streams.audio[0].codec_context.name == "aac"
        copied = sum(1 for p in clip.demux(audio=0) if p.size)
        recorded = sum(1 for p in source.demux(audio=0) if p.size)
    assert copied == recorded
    assert_tone_in_step(data, 3)


def test_h265_live_transcode_keeps_the_audio(
    h265_with_audio: tuple[StreamInfo, list[Any], Path],
) -> None:
    info, packets, _ = h265_with_audio
    fragmenter = LiveFragmenter(info)
    transcoder = FragmentTranscoder()
    out: list[bytes] = []
    for packet in packets:
        for fragment in fragmenter.push(packet):
            out.extend(transcoder.push(fragment.data))
    for fragment in fragmenter.close():
        out.extend(transcoder.push(fragment.data))
    out.extend(transcoder.close())
    assert mime_codec(out[0]).startswith("avc1.") and mime_codec(out[0]).endswith("mp4a.40.2")
    assert_tone_in_step(b"".join(out), 3)
