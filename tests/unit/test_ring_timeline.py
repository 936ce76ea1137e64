"""The pre-roll ring and the ingest's timeline rebasing, with synthetic packets."""

from __future__ import annotations

from fractions import Fraction

import av

from privastead.media.ingest import MediaPacket, _Timeline
from privastead.media.ring import PacketRing

TB = Fraction(1, 90_000)


def _video(t: float, key: bool, epoch: int = 1, size: int = 100) -> MediaPacket:
    packet = av.Packet(b"\x00" * size)
    return MediaPacket(packet, "video", t, key, size, epoch)


def _feed(ring: PacketRing, seconds: float, fps: int = 10, gop: int = 10) -> None:
    for n in range(int(seconds * fps)):
        ring.push(_video(n / fps, n % gop == 0))


def test_ring_keeps_whole_gops_covering_the_pre_roll() -> None:
    ring = PacketRing(keep_seconds=2.5)
    _feed(ring, 10.0)  # newest frame at 9.9 s, keyframes every second
    assert ring.oldest == 7.0  # the last keyframe at or before 9.9 - 2.5 = 7.4
    assert ring.since(8.5)[0].pts == 8.0
    assert ring.since(0.0)[0].pts == 7.0  # older than the ring: its oldest keyframe
    assert len(ring) == 30 and ring.bytes == 3000


def test_ring_is_bounded_by_bytes_and_reset_by_a_new_connection() -> None:
    ring = PacketRing(keep_seconds=60.0, max_bytes=2500)
    _feed(ring, 10.0)
    assert ring.bytes <= 2500 and ring.oldest == 8.0
    ring.push(_video(12.0, False, epoch=2))  # not a keyframe: nothing usable yet
    assert len(ring) == 0
    ring.push(_video(12.1, True, epoch=2))
    assert len(ring) == 1 and ring.oldest == 12.1


def _packet(pts: int | None, dts: int | None = None) -> av.Packet:
    packet = av.Packet(b"\x00")
    packet.pts, packet.dts = pts, pts if dts is None else dts
    return packet


def test_timeline_rebases_and_fills_missing_timestamps() -> None:
    timeline = _Timeline(start=100.0)
    origin = 5.0  # the connection's first video pts, seconds
    first = _packet(450_000)
    assert timeline.place(first, 0, TB, origin) == 100.0
    assert abs(timeline.place(_packet(459_000), 0, TB, origin) - 100.1) < 1e-9  # type: ignore[operator]
    # a packet without timestamps gets the previous step
    lost = _packet(None)
    assert abs(timeline.place(lost, 0, TB, origin) - 100.2) < 1e-9  # type: ignore[operator]
    assert lost.pts == lost.dts == round(100.2 * 90_000)
    # a timestamp going backwards is forced forward: muxers need increasing dts
    back = _packet(450_000)
    timeline.place(back, 0, TB, origin)
    assert back.dts == lost.dts + 1  # type: ignore[operator]


def test_timeline_drops_untimed_packets_before_the_first_timed_one() -> None:
    timeline = _Timeline(start=0.0)
    assert timeline.place(_packet(None), 0, TB, 0.0) is None
