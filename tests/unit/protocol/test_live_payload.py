"""Live payloads are padded like every other application message (protocol/live.py): the relay
sees sizes by Padmé bucket only, and a payload decodes only with its exact padding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from privastead.errors import DecodeError
from privastead.protocol.envelope import padme
from privastead.protocol.live import LivePayload, live_signal


@given(st.binary(max_size=70_000), st.booleans(), st.integers(0, 2**32 - 1))
def test_round_trip_and_bucketed_size(data: bytes, key: bool, index: int) -> None:
    p = LivePayload(index=index, is_init=False, keyframe=key, media_time=1.5, data=data)
    raw = p.encode()
    assert LivePayload.decode(raw) == p
    assert len(raw) == padme(len(raw))  # a bucket size, whatever the data's length


def test_nearby_sizes_look_alike_to_the_relay() -> None:
    sizes = {
        len(LivePayload(1, False, False, 0.0, bytes(n)).encode()) for n in range(40_000, 40_400)
    }
    assert len(sizes) == 1  # 400 different fragment sizes, one ciphertext size
    for n in (5_000, 100_000, 1 << 20, 3_000_000):
        padded = len(LivePayload(1, False, True, 0.0, bytes(n)).encode())
        # Padmé's bound: less than 1/log2(L) extra (12 % at 256 B, 5 % at 1 MiB).
        assert padded - n < n / (n.bit_length() - 1) + 64, (n, padded)


def test_tampered_or_truncated_padding_is_refused() -> None:
    raw = bytearray(LivePayload(3, False, True, 2.0, b"moof" * 1000).encode())
    raw[-1] = 1
    with pytest.raises(DecodeError, match="padding"):
        LivePayload.decode(bytes(raw))
    good = LivePayload(3, False, True, 2.0, b"moof" * 1000).encode()
    with pytest.raises(DecodeError):
        LivePayload.decode(good[:-1])
    with pytest.raises(DecodeError, match="version"):
        LivePayload.decode(b"PVLV\x02" + good[5:])


def test_a_relays_junk_signal_is_skipped_never_raised() -> None:
    assert live_signal('{"type": "viewers", "count": 2}') == {"type": "viewers", "count": 2}
    for junk in ("[" * 100_000 + "]" * 100_000, "not json", "[1, 2]", '"ended"', b"\xff"):
        assert live_signal(junk) is None
