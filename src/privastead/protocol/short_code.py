"""The short pairing code a person can type: ``<nameplate>-<word>-<word>`` (``417-acorn-shiny``).

The nameplate is a short number the relay allocates (it names the pairing mailbox for a few
minutes and carries no secret); the two words come from the EFF short wordlist shipped beside
this module (1,295 words of 3-5 letters, CC BY 3.0 US) and are the secret: 1,295² ≈ 1.7 million
codes, about 20.7 bits. That is far too little for a key, which is why the code only ever feeds a
PAKE (one online guess per code) and never encrypts anything itself.

Typing is forgiving: case, surrounding blanks, and spaces, dots, underscores or several dashes
between the parts are all accepted; a word one typo away (one letter changed, added, dropped, or
two neighbours swapped) from exactly one list word is corrected to it. Anything else is an error
that names the part to fix. No I/O here; :func:`generate` takes the nameplate from its caller.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from functools import cache
from importlib import resources

from privastead.errors import DecodeError

WORDS_PER_CODE = 2
# The first EFF short list without its one hyphenated entry (see the file header).
WORDLIST_SIZE = 1295
MAX_CODE_LENGTH = 20
# The relay allocates nameplates in this range; four digits keep the longest code at 4+1+5+1+5.
MAX_NAMEPLATE = 9999
_SEPARATORS = re.compile(r"[\s._\-]+")


@cache
def wordlist() -> tuple[str, ...]:
    """The shipped wordlist, in its published order (comment lines dropped)."""
    text = resources.files(__package__).joinpath("words_eff_short.txt").read_text("utf-8")
    words = tuple(w for w in (line.strip() for line in text.splitlines()) if w and w[0] != "#")
    if len(words) != WORDLIST_SIZE or len(set(words)) != len(words):
        raise RuntimeError("the shipped pairing wordlist is damaged: reinstall privastead")
    return words


@cache
def _word_set() -> frozenset[str]:
    return frozenset(wordlist())


@dataclass(frozen=True)
class ShortCode:
    """A parsed, normalised short code."""

    nameplate: int
    words: tuple[str, ...]

    def __str__(self) -> str:
        return "-".join([str(self.nameplate), *self.words])

    @property
    def secret(self) -> bytes:
        """What the PAKE is keyed with: the whole normalised code (nameplate included)."""
        return str(self).encode("ascii")


def check_nameplate(nameplate: int) -> int:
    if isinstance(nameplate, bool) or not isinstance(nameplate, int):
        raise DecodeError("pairing code: the nameplate must be a number")
    if not 1 <= nameplate <= MAX_NAMEPLATE:
        raise DecodeError(f"pairing code: the nameplate must be 1 to {MAX_NAMEPLATE}")
    return nameplate


def generate(nameplate: int) -> ShortCode:
    """A fresh code for a nameplate the relay allocated; the words come from the OS CSPRNG."""
    words = wordlist()
    return ShortCode(
        check_nameplate(nameplate),
        tuple(secrets.choice(words) for _ in range(WORDS_PER_CODE)),
    )


def _one_typo_apart(a: str, b: str) -> bool:
    """Whether ``a`` becomes ``b`` by one substitution, insertion, deletion or transposition."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def _word(typed: str, position: int) -> str:
    if typed in _word_set():
        return typed
    if not typed.isalpha() or not typed.isascii():
        raise DecodeError(f"pairing code: word {position} ({typed!r}) must be letters only")
    near = [w for w in wordlist() if _one_typo_apart(typed, w)]
    if len(near) == 1:
        return near[0]
    hint = f"; did you mean one of {', '.join(near[:4])}?" if near else ""
    raise DecodeError(f"pairing code: word {position} ({typed!r}) is not in the word list{hint}")


def parse(text: str) -> ShortCode:
    """Reads a typed code; raises :class:`DecodeError` naming the part that is wrong."""
    if not isinstance(text, str):
        raise DecodeError("pairing code: expected text")
    if len(text) > 4 * MAX_CODE_LENGTH:
        raise DecodeError("pairing code: too long; a code looks like 417-acorn-shiny")
    parts = [p for p in _SEPARATORS.split(text.strip().lower()) if p]
    if len(parts) != 1 + WORDS_PER_CODE:
        raise DecodeError(
            f"pairing code: expected a number and {WORDS_PER_CODE} words, like 417-acorn-shiny; "
            f"got {len(parts)} part(s)"
        )
    head, *typed = parts
    if not head.isascii() or not head.isdigit():
        raise DecodeError(
            f"pairing code: it must start with the number the hub shows, not {head!r}"
        )
    nameplate = check_nameplate(int(head))
    return ShortCode(nameplate, tuple(_word(w, i) for i, w in enumerate(typed, start=1)))


def looks_short(text: str) -> bool:
    """Whether ``text`` is shaped like a short code rather than the long ``privastead:`` one."""
    parts = [p for p in _SEPARATORS.split(text.strip()) if p]
    return len(parts) == 1 + WORDS_PER_CODE and parts[0].isdigit()


# -- the exchange's frames in the nameplate's mailbox ---------------------------------------
# Both sides write into one pairing mailbox; each frame names its sender and step, so a side
# reads only the other's frames, in order: ``psc1 | side (h/d) | step (p/c/s) | body``.
# The PAKE message, the confirmation tag and the sealed payload: none is secret.
_FRAME_MAGIC = b"psc1"
SIDES = {"hub": b"h", "device": b"d"}
STEPS = {"pake": b"p", "confirm": b"c", "sealed": b"s"}
MAX_FRAME = 64 * 1024


def frame(side: str, step: str, body: bytes) -> bytes:
    return _FRAME_MAGIC + SIDES[side] + STEPS[step] + body


def unframe(data: bytes) -> tuple[str, str, bytes]:
    """``(side, step, body)``; a :class:`DecodeError` for anything else (a hostile relay)."""
    if len(data) > MAX_FRAME or len(data) < 6 or data[:4] != _FRAME_MAGIC:
        raise DecodeError("not a short-code pairing frame")
    side = next((k for k, v in SIDES.items() if v == data[4:5]), None)
    step = next((k for k, v in STEPS.items() if v == data[5:6]), None)
    if side is None or step is None:
        raise DecodeError("short-code pairing frame of an unknown side or step")
    return side, step, bytes(data[6:])


def exchange_context(mailbox: str, nameplate: int) -> bytes:
    """What both sides bind into the PAKE: the pairing mailbox and the nameplate (the hub
    allocated them; the device learnt the mailbox from its claim). A relay that swaps the
    mailbox behind a nameplate makes the two contexts differ: the exchange fails."""
    return f"privastead short-code pairing|{mailbox}|{check_nameplate(nameplate)}".encode()
