"""The short pairing code: format, parse, typo tolerance, clear errors, the shipped wordlist."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from privastead.errors import DecodeError
from privastead.protocol import short_code as sc
from privastead.protocol.short_code import MAX_CODE_LENGTH, ShortCode, generate, looks_short, parse


def test_wordlist_is_the_eff_short_list() -> None:
    words = sc.wordlist()
    assert len(words) == 1295 == len(set(words))
    assert words[0] == "acid" and words[-1] == "zoom"
    assert all(w.isalpha() and w.islower() and 3 <= len(w) <= 5 for w in words)


def test_generate_round_trips_and_fits_the_length() -> None:
    seen = set()
    for nameplate in (1, 42, sc.MAX_NAMEPLATE):
        for _ in range(50):
            code = generate(nameplate)
            assert parse(str(code)) == code
            assert len(str(code)) <= MAX_CODE_LENGTH
            seen.add(code.words)
    assert len(seen) > 100  # drawn at random, not a fixed list
    longest = ShortCode(sc.MAX_NAMEPLATE, (max(sc.wordlist(), key=len),) * 2)
    assert len(str(longest)) <= MAX_CODE_LENGTH


@pytest.mark.parametrize(
    "typed",
    [
        "417-acorn-shiny",
        " 417 Acorn SHINY ",
        "417.acorn.shiny",
        "417_acorn--shiny",
        "417 acorm shiny",
        "417-acorn-hsiny",
        "417-acorns-shiny",
        "417-acor-shiny",
    ],
)
def test_forgiving_parse(typed: str) -> None:
    assert str(parse(typed)) == "417-acorn-shiny"
    assert parse(typed).secret == b"417-acorn-shiny"


@pytest.mark.parametrize(
    ("typed", "fragment"),
    [
        ("", "got 0 part(s)"),
        ("417-acorn", "a number and 2 words"),
        ("417-acorn-shiny-zoom", "got 4 part(s)"),
        ("acorn-417-shiny", "must start with the number"),
        ("0-acorn-shiny", "nameplate must be 1 to"),
        ("10000-acorn-shiny", "nameplate must be 1 to"),
        ("417-qqqqq-shiny", "word 1 ('qqqqq') is not in the word list"),
        ("417-acorn-sh1ny", "word 2 ('sh1ny') must be letters only"),
        ("417-acorn-" + "x" * 90, "too long"),
        ("٤١٧-acorn-shiny", "must start with the number"),
    ],
)
def test_bad_codes_name_the_part_to_fix(typed: str, fragment: str) -> None:
    with pytest.raises(DecodeError) as info:
        parse(typed)
    assert fragment in str(info.value)


def test_an_ambiguous_typo_is_not_guessed() -> None:
    # "acron" is one typo from both "acorn" and "apron": never guessed, both offered.
    assert [w for w in sc.wordlist() if sc._one_typo_apart("acron", w)] == ["acorn", "apron"]
    with pytest.raises(DecodeError, match="did you mean one of acorn, apron"):
        parse("5-acron-shiny")


def test_looks_short_tells_the_two_code_kinds_apart() -> None:
    assert looks_short("417-acorn-shiny")
    assert not looks_short("privastead:7ZK2Q4-H0B9XE-AAAAAA")
    assert not looks_short("7ZK2Q4-H0B9XE-AAAAAA")


def test_generate_refuses_a_bad_nameplate() -> None:
    for bad in (0, -1, 10_000, True):
        with pytest.raises(DecodeError):
            generate(bad)


@given(st.text(max_size=100))
def test_any_text_parses_or_says_why(text: str) -> None:
    try:
        code = parse(text)
    except DecodeError as e:
        assert str(e).startswith("pairing code:")
    else:
        assert parse(str(code)) == code and len(str(code)) <= MAX_CODE_LENGTH


@given(
    st.integers(1, sc.MAX_NAMEPLATE), st.sampled_from(sc.wordlist()), st.sampled_from(sc.wordlist())
)
def test_every_code_round_trips(nameplate: int, a: str, b: str) -> None:
    code = ShortCode(nameplate, (a, b))
    assert parse(str(code)) == code and parse(str(code).upper().replace("-", " ")) == code
