"""Strict readers and validators for message header fields.

Every check raises ``DecodeError`` naming the message kind and the field, so a hostile or buggy
peer learns nothing new but a log line tells a developer exactly what was wrong. The same
validators run when a message is built locally (``__post_init__``), so an invalid message can
neither be sent nor received.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Collection, Mapping
from typing import Any

from privastead.errors import DecodeError

MAX_SEQ = (1 << 63) - 1
MAX_NAME_LEN = 64
MAX_TEXT_LEN = 512
# Groups per camera (docs/architecture.md), plus the per-device pairing group.
GROUP_NAMES = ("events", "live", "control")
_HEX_ID = re.compile(r"[0-9a-f]{32}")
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{1,512}")


def check_name(value: object, what: str) -> str:
    """A human-chosen name (camera, device, hub): 1..64 printable characters, no edge spaces."""
    if not isinstance(value, str):
        raise DecodeError(f"{what} must be a string")
    if not 0 < len(value) <= MAX_NAME_LEN:
        raise DecodeError(f"{what} must have 1 to {MAX_NAME_LEN} characters")
    if not value.isprintable() or value != value.strip():
        raise DecodeError(f"{what} must be printable, without leading or trailing spaces")
    return value


def check_text(value: object, what: str, max_len: int = MAX_TEXT_LEN) -> str:
    """Free printable text up to ``max_len`` characters (may be empty)."""
    if not isinstance(value, str) or len(value) > max_len or not value.isprintable():
        raise DecodeError(f"{what} must be printable text of at most {max_len} characters")
    return value


def check_hex_id(value: object, what: str) -> str:
    """A 128-bit random id as 32 lowercase hex digits (clip, event, mailbox, device, session)."""
    if not isinstance(value, str) or not _HEX_ID.fullmatch(value):
        raise DecodeError(f"{what} must be 32 lowercase hex digits")
    return value


def check_token(value: object, what: str) -> str:
    """An opaque relay token: 1..512 URL/base64-safe ASCII characters."""
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise DecodeError(f"{what} must be 1 to 512 characters of [A-Za-z0-9._~+/=-]")
    return value


def check_group(value: object, what: str = "group") -> str:
    if value not in GROUP_NAMES:
        raise DecodeError(f"{what} must be one of {', '.join(GROUP_NAMES)}")
    assert isinstance(value, str)
    return value


def check_int(value: object, what: str, lo: int = 0, hi: int = MAX_SEQ) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise DecodeError(f"{what} must be an integer in [{lo}, {hi}]")
    return value


def check_number(value: object, what: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DecodeError(f"{what} must be a number")
    number = float(value)
    if not math.isfinite(number) or not lo <= number <= hi:
        raise DecodeError(f"{what} must be a finite number in [{lo}, {hi}]")
    return number


def check_bool(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise DecodeError(f"{what} must be true or false")
    return value


def check_bytes(value: object, what: str, *, min_len: int = 0, max_len: int = 1 << 20) -> bytes:
    if not isinstance(value, bytes) or not min_len <= len(value) <= max_len:
        raise DecodeError(f"{what} must be {min_len} to {max_len} bytes")
    return value


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(value: object, what: str) -> bytes:
    """Strict standard base64: canonical padding, no whitespace, no stray characters."""
    if not isinstance(value, str):
        raise DecodeError(f"{what} must be a base64 string")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError(f"{what} is not valid base64") from None
    if b64(data) != value:
        raise DecodeError(f"{what} is not canonical base64")
    return data


class Fields:
    """Typed access to one header object; unknown and missing keys are errors."""

    def __init__(self, header: Mapping[str, Any], kind: str, keys: Collection[str]) -> None:
        self._header = header
        self._kind = kind
        unknown = sorted(set(header) - set(keys))
        if unknown:
            raise DecodeError(f"{kind}: unknown field {unknown[0]!r}")
        missing = sorted(set(keys) - set(header))
        if missing:
            raise DecodeError(f"{kind}: missing field {missing[0]!r}")

    def what(self, name: str) -> str:
        return f"{self._kind}.{name}"

    def raw(self, name: str) -> Any:
        return self._header[name]

    def obj(self, name: str) -> Mapping[str, Any]:
        value = self._header[name]
        if not isinstance(value, dict):
            raise DecodeError(f"{self.what(name)} must be an object")
        return value

    def array(self, name: str, max_len: int = 4096) -> list[Any]:
        value = self._header[name]
        if not isinstance(value, list) or len(value) > max_len:
            raise DecodeError(f"{self.what(name)} must be a list of at most {max_len} items")
        return value


__all__ = [
    "GROUP_NAMES",
    "MAX_NAME_LEN",
    "MAX_SEQ",
    "Fields",
    "b64",
    "check_bool",
    "check_bytes",
    "check_group",
    "check_hex_id",
    "check_int",
    "check_name",
    "check_number",
    "check_text",
    "check_token",
    "unb64",
]
