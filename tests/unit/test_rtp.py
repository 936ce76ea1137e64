"""RTP payloading and digest auth, checked byte by byte."""

from __future__ import annotations

import hashlib

from privastead.camsim.auth import DigestAuth
from privastead.camsim.rtp import (
    interleaved,
    join_annexb,
    payload_access_unit,
    payload_nal,
    rtp_packets,
    split_annexb,
)


def test_split_annexb_handles_3_and_4_byte_start_codes() -> None:
    data = b"\x00\x00\x00\x01\x67\xaa\x00\x00\x01\x68\xbb\x00\x00\x00\x01\x65\xcc\xdd"
    assert split_annexb(data) == [b"\x67\xaa", b"\x68\xbb", b"\x65\xcc\xdd"]
    assert split_annexb(join_annexb([b"\x41\x01", b"\x41\x02"])) == [b"\x41\x01", b"\x41\x02"]


def _reassemble_h264(payloads: list[bytes]) -> bytes:
    first = payloads[0]
    assert first[0] & 0x1F == 28
    assert payloads[0][1] & 0x80 and payloads[-1][1] & 0x40
    header = bytes([(first[0] & 0xE0) | (first[1] & 0x1F)])
    return header + b"".join(p[2:] for p in payloads)


def test_h264_fu_a_round_trip() -> None:
    nal = bytes([0x65]) + bytes(range(256)) * 20
    payloads = payload_nal("h264", nal, 1000)
    assert len(payloads) > 1 and all(len(p) <= 1000 for p in payloads)
    assert not any(p[1] & 0x40 for p in payloads[:-1])
    assert _reassemble_h264(payloads) == nal
    assert payload_nal("h264", b"\x41\x01\x02", 1000) == [b"\x41\x01\x02"]


def test_h265_fu_round_trip() -> None:
    nal = bytes([0x26, 0x01]) + bytes(range(256)) * 20  # IDR_W_RADL, type 19
    payloads = payload_nal("h265", nal, 1000)
    assert all((p[0] >> 1) & 0x3F == 49 for p in payloads)
    assert all(p[2] & 0x3F == 19 for p in payloads)
    assert payloads[0][2] & 0x80 and payloads[-1][2] & 0x40
    rebuilt = bytes([(payloads[0][0] & 0x81) | (19 << 1), payloads[0][1]])
    rebuilt += b"".join(p[3:] for p in payloads)
    assert rebuilt == nal


def test_rtp_packets_mark_the_last_packet_and_count_sequence() -> None:
    unit = payload_access_unit(
        "h264", join_annexb([b"\x67\x01", b"\x65" + b"\x00\x11" * 1000]), 500
    )
    raw = list(rtp_packets(unit, seq=65535, timestamp=1 << 32, ssrc=7))
    assert all(p[0] == 0x80 for p in raw)  # RTP version 2: what goes into a UDP datagram
    packets = [interleaved(2, p) for p in raw]  # and over TCP: "$", channel, length
    assert all(p[:2] == b"$\x02" for p in packets)
    assert all(int.from_bytes(p[2:4], "big") == len(r) for p, r in zip(packets, raw, strict=True))
    assert [int.from_bytes(p[4 + 2 : 4 + 4], "big") for p in packets][:2] == [65535, 0]
    markers = [bool(p[4 + 1] & 0x80) for p in packets]
    assert markers == [False] * (len(packets) - 1) + [True]
    assert all(int.from_bytes(p[4 + 4 : 4 + 8], "big") == 0 for p in packets)


def test_digest_auth_accepts_rfc2617_responses_only() -> None:
    auth = DigestAuth("admin", "pw")

    def md5(s: str) -> str:
        return hashlib.md5(s.encode()).hexdigest()

    ha1, ha2 = md5(f"admin:{auth.realm}:pw"), md5("DESCRIBE:rtsp://h/main")
    good = md5(f"{ha1}:{auth.nonce}:00000001:abc:auth:{ha2}")
    header = (
        f'Digest username="admin", realm="{auth.realm}", nonce="{auth.nonce}", '
        f'uri="rtsp://h/main", response="{good}", qop=auth, nc=00000001, cnonce="abc"'
    )
    assert auth.check("DESCRIBE", header)
    assert not auth.check("PLAY", header)
    assert not auth.check("DESCRIBE", header.replace(good, "0" * 32))
    assert not auth.check("DESCRIBE", None)
    legacy = md5(f"{ha1}:{auth.nonce}:{ha2}")
    assert auth.check(
        "DESCRIBE",
        f'Digest username="admin", realm="{auth.realm}", '
        f'nonce="{auth.nonce}", uri="rtsp://h/main", response="{legacy}"',
    )


def test_basic_auth_accepts_the_right_pair_only_and_counts_refusals() -> None:
    import base64

    from privastead.camsim.auth import BasicAuth

    auth = BasicAuth("admin", "p:w")

    def header(pair: bytes) -> str:
        return "Basic " + base64.b64encode(pair).decode()

    assert auth.check("DESCRIBE", header(b"admin:p:w"))
    assert not auth.check("DESCRIBE", header(b"admin:p:x"))
    assert not auth.check("DESCRIBE", header(b"root:p:w"))
    assert not auth.check("DESCRIBE", "Basic !!not-base64!!")
    assert not auth.check("DESCRIBE", None)
    assert auth.refused == 4
    assert auth.challenge().startswith("Basic realm=")
