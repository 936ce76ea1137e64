"""``GroupGrant.after_seq``: where a newly added device starts reading its group's mailbox."""

from __future__ import annotations

import pytest

from privastead.errors import DecodeError
from privastead.protocol.codec import decode_message
from privastead.protocol.pairing_messages import CameraGrant, GroupGrant, PairAccept

DEVICE = "00112233445566778899aabbccddeeff"


def test_after_seq_travels_in_pair_accept() -> None:
    grant = GroupGrant("events", "ab" * 16, b"sigkey", b"welcome", 17, after_seq=4242)
    accept = PairAccept(DEVICE, "relay-token_123", (CameraGrant("front", (grant,)),))
    decoded = decode_message(accept.encode())
    assert isinstance(decoded, PairAccept)
    assert decoded.cameras[0].groups[0].after_seq == 4242


def test_after_seq_is_required_on_the_wire_and_checked() -> None:
    wire = GroupGrant("events", "ab" * 16, b"k", b"w", 0).to_json()
    assert wire["after_seq"] == 0  # unknown: the client starts after what the mailbox holds
    del wire["after_seq"]
    with pytest.raises(DecodeError, match="after_seq"):
        GroupGrant.from_json(wire)
    with pytest.raises(DecodeError, match="after_seq"):
        GroupGrant("events", "ab" * 16, b"k", b"w", 0, after_seq=-1)
