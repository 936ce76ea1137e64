from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privastead.errors import DecodeError
from privastead.protocol.codec import Message, decode_message, encode_message
from privastead.protocol.envelope import Envelope, MessageKind, decode_envelope, encode_envelope
from privastead.protocol.health_messages import ClockProbe, ResendGone
from privastead.protocol.messages import (
    ClipEnd,
    ClipFragment,
    Heartbeat,
    LiveAnswer,
    LiveRequest,
    LiveStop,
    Notification,
    ResendRequest,
    message_id,
)
from privastead.protocol.pairing_messages import (
    CameraGrant,
    GroupGrant,
    PairAccept,
    PairKeyPackages,
    PairReject,
    ReAddAccept,
    ReAddRequest,
)
from privastead.protocol.playback_messages import (
    PlaybackAnswer,
    PlaybackRequest,
    RecordingsAnswer,
    RecordingsRequest,
)

EVENT = "0123456789abcdef" * 2
CLIP = "fedcba9876543210" * 2
DEVICE = "00112233445566778899aabbccddeeff"
JPEG = b"\xff\xd8\xff\xe0 a thumbnail \x00\x00"


def samples() -> list[Message]:
    grant = GroupGrant("events", "ab" * 16, b"sigkey", b"welcome bytes", 17)
    return [
        Notification("front door", EVENT, 1_700_000_000.25, 0.8, ((0.1, 0.2, 0.3, 0.4),), 7, JPEG),
        Notification("garage", EVENT, 1_700_000_000, 0, (), 0),
        ClipFragment(CLIP, EVENT, 0, False, True, 8, b"ftyp...moov"),
        ClipFragment(CLIP, EVENT, 5, True, False, 13, b"moof...mdat" + bytes(100)),
        Heartbeat(
            1_700_000_001.5,
            3,
            "0.1.0",
            {"front": {"fps": 25.0, "ok": True, "err": None}},
            {"front/events": 4, "front/control": 2},
            {"pending": 3, "dropped_clips": 0},
        ),
        ResendRequest("front", "events", ((3, 5), (9, 9))),
        LiveRequest("front", CLIP),
        LiveStop("front", CLIP),
        ReAddRequest(DEVICE, "front", {"events": b"kp1", "control": b"kp2"}, "stuck epoch"),
        PairKeyPackages(
            "Anna's phone", {"front": {"events": b"kp", "live": b"kp2", "control": b"k"}}
        ),
        PairAccept(DEVICE, "relay-token_123", (CameraGrant("front", (grant,)),)),
        ReAddAccept(DEVICE, 12, CameraGrant("front", (grant,))),
        ClipEnd(CLIP, EVENT, 4, "hub_restarted", 14),
        # (kept between the entries tests name by positive and by negative index)
        PlaybackRequest("front", CLIP, 1_700_000_000.5, 1_700_000_600.0),
        PlaybackAnswer(
            "front", CLIP, 20, EVENT, 5, 1_700_000_000.0, 1_700_000_601.0, 601.0, 602, 9_000_000
        ),
        PlaybackAnswer(
            "front",
            CLIP,
            21,
            error="nothing_recorded",
            detail="nothing of front is recorded in that range",
            nearby=((1_600_000_000.0, 1_600_000_060.0), (1_600_000_100.0, 1_600_000_200.0)),
        ),
        RecordingsRequest("front", CLIP, 1_700_000_000.0, 1_700_086_400.0),
        RecordingsAnswer("front", CLIP, ((1.0, 2.0), (3.0, 4.5)), False, 22),
        LiveAnswer("front", CLIP, EVENT, 4, 17),
        LiveAnswer("front", CLIP, CLIP, 0, 18, "camera front is not connected"),
        Heartbeat(
            1_700_000_002.0,
            4,
            "0.1.0",
            {},
            {},
            {},
            sent={"front/events": 41, "front/control": 3},
            answers=(CLIP, EVENT),
        ),
        ClockProbe("front", CLIP),
        ResendGone("front", "events", ((2, 4),), 19),
    ]


def all_samples() -> list[Message]:
    """``samples()`` (whose indices the tests below use) and the later kinds."""
    return [*samples(), PairReject("rejected"), PairReject("expired")]


@pytest.mark.parametrize("message", all_samples(), ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message: Message) -> None:
    data = encode_message(message)
    assert decode_message(data) == message
    assert encode_message(decode_message(data)) == data  # one encoding per message


def test_every_kind_has_a_message_class() -> None:
    assert {m.KIND for m in all_samples()} == set(MessageKind)


def test_message_of_another_kind_is_refused() -> None:
    env = samples()[0].to_envelope()
    with pytest.raises(DecodeError, match="expected a clip_fragment"):
        ClipFragment.from_envelope(env)


def header_of(message: Message) -> dict[str, Any]:
    return dict(message.to_envelope().header)


def with_header(message: Message, **changes: Any) -> bytes:
    env = message.to_envelope()
    header = {**env.header, **changes}
    header = {k: v for k, v in header.items() if v is not ...}
    return encode_envelope(Envelope(env.kind, header, env.body))


@pytest.mark.parametrize(
    ("index", "changes", "message"),
    [
        (0, {"extra": 1}, "unknown field 'extra'"),
        (0, {"seq": ...}, "missing field 'seq'"),
        (0, {"seq": -1}, "seq must be an integer"),
        (0, {"seq": True}, "seq must be an integer"),
        (0, {"seq": 1.0}, "seq must be an integer"),
        (0, {"event_id": "XYZ"}, "event_id must be 32 lowercase hex"),
        (0, {"camera": ""}, "camera must have 1 to 64"),
        (0, {"camera": "a\nb"}, "printable"),
        (0, {"score": "high"}, "score must be a number"),
        (0, {"boxes": [[0.5, 0.5, 0.6, 0.1]]}, "beyond the frame"),
        (0, {"boxes": [[0.1, 0.2, 0.3]]}, r"\[x, y, w, h\]"),
        (0, {"boxes": [[-0.1, 0.2, 0.3, 0.1]]}, "finite number"),
        (2, {"is_init": False}, "init segment is index 0"),
        (3, {"is_init": True}, "init segment is index 0"),
        (2, {"final": 0}, "true or false"),
        (2, {"clip_id": CLIP.upper()}, "32 lowercase hex"),
        (4, {"epochs": {"front/events": -3}}, "epochs"),
        (4, {"cameras": {"front": {"nested": {"x": 1}}}}, "string, number"),
        (5, {"ranges": [[5, 3]]}, "sorted, disjoint"),
        (5, {"ranges": [[1, 3], [3, 4]]}, "sorted, disjoint"),
        (5, {"ranges": []}, "1 to 256 ranges"),
        (5, {"group": "admin"}, "group must be one of"),
        (8, {"key_packages": {"events": "not base64!"}}, "not valid base64"),
        (8, {"key_packages": {"events": "a2w"}}, "base64"),
        (8, {"key_packages": {}}, "at least one group"),
        (9, {"key_packages": {}}, "1 to 64 cameras"),
        (10, {"relay_token": "has space"}, "relay_token"),
        (10, {"cameras": []}, "1 to 64 cameras"),
        (12, {"fragments": 0}, "fragments must be an integer in \\[1,"),
        (12, {"reason": "bored"}, "reason must be one of hub_restarted"),
        (12, {"clip_id": ...}, "missing field 'clip_id'"),
        (12, {"seq": 2.5}, "seq must be an integer"),
        (-5, {"session_id": "x" * 32}, "live_answer.session_id must be 32 lowercase hex"),
        (-5, {"epoch": -1}, "live_answer.epoch must be an integer"),
        (-4, {"error": "a\nb"}, "live_answer.error must be printable"),
        (-4, {"request": ...}, "missing field 'request'"),
        (-3, {"sent": {"front/events": -1}}, "heartbeat.sent"),
        (-3, {"answers": ["x" * 32]}, "heartbeat.answers"),
        (-3, {"answers": [CLIP] * 17}, "heartbeat.answers must be a list of at most 16"),
        (-3, {"sent": ...}, "missing field 'sent'"),
        (-2, {"nonce": "short"}, "clock_probe.nonce must be 32 lowercase hex"),
        (-1, {"ranges": []}, "resend_gone.ranges must hold 1 to 256"),
        (-1, {"seq": -2}, "resend_gone.seq must be an integer"),
    ],
)
def test_invalid_fields_are_named(index: int, changes: dict[str, Any], message: str) -> None:
    data = with_header(samples()[index], **changes)
    with pytest.raises(DecodeError, match=message):
        decode_message(data)


def test_notification_body_must_be_a_jpeg_and_clip_data_non_empty() -> None:
    with pytest.raises(DecodeError, match="JPEG"):
        replace(samples()[0], thumbnail=b"\x89PNG")  # type: ignore[type-var]
    env = samples()[2].to_envelope()
    with pytest.raises(DecodeError, match="data must be"):
        decode_message(encode_envelope(Envelope(env.kind, env.header, b"")))


def test_bodyless_messages_reject_a_body() -> None:
    env = samples()[5].to_envelope()
    with pytest.raises(DecodeError, match="empty body"):
        decode_message(encode_envelope(Envelope(env.kind, env.header, b"smuggled")))


def test_duplicate_grants_are_refused() -> None:
    grant = GroupGrant("events", "ab" * 16, b"k", b"w", 0)
    with pytest.raises(DecodeError, match="distinct"):
        CameraGrant("front", (grant, grant))
    cam = CameraGrant("front", (grant,))
    with pytest.raises(DecodeError, match="distinct"):
        PairAccept(DEVICE, "t", (cam, cam))


def test_pair_accept_repr_hides_the_token() -> None:
    accept = samples()[10]
    assert isinstance(accept, PairAccept)
    assert "relay-token" not in repr(accept) and "front" in repr(accept)


def test_message_id_is_deterministic_and_separates_groups_and_seqs() -> None:
    assert message_id(b"group", 1) == message_id(b"group", 1) == message_id("group", 1)
    ids = {message_id(g, s) for g in (b"g1", b"g2", b"g") for s in range(50)}
    assert len(ids) == 150
    assert message_id(b"g1", 0) != message_id(b"g", 1)
    assert len(message_id(b"g", 0)) == 32 and int(message_id(b"g", 0), 16) >= 0
    with pytest.raises(DecodeError):
        message_id(b"g", -1)


@settings(max_examples=200)
@given(index=st.integers(0, len(samples()) - 1), data=st.binary(max_size=400))
def test_mutated_messages_raise_only_decode_error(index: int, data: bytes) -> None:
    encoded = bytearray(encode_message(samples()[index]))
    for i, b in enumerate(data[:8]):
        encoded[(i * 131 + b) % len(encoded)] = b
    try:
        message = decode_message(bytes(encoded))
    except DecodeError:
        return
    assert decode_envelope(bytes(encoded)).kind == type(message).KIND


@settings(max_examples=300)
@given(st.binary(min_size=10, max_size=300), st.sampled_from(list(MessageKind)))
def test_arbitrary_headers_raise_only_decode_error(junk: bytes, kind: MessageKind) -> None:
    data = bytes([1, kind]) + len(junk).to_bytes(4, "big") + bytes(4) + junk
    data += bytes(max(0, 256 - len(data)))
    with contextlib.suppress(DecodeError):
        decode_message(data)


json_leaf = st.none() | st.booleans() | st.integers(-5, 2**64) | st.floats() | st.text(max_size=5)
json_any = st.recursive(
    json_leaf,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=6,
)


@settings(max_examples=300)
@given(index=st.integers(0, len(samples()) - 1), key=st.text(max_size=12), value=json_any)
def test_fuzzed_header_fields_raise_only_decode_error(index: int, key: str, value: object) -> None:
    message = samples()[index]
    keys = sorted(header_of(message))
    field = keys[hash(key) % len(keys)] if key.startswith("k") or not key else key
    try:
        data = with_header(message, **{field: value})
    except DecodeError:
        return
    with contextlib.suppress(DecodeError):
        decode_message(data)


hex_ids = st.binary(min_size=16, max_size=16).map(bytes.hex)
names = st.text(
    st.characters(categories=["L", "N", "P"], include_characters=" "), min_size=1, max_size=64
).filter(lambda s: s == s.strip())
unit = st.floats(0, 1, allow_nan=False)


@st.composite
def boxes(draw: st.DrawFn) -> tuple[tuple[float, float, float, float], ...]:
    result = []
    for _ in range(draw(st.integers(0, 5))):
        x, y = draw(unit), draw(unit)
        result.append((x, y, draw(st.floats(0, 1 - x)), draw(st.floats(0, 1 - y))))
    return tuple(result)


@settings(max_examples=100)
@given(
    camera=names,
    event=hex_ids,
    at=st.floats(0, 2e9, allow_nan=False),
    score=st.floats(0, 1e9, allow_nan=False),
    bxs=boxes(),
    seq=st.integers(0, 2**63 - 1),
    thumb=st.binary(max_size=500).map(lambda b: b"\xff\xd8" + b if b else b""),
)
def test_any_valid_notification_round_trips(
    camera: str, event: str, at: float, score: float, bxs: tuple[Box4, ...], seq: int, thumb: bytes
) -> None:
    note = Notification(camera, event, at, score, bxs, seq, thumb)
    data = encode_message(note)
    assert decode_message(data) == note
    assert encode_message(decode_message(data)) == data


@settings(max_examples=100)
@given(
    clip=hex_ids,
    event=hex_ids,
    index=st.integers(0, 2**31),
    final=st.booleans(),
    seq=st.integers(0, 2**63 - 1),
    data=st.binary(min_size=1, max_size=3000),
)
def test_any_valid_fragment_round_trips(
    clip: str, event: str, index: int, final: bool, seq: int, data: bytes
) -> None:
    fragment = ClipFragment(clip, event, index, final, index == 0, seq, data)
    assert decode_message(encode_message(fragment)) == fragment


Box4 = tuple[float, float, float, float]


def test_resend_ids_differ_from_the_first_and_fit_the_relay() -> None:
    import re

    from privastead.protocol.messages import resend_message_id

    first = message_id(b"g", 5)
    again = {resend_message_id(b"g", 5, n) for n in (1, 2, 3)}
    assert first not in again and len(again) == 3
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,64}", i) for i in again | {first})
