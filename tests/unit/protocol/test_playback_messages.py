"""Playback messages and payloads: ranges bounded, spans ordered, payloads padded and
bound to their session, acknowledgements strict."""

from __future__ import annotations

import pytest

from privastead.errors import DecodeError
from privastead.protocol.codec import decode_message
from privastead.protocol.envelope import padme
from privastead.protocol.playback import MAX_CHUNK, PlaybackPayload, ack_text, chunks, parse_ack
from privastead.protocol.playback_messages import (
    MAX_PLAYBACK_SECONDS,
    PlaybackAnswer,
    PlaybackRequest,
    RecordingsAnswer,
    RecordingsRequest,
)

REQ = "ab" * 16
SESSION = "cd" * 16
T = 1_800_000_000.0


@pytest.mark.parametrize(
    ("start", "end"),
    [(T, T), (T, T - 1), (T, T + MAX_PLAYBACK_SECONDS + 1), (-1.0, T), (T, float("nan"))],
)
def test_a_playback_range_must_be_forward_and_bounded(start: float, end: float) -> None:
    with pytest.raises(DecodeError):
        PlaybackRequest("door", REQ, start, end)


def test_a_listing_may_cover_a_week_but_not_a_month() -> None:
    RecordingsRequest("door", REQ, T, T + 7 * 86400)
    with pytest.raises(DecodeError):
        RecordingsRequest("door", REQ, T, T + 30 * 86400)


def test_spans_must_be_sorted_and_disjoint() -> None:
    with pytest.raises(DecodeError, match="sorted"):
        RecordingsAnswer("door", REQ, ((5.0, 6.0), (1.0, 2.0)), False, 1)
    with pytest.raises(DecodeError, match="sorted"):
        RecordingsAnswer("door", REQ, ((1.0, 3.0), (2.0, 4.0)), False, 1)


def test_an_answer_is_either_a_stream_or_a_known_error() -> None:
    with pytest.raises(DecodeError, match="init and a fragment"):
        PlaybackAnswer("door", REQ, 1, SESSION, 2, T, T + 1, 1.0, 1, 100)
    with pytest.raises(DecodeError, match="error must be one of"):
        PlaybackAnswer("door", REQ, 1, error="sorry")
    refused = PlaybackAnswer("door", REQ, 1, error="busy", detail="later")
    assert decode_message(refused.encode()) == refused


def test_payloads_round_trip_padded() -> None:
    payload = PlaybackPayload(SESSION, 7, False, True, False, 12.5, b"moof" + bytes(1000))
    raw = payload.encode()
    assert len(raw) == padme(len(raw))
    assert PlaybackPayload.decode(raw) == payload
    with pytest.raises(DecodeError, match="padding"):
        PlaybackPayload.decode(raw[:-1] + b"\x01")
    with pytest.raises(DecodeError):
        PlaybackPayload.decode(b"PVLV" + raw[4:])


def test_a_large_piece_is_cut_into_chunks_with_one_final() -> None:
    piece = bytes(range(256)) * (MAX_CHUNK // 100)
    parts = chunks(SESSION, 3, piece, is_init=False, media_time=4.0, final=True)
    assert [p.index for p in parts] == list(range(3, 3 + len(parts)))
    assert [p.more for p in parts] == [True] * (len(parts) - 1) + [False]
    assert [p.final for p in parts] == [False] * (len(parts) - 1) + [True]
    assert b"".join(p.data for p in parts) == piece


def test_acks_are_strict() -> None:
    import json

    assert parse_ack(json.loads(ack_text(41))) == 41
    for bad in ({"type": "ack", "index": True}, {"type": "ack", "index": -1}, {"index": 3}):
        assert parse_ack(bad) is None
