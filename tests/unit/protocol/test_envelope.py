from __future__ import annotations

import contextlib
import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privastead.errors import DecodeError
from privastead.protocol.envelope import (
    MAX_HEADER_SIZE,
    MIN_PADDED_SIZE,
    PREFIX,
    Envelope,
    MessageKind,
    decode_envelope,
    encode_envelope,
    padme,
)


def raw(kind: int, header: bytes, body: bytes = b"", version: int = 1, pad: bool = True) -> bytes:
    data = struct.pack(">BBII", version, kind, len(header), len(body)) + header + body
    return data + bytes(padme(len(data)) - len(data)) if pad else data


def test_round_trip_keeps_kind_header_and_body() -> None:
    env = Envelope(MessageKind.HEARTBEAT, {"b": [1, 2.5, None], "a": "é"}, b"\x00\x01body\x00")
    data = encode_envelope(env)
    assert decode_envelope(data) == env
    assert len(data) == padme(len(data)) == MIN_PADDED_SIZE


def test_body_ending_in_zeros_survives_padding() -> None:
    env = Envelope(MessageKind.CLIP_FRAGMENT, {}, b"abc" + bytes(300))
    assert decode_envelope(encode_envelope(env)).body == env.body


@pytest.mark.parametrize("length", [0, 1, 255, 256, 257, 1000, 4097, 65_537, 10**6, 3 * 10**7])
def test_padme_buckets_cost_at_most_12_percent(length: int) -> None:
    padded = padme(length)
    assert padded >= length
    assert padded == MIN_PADDED_SIZE or padded <= length * 1.12
    assert padme(padded) == padded  # buckets are fixed points


def test_padme_leaks_few_sizes() -> None:
    # Every length from 1 MB to 2 MB falls into a handful of buckets, not a million.
    buckets = {padme(n) for n in range(1 << 20, 1 << 21, 97)}
    assert len(buckets) <= 33  # E=20: 2^5 buckets, plus 2^21 itself


def test_small_messages_all_look_alike() -> None:
    sizes = {
        len(encode_envelope(Envelope(MessageKind.RESEND_REQUEST, {"x": "y" * n})))
        for n in range(200)
    }
    assert sizes == {MIN_PADDED_SIZE}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated"),
        (b"\x01\x01\x00", "truncated"),
        (raw(1, b"{}", version=2), "version 2"),
        (raw(0, b"{}"), "unknown message kind 0"),
        (raw(200, b"{}"), "unknown message kind 200"),
        (raw(1, b"{}", pad=False), "not padded"),
        (raw(1, b"{}")[:-1], "not padded"),
        (raw(1, b"{}") + bytes(256), "not padded"),
        (raw(1, b"{}")[:-1] + b"\x01", "non-zero"),
        (raw(1, b'{"a":1}')[:12] + b"\x00" * 244, "not valid JSON"),
        (raw(1, b"[1]"), "JSON object"),
        (raw(1, b'{"b":1,"a":2}'), "canonical"),
        (raw(1, b'{"a": 1}'), "canonical"),
        (raw(1, b'{"a":1,"a":1}'), "repeats"),
        (raw(1, b'{"a":NaN}'), "not JSON"),
        (raw(1, b'{"a":1e999}'), "not finite"),
        (raw(1, b'{"a":"\xff"}'), "not UTF-8"),
        (raw(1, b'{"a":"\\ud800"}'), "surrogate"),
        (raw(1, b'{"a":1E5}'), "canonical"),
        (raw(1, b"[" * 5000 + b"]" * 5000), "JSON"),
        (raw(1, b'{"a":' * 9 + b"1" + b"}" * 9), "nests deeper"),
    ],
)
def test_malformed_input_raises_decode_error_naming_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_envelope(data)


def test_lengths_beyond_the_data_or_limits_are_rejected() -> None:
    good = raw(1, b"{}", b"body")
    huge_header = good[:2] + struct.pack(">I", MAX_HEADER_SIZE + 1) + good[6:]
    with pytest.raises(DecodeError, match="header length"):
        decode_envelope(huge_header)
    long_body = good[:6] + struct.pack(">I", 10_000) + good[10:]
    with pytest.raises(DecodeError, match="truncated"):
        decode_envelope(long_body)
    with pytest.raises(DecodeError, match="exceeds the limit"):
        decode_envelope(raw(1, b"{}", b"x" * 5000), max_size=1000)


def test_encoder_refuses_what_the_decoder_would_refuse() -> None:
    with pytest.raises(DecodeError):
        encode_envelope(Envelope(MessageKind.HEARTBEAT, {"a": float("nan")}))
    with pytest.raises(DecodeError):
        encode_envelope(Envelope(MessageKind.HEARTBEAT, {"a": b"bytes"}))
    with pytest.raises(DecodeError, match="header of"):
        encode_envelope(Envelope(MessageKind.HEARTBEAT, {"a": "x" * MAX_HEADER_SIZE}))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**62), 2**62)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200)
@given(
    kind=st.sampled_from(list(MessageKind)),
    header=st.dictionaries(st.text(max_size=8), json_values, max_size=5),
    body=st.binary(max_size=2000),
)
def test_any_envelope_round_trips(
    kind: MessageKind, header: dict[str, object], body: bytes
) -> None:
    env = Envelope(kind, header, body)
    try:
        data = encode_envelope(env)
    except DecodeError:
        return  # e.g. nested deeper than allowed: refused on both sides
    decoded = decode_envelope(data)
    assert decoded.kind == kind and decoded.body == body
    assert json.dumps(decoded.header, sort_keys=True) == json.dumps(header, sort_keys=True)


@settings(max_examples=300)
@given(st.binary(max_size=600))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_envelope(data)


@settings(max_examples=300)
@given(
    position=st.integers(0, 10_000),
    value=st.integers(0, 255),
    cut=st.integers(0, 600),
    mode=st.sampled_from(["flip", "cut", "insert"]),
)
def test_mutated_envelopes_raise_only_decode_error(
    position: int, value: int, cut: int, mode: str
) -> None:
    data = bytearray(
        encode_envelope(
            Envelope(MessageKind.NOTIFICATION, {"camera": "x", "seq": 1}, b"\xff\xd8jpeg")
        )
    )
    position %= len(data)
    if mode == "flip":
        data[position] = value
    elif mode == "cut":
        del data[min(cut, len(data) - 1) :]
    else:
        data.insert(position, value)
    try:
        env = decode_envelope(bytes(data))
    except DecodeError:
        return
    assert isinstance(env.kind, MessageKind)  # a mutation that still decodes is well-formed


def test_prefix_size_is_ten_bytes() -> None:
    assert PREFIX.size == 10


@given(st.integers(MIN_PADDED_SIZE + 1, 1 << 30))
def test_padme_overhead_bound_holds_everywhere(length: int) -> None:
    padded = padme(length)
    assert length <= padded <= length * 1.12
