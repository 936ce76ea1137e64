"""RTP payloading of H.264 (RFC 6184) and H.265 (RFC 7798) access units, of audio frames, and
Annex-B parsing.

An access unit is payloaded once into a list of RTP payloads (single NAL unit packets and
fragmentation units); each session then only prepends its own 12-byte RTP header. That keeps
the per-client cost of a 4K stream at a header write and a socket write per packet.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

Codec = Literal["h264", "h265"]

# RTP over TCP has a 16-bit length; the MTU-sized default keeps packets like a UDP camera's.
DEFAULT_MAX_PAYLOAD = 1400
PAYLOAD_TYPE = 96
CLOCK_RATE = 90_000

_START_CODE = re.compile(b"\x00\x00\x01")

H264_SPS, H264_PPS, H264_IDR, H264_FU_A = 7, 8, 5, 28
H265_VPS, H265_SPS, H265_PPS, H265_FU = 32, 33, 34, 49


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B byte string, without start codes (3- or 4-byte)."""
    starts = [m.end() for m in _START_CODE.finditer(data)]
    nals = []
    for i, start in enumerate(starts):
        end = starts[i + 1] - 3 if i + 1 < len(starts) else len(data)
        nal = data[start:end]
        # A 4-byte start code leaves its leading zero at the end of the previous unit.
        nal = nal.rstrip(b"\x00") if i + 1 < len(starts) else nal
        if nal:
            nals.append(nal)
    return nals


def join_annexb(nals: list[bytes]) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + nal for nal in nals)


def nal_type(codec: Codec, nal: bytes) -> int:
    return nal[0] & 0x1F if codec == "h264" else (nal[0] >> 1) & 0x3F


def parameter_set_types(codec: Codec) -> tuple[int, ...]:
    return (H264_SPS, H264_PPS) if codec == "h264" else (H265_VPS, H265_SPS, H265_PPS)


def payload_nal(codec: Codec, nal: bytes, max_payload: int = DEFAULT_MAX_PAYLOAD) -> list[bytes]:
    """RTP payloads for one NAL unit: the unit itself, or fragmentation units if too large."""
    if len(nal) <= max_payload:
        return [nal]
    if codec == "h264":
        header_len = 1
        indicator = bytes([(nal[0] & 0xE0) | H264_FU_A])
        kind = nal[0] & 0x1F
    else:
        header_len = 2
        # PayloadHdr keeps F, LayerId and TID of the unit and sets Type = 49 (FU).
        indicator = bytes([(nal[0] & 0x81) | (H265_FU << 1), nal[1]])
        kind = (nal[0] >> 1) & 0x3F
    body = memoryview(nal)[header_len:]
    chunk = max_payload - header_len - 1
    out = []
    for offset in range(0, len(body), chunk):
        start = 0x80 if offset == 0 else 0
        end = 0x40 if offset + chunk >= len(body) else 0
        out.append(indicator + bytes([start | end | kind]) + body[offset : offset + chunk])
    return out


@dataclass(frozen=True)
class Payloads:
    """One access unit as RTP payloads; the marker bit goes on the last one."""

    payloads: tuple[bytes, ...]
    size: int


def payload_access_unit(
    codec: Codec, annexb: bytes, max_payload: int = DEFAULT_MAX_PAYLOAD
) -> Payloads:
    payloads: list[bytes] = []
    for nal in split_annexb(annexb):
        payloads.extend(payload_nal(codec, nal, max_payload))
    return Payloads(tuple(payloads), sum(len(p) for p in payloads))


def aac_payload(frame: bytes) -> bytes:
    """RFC 3640 ``mpeg4-generic`` AAC-hbr payload of one raw AAC frame: a 16-bit AU-headers
    length (16 bits: one header) and one AU header (13-bit size, 3-bit index 0)."""
    return struct.pack("!HH", 16, len(frame) << 3) + frame


def audio_payload(codec: str, frame: bytes) -> bytes:
    """The RTP payload of one audio frame: RFC 3640 for AAC, the bytes themselves for G.711
    (RFC 3551) and Opus (RFC 7587)."""
    return aac_payload(frame) if codec == "aac" else frame


def rtp_packets(
    unit: Payloads,
    *,
    seq: int,
    timestamp: int,
    ssrc: int,
    payload_type: int = PAYLOAD_TYPE,
) -> Iterator[bytes]:
    """The RTP packets (RFC 3550 fixed header + payload) of ``unit``."""
    last = len(unit.payloads) - 1
    for i, payload in enumerate(unit.payloads):
        marker = 0x80 if i == last else 0
        header = struct.pack(
            "!BBHII",
            0x80,
            marker | payload_type,
            (seq + i) & 0xFFFF,
            timestamp & 0xFFFFFFFF,
            ssrc,
        )
        yield header + payload


def interleaved(channel: int, packet: bytes) -> bytes:
    """An RTP packet framed for RTSP interleaved transport over TCP (``$``, channel, length)."""
    return struct.pack("!cBH", b"$", channel, len(packet)) + packet


__all__ = [
    "CLOCK_RATE",
    "DEFAULT_MAX_PAYLOAD",
    "PAYLOAD_TYPE",
    "Codec",
    "Payloads",
    "aac_payload",
    "audio_payload",
    "interleaved",
    "join_annexb",
    "nal_type",
    "parameter_set_types",
    "payload_access_unit",
    "payload_nal",
    "rtp_packets",
    "split_annexb",
]
