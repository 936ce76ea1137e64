"""The safety code both sides of a pairing show, for the owner to compare.

Derived from the pairing group's MLS epoch authenticator (the same value on both members, and
unknown to anyone outside the group), so a match proves that the hub and the client share the
group and hence the pairing secret. Digits in groups of five, as people read them aloud.
"""

from __future__ import annotations

import hashlib

from privastead.errors import DecodeError

_TAG = b"privastead/safety-code/v1\x00"
DIGITS_PER_GROUP = 5


def safety_code(epoch_authenticator: bytes, *, groups: int = 4) -> str:
    """E.g. ``"01234 56789 13579 24680"``: ``groups`` groups of 5 digits (4 groups: ~66 bits)."""
    if not isinstance(epoch_authenticator, bytes) or len(epoch_authenticator) < 16:
        raise DecodeError("an epoch authenticator has at least 16 bytes")
    if not 1 <= groups <= 6:
        raise ValueError("a safety code has 1 to 6 groups")
    digest = hashlib.sha256(_TAG + epoch_authenticator).digest()
    # 5 bytes (2^40) per group, reduced mod 10^5: the bias is below 10^-7.
    chunks = (int.from_bytes(digest[5 * i : 5 * i + 5], "big") % 100_000 for i in range(groups))
    return " ".join(f"{chunk:0{DIGITS_PER_GROUP}d}" for chunk in chunks)


__all__ = ["safety_code"]
