"""The versioned binary envelope for plaintext carried inside MLS application messages.

Layout (all integers big-endian)::

    version   u8     ENVELOPE_VERSION (1)
    kind      u8     a MessageKind
    hdr_len   u32    length of the header
    body_len  u32    length of the body
    header    hdr_len bytes: canonical JSON object, UTF-8
    body      body_len bytes: opaque (JPEG thumbnail, fMP4 fragment, ...)
    padding   zeros up to the size bucket of the whole envelope

The body length is explicit because the zero padding would otherwise be indistinguishable from a
body that ends in zeros. The padded size is chosen by Padmé (Nikitin et al., PETS 2019): a length
L is rounded up so that only its top ~log2(log2(L)) + 1 bits are kept, which costs at most ~12 %
(and far less for large messages) and leaks O(log log L) bits of the length to whoever sees the
ciphertext size (the relay, FCM). Everything below ``MIN_PADDED_SIZE`` becomes exactly that size,
so small messages (heartbeats, requests, notifications without a thumbnail) all look alike.

Decoding is strict: any malformed input raises ``DecodeError`` naming what is wrong, and never
another exception. "Canonical" JSON means exactly what ``canonical_json`` produces: sorted keys,
no whitespace, UTF-8 without escapes for non-ASCII, no NaN/Infinity, no duplicate keys; a header
that decodes but is spelled differently is rejected, so that one message has exactly one
encoding.
"""

from __future__ import annotations

import enum
import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from privastead.errors import DecodeError

ENVELOPE_VERSION = 1
PREFIX = struct.Struct(">BBII")
MIN_PADDED_SIZE = 256
MAX_HEADER_SIZE = 1 << 20  # 1 MiB: Welcomes and key packages for many cameras still fit
MAX_BODY_SIZE = 64 << 20  # 64 MiB: a 1 s 4K fragment is a few MiB
MAX_ENVELOPE_SIZE = PREFIX.size + MAX_HEADER_SIZE + MAX_BODY_SIZE
MAX_JSON_DEPTH = 8


class MessageKind(enum.IntEnum):
    """What an envelope carries. Values are wire constants: never renumber."""

    NOTIFICATION = 1
    CLIP_FRAGMENT = 2
    HEARTBEAT = 3
    RESEND_REQUEST = 4
    LIVE_REQUEST = 5
    LIVE_STOP = 6
    READD_REQUEST = 7
    PAIR_KEY_PACKAGES = 8
    PAIR_ACCEPT = 9
    READD_ACCEPT = 10
    LIVE_ANSWER = 11
    CLIP_END = 12
    CLOCK_PROBE = 13
    RESEND_GONE = 14
    PLAYBACK_REQUEST = 15
    PLAYBACK_ANSWER = 16
    RECORDINGS_REQUEST = 17
    RECORDINGS_ANSWER = 18
    PAIR_REJECT = 19


@dataclass(frozen=True)
class Envelope:
    """A decoded envelope: its kind, JSON header and opaque body."""

    kind: MessageKind
    header: Mapping[str, Any]
    body: bytes = field(default=b"", repr=False)


def padme(length: int) -> int:
    """The Padmé bucket for ``length`` bytes (at least ``MIN_PADDED_SIZE``)."""
    if length < 0:
        raise ValueError("length must not be negative")
    if length <= MIN_PADDED_SIZE:
        return MIN_PADDED_SIZE
    exponent = length.bit_length() - 1  # floor(log2 L)
    mantissa_bits = exponent.bit_length()  # floor(log2 E) + 1
    mask = (1 << (exponent - mantissa_bits)) - 1
    return (length + mask) & ~mask


def canonical_json(value: Mapping[str, Any]) -> bytes:
    """The one encoding of a JSON object we accept: sorted, compact, UTF-8, finite numbers."""
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as e:
        raise DecodeError(f"header is not JSON-serialisable: {e}") from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise DecodeError("header contains a lone surrogate, which is not UTF-8") from None


def encode_envelope(envelope: Envelope) -> bytes:
    """Serialise and pad ``envelope``. Raises ``DecodeError`` if it exceeds the limits."""
    if not isinstance(envelope.kind, MessageKind):
        raise DecodeError(f"unknown message kind {envelope.kind!r}")
    header = canonical_json(envelope.header)
    body = bytes(envelope.body)
    if len(header) > MAX_HEADER_SIZE:
        raise DecodeError(f"header of {len(header)} bytes exceeds {MAX_HEADER_SIZE}")
    if len(body) > MAX_BODY_SIZE:
        raise DecodeError(f"body of {len(body)} bytes exceeds {MAX_BODY_SIZE}")
    prefix = PREFIX.pack(ENVELOPE_VERSION, int(envelope.kind), len(header), len(body))
    size = PREFIX.size + len(header) + len(body)
    return b"".join((prefix, header, body, bytes(padme(size) - size)))


def decode_envelope(data: bytes, *, max_size: int = MAX_ENVELOPE_SIZE) -> Envelope:
    """Parse a padded envelope strictly. Every malformed input raises ``DecodeError``."""
    view = memoryview(data)
    if len(view) > max(max_size, MIN_PADDED_SIZE):
        raise DecodeError(f"envelope of {len(view)} bytes exceeds the limit of {max_size}")
    if len(view) < PREFIX.size:
        raise DecodeError(f"envelope truncated: {len(view)} bytes, need at least {PREFIX.size}")
    version, kind_value, header_len, body_len = PREFIX.unpack_from(view)
    if version != ENVELOPE_VERSION:
        raise DecodeError(f"unsupported envelope version {version} (this build reads 1)")
    try:
        kind = MessageKind(kind_value)
    except ValueError:
        raise DecodeError(f"unknown message kind {kind_value}") from None
    if header_len > MAX_HEADER_SIZE:
        raise DecodeError(f"header length {header_len} exceeds {MAX_HEADER_SIZE}")
    if body_len > MAX_BODY_SIZE:
        raise DecodeError(f"body length {body_len} exceeds {MAX_BODY_SIZE}")
    end = PREFIX.size + header_len + body_len
    if end > len(view):
        raise DecodeError(f"envelope truncated: lengths need {end} bytes, got {len(view)}")
    if len(view) != padme(end):
        raise DecodeError(f"envelope of {len(view)} bytes is not padded to its bucket {padme(end)}")
    if any(view[end:]):
        raise DecodeError("padding contains non-zero bytes")
    header_bytes = bytes(view[PREFIX.size : PREFIX.size + header_len])
    header = _parse_header(header_bytes)
    return Envelope(kind=kind, header=header, body=bytes(view[PREFIX.size + header_len : end]))


def _reject_constant(name: str) -> Any:
    raise DecodeError(f"header contains {name}, which is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DecodeError(f"header repeats the key {key!r}")
        result[key] = value
    return result


def _check_tree(value: Any) -> None:
    """Reject headers nested too deeply or holding non-finite numbers (iteratively: no
    recursion limit can be hit by hostile input)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise DecodeError(f"header nests deeper than {MAX_JSON_DEPTH} levels")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, float) and not math.isfinite(item):
            raise DecodeError("header contains a number that is not finite")


def _parse_header(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DecodeError(f"header is not UTF-8 (byte {e.start})") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except DecodeError:
        raise
    except (ValueError, RecursionError) as e:
        raise DecodeError(f"header is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise DecodeError("header must be a JSON object")
    _check_tree(value)
    if canonical_json(value) != raw:
        raise DecodeError("header JSON is not in canonical form (sorted keys, no whitespace)")
    return value


__all__ = [
    "ENVELOPE_VERSION",
    "MAX_BODY_SIZE",
    "MAX_ENVELOPE_SIZE",
    "MAX_HEADER_SIZE",
    "MIN_PADDED_SIZE",
    "Envelope",
    "MessageKind",
    "canonical_json",
    "decode_envelope",
    "encode_envelope",
    "padme",
]
