"""The pairing code the hub shows and a client types (or scans): typed, checksummed, expiring.

Contents: the relay URL, the one-time pairing mailbox, a restricted relay token that may only use
that mailbox until it expires, a 256-bit one-time secret (the MLS external PSK of the pairing
group), the expiry time and the hub's name. The secret never leaves the hub and the client: the
relay only learns the mailbox and token, which the hub registers with it.

Text form: the binary payload in Crockford base32 (no I, L, O, U; typing ``i``/``l``/``o`` is
read as 1/1/0, case does not matter), cut into groups of five characters each followed by a Luhn
mod 32 check character that also covers the group's position::

    privastead:7ZK2Q4-H0B9XE-...

so a mistyped character, or two swapped neighbours, is detected *and* named ("group 7 has a
typo"), and a 32-bit SHA-256 checksum over the whole payload catches whatever slips through. The
``privastead:`` prefix, spaces, dashes and line breaks are optional when typing.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import struct
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from privastead.clock import Clock
from privastead.errors import DecodeError, PolicyError
from privastead.protocol.fields import check_hex_id, check_name, check_token

SCHEME = "privastead:"
CODE_VERSION = 1
SECRET_SIZE = 32
GROUP_DATA = 5
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUES = {c: i for i, c in enumerate(ALPHABET)} | {"I": 1, "L": 1, "O": 0}
_HEAD = struct.Struct(">B32s16sI")
_CHECKSUM_SIZE = 4
MAX_URL = 200


def b32encode(data: bytes) -> str:
    bits = int.from_bytes(data, "big") if data else 0
    count = (len(data) * 8 + 4) // 5
    bits <<= count * 5 - len(data) * 8
    return "".join(ALPHABET[(bits >> (5 * (count - 1 - i))) & 31] for i in range(count))


def b32decode(text: str) -> bytes:
    nbytes = len(text) * 5 // 8
    spare = len(text) * 5 - nbytes * 8
    bits = 0
    for ch in text:
        bits = (bits << 5) | _VALUES[ch]
    if bits & ((1 << spare) - 1):
        raise DecodeError("pairing code: the last group has a typo")
    return (bits >> spare).to_bytes(nbytes, "big")


def luhn32(chars: str, position: int) -> str:
    """Luhn mod 32 check character of ``chars``, salted with the group ``position``."""
    values = [position % 32, *(_VALUES[c] for c in chars)]
    factor, total = 2, 0
    for value in reversed(values):
        addend = factor * value
        total += addend // 32 + addend % 32
        factor = 3 - factor
    return ALPHABET[(32 - total % 32) % 32]


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url.encode()) > MAX_URL:
        raise DecodeError("pairing code: the relay URL must be http(s)://host[:port][/path]")
    if parts.query or parts.fragment or url.endswith("/"):
        raise DecodeError("pairing code: the relay URL must not end in '/' or carry ?query/#")
    return url


@dataclass(frozen=True)
class PairingCode:
    relay_url: str
    mailbox: str
    token: str = field(repr=False)
    secret: bytes = field(repr=False)
    expires: int
    hub_name: str

    def __post_init__(self) -> None:
        _check_url(self.relay_url)
        check_hex_id(self.mailbox, "pairing code mailbox")
        check_token(self.token, "pairing code token")
        if not isinstance(self.secret, bytes) or len(self.secret) != SECRET_SIZE:
            raise DecodeError(f"pairing code: the secret must be {SECRET_SIZE} bytes")
        if not isinstance(self.expires, int) or not 0 < self.expires < 1 << 32:
            raise DecodeError("pairing code: the expiry must be a Unix time")
        check_name(self.hub_name, "pairing code hub name")
        for what, text in (("token", self.token), ("hub name", self.hub_name)):
            if len(text.encode("utf-8")) > 255:
                raise DecodeError(f"pairing code: the {what} is longer than 255 bytes")

    @classmethod
    def new(
        cls,
        *,
        relay_url: str,
        token: str,
        hub_name: str,
        clock: Clock,
        ttl: float = 600.0,
        mailbox: str | None = None,
    ) -> PairingCode:
        """A fresh code with a new random secret (and mailbox unless given)."""
        return cls(
            relay_url=relay_url.rstrip("/"),
            mailbox=mailbox or secrets.token_hex(16),
            token=token,
            secret=secrets.token_bytes(SECRET_SIZE),
            expires=int(clock.time() + ttl),
            hub_name=hub_name,
        )

    def check_fresh(self, clock: Clock) -> None:
        """Raise ``PolicyError`` if the code has expired."""
        if clock.time() >= self.expires:
            raise PolicyError("this pairing code has expired: run `privastead-hub pair` again")

    def payload(self) -> bytes:
        parts = [_HEAD.pack(CODE_VERSION, self.secret, bytes.fromhex(self.mailbox), self.expires)]
        for text in (self.token, self.relay_url, self.hub_name):
            raw = text.encode("utf-8")
            parts.append(bytes([len(raw)]) + raw)
        body = b"".join(parts)
        return body + hashlib.sha256(body).digest()[:_CHECKSUM_SIZE]

    def groups(self) -> list[str]:
        data = b32encode(self.payload())
        chunks = [data[i : i + GROUP_DATA] for i in range(0, len(data), GROUP_DATA)]
        return [chunk + luhn32(chunk, i) for i, chunk in enumerate(chunks)]

    def to_text(self, per_line: int = 0) -> str:
        """``privastead:GROUP-GROUP-...``; with ``per_line``, broken into lines for reading."""
        groups = self.groups()
        if not per_line:
            return SCHEME + "-".join(groups)
        lines = ["-".join(groups[i : i + per_line]) for i in range(0, len(groups), per_line)]
        return SCHEME + "\n" + "\n".join(lines)

    @classmethod
    def parse(cls, text: str) -> PairingCode:
        """Read a typed or scanned code. Typos raise ``DecodeError`` naming the group."""
        if not isinstance(text, str) or len(text) > 4096:
            raise DecodeError("pairing code: not a pairing code")
        cleaned = re.sub(r"[\s\-]", "", text).upper()
        if cleaned.startswith(SCHEME.upper()):
            cleaned = cleaned[len(SCHEME) :]
        bad = sorted({c for c in cleaned if c not in _VALUES})
        if bad:
            raise DecodeError(f"pairing code: {''.join(bad)!r} cannot appear in a pairing code")
        size = GROUP_DATA + 1
        chunks = [cleaned[i : i + size] for i in range(0, len(cleaned), size)]
        if not chunks or len(chunks[-1]) < 2:
            raise DecodeError("pairing code: too short or a character is missing at the end")
        data = []
        for i, chunk in enumerate(chunks):
            if luhn32(chunk[:-1], i) != _canonical(chunk[-1]):
                shown = chunk if len(chunk) == size else chunk + "…"
                raise DecodeError(
                    f"pairing code: group {i + 1} ({shown}) has a typo "
                    "(or a character was left out before it)"
                )
            data.append(chunk[:-1])
        return cls._from_payload(b32decode("".join(data)))

    @classmethod
    def _from_payload(cls, payload: bytes) -> PairingCode:
        body, checksum = payload[:-_CHECKSUM_SIZE], payload[-_CHECKSUM_SIZE:]
        if len(body) < _HEAD.size or hashlib.sha256(body).digest()[:_CHECKSUM_SIZE] != checksum:
            raise DecodeError("pairing code: checksum mismatch; please re-type the code")
        version, secret, mailbox, expires = _HEAD.unpack_from(body)
        if version != CODE_VERSION:
            raise DecodeError(f"pairing code: version {version} needs a newer privastead-app")
        texts, pos = [], _HEAD.size
        for _ in range(3):
            if pos >= len(body) or pos + 1 + body[pos] > len(body):
                raise DecodeError("pairing code: truncated")
            raw = body[pos + 1 : pos + 1 + body[pos]]
            pos += 1 + body[pos]
            try:
                texts.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise DecodeError("pairing code: a text field is not UTF-8") from None
        if pos != len(body):
            raise DecodeError("pairing code: unexpected trailing data")
        token, url, name = texts
        return cls(url, mailbox.hex(), token, secret, expires, name)


def _canonical(ch: str) -> str:
    return ALPHABET[_VALUES[ch]]


__all__ = ["SCHEME", "PairingCode"]
