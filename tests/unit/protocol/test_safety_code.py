from __future__ import annotations

import re

import pytest

from privastead.errors import DecodeError
from privastead.protocol.safety_code import safety_code


def test_format_and_determinism() -> None:
    code = safety_code(bytes(32))
    assert re.fullmatch(r"\d{5} \d{5} \d{5} \d{5}", code)
    assert safety_code(bytes(32)) == code
    assert re.fullmatch(r"\d{5}( \d{5}){5}", safety_code(bytes(32), groups=6))


def test_any_change_of_the_authenticator_changes_the_code() -> None:
    base = bytearray(32)
    codes = {safety_code(bytes(base))}
    for i in range(32):
        changed = bytearray(base)
        changed[i] ^= 1
        codes.add(safety_code(bytes(changed)))
    assert len(codes) == 33


def test_short_or_wrong_input_is_refused() -> None:
    with pytest.raises(DecodeError):
        safety_code(b"short")
    with pytest.raises(ValueError, match="groups"):
        safety_code(bytes(32), groups=0)
