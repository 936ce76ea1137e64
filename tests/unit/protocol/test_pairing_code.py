from __future__ import annotations

import contextlib
import dataclasses
import secrets
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privastead.clock import FakeClock
from privastead.errors import DecodeError, PolicyError
from privastead.protocol.pairing_code import ALPHABET, PairingCode, b32decode, b32encode
from privastead.protocol.pairing_qr import decode_qr_png, qr_terminal, save_qr_png


def make_code(**changes: object) -> PairingCode:
    code = PairingCode(
        relay_url="https://relay.example.org:8443/base",
        mailbox="00112233445566778899aabbccddeeff",
        token="tok_" + "A" * 40,
        secret=bytes(range(32)),
        expires=1_700_000_600,
        hub_name="Maison",
    )
    return dataclasses.replace(code, **changes)  # type: ignore[arg-type]


def test_text_round_trip_in_any_typing_style() -> None:
    code = make_code()
    text = code.to_text()
    assert text.startswith("privastead:")
    assert PairingCode.parse(text) == code
    assert PairingCode.parse(code.to_text(per_line=4)) == code
    bare = text.removeprefix("privastead:")
    assert PairingCode.parse(bare.lower()) == code
    assert PairingCode.parse(" ".join(bare.replace("-", ""))) == code
    # People type o, i and l for 0 and 1.
    sloppy = bare.replace("0", "o").replace("1", "l")
    assert PairingCode.parse(sloppy) == code


def test_new_codes_are_fresh_random_and_expire(clock: FakeClock) -> None:
    a = PairingCode.new(
        relay_url="http://127.0.0.1:8080/", token="t", hub_name="h", clock=clock, ttl=300
    )
    b = PairingCode.new(
        relay_url="http://127.0.0.1:8080", token="t", hub_name="h", clock=clock, ttl=300
    )
    assert a.secret != b.secret and a.mailbox != b.mailbox and len(a.secret) == 32
    assert a.relay_url == "http://127.0.0.1:8080"
    a.check_fresh(clock)
    clock.advance(299)
    a.check_fresh(clock)
    clock.advance(1)
    with pytest.raises(PolicyError, match="expired"):
        a.check_fresh(clock)


def test_repr_hides_secret_and_token() -> None:
    text = repr(make_code())
    assert "tok_" not in text and "secret" not in text and "Maison" in text


def test_every_single_character_typo_is_detected_and_named() -> None:
    code = make_code()
    groups = code.groups()
    text = "-".join(groups)
    positions = list(range(0, len(text), 3))
    for pos in positions:
        if text[pos] == "-":
            continue
        for replacement in ("0", "Z", "7"):
            if replacement == text[pos]:
                continue
            typo = text[:pos] + replacement + text[pos + 1 :]
            group = text[:pos].count("-") + 1
            with pytest.raises(DecodeError, match=rf"group {group} \("):
                PairingCode.parse(typo)


def test_swapped_neighbours_and_missing_characters_are_detected() -> None:
    text = "-".join(make_code().groups())
    swapped = [text[:i] + text[i + 1] + text[i] + text[i + 2 :] for i in range(len(text) - 1)]
    for typo in swapped:
        if typo.replace("-", "") == text.replace("-", ""):
            continue  # swapped with a dash or two equal characters: nothing changed
        with pytest.raises(DecodeError):
            PairingCode.parse(typo)
    with pytest.raises(DecodeError, match="group 3"):
        PairingCode.parse(text[:14] + text[15:])  # one character left out in group 3
    with pytest.raises(DecodeError, match="cannot appear"):
        PairingCode.parse(text + "U")
    with pytest.raises(DecodeError, match="too short"):
        PairingCode.parse("privastead:")


def test_whole_groups_moved_or_dropped_are_detected() -> None:
    groups = make_code().groups()
    with pytest.raises(DecodeError, match="group"):
        PairingCode.parse("-".join([groups[1], groups[0], *groups[2:]]))
    with pytest.raises(DecodeError):
        PairingCode.parse("-".join(groups[:-1]))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"relay_url": "ftp://x"}, "http"),
        ({"relay_url": "https://x/"}, "must not end"),
        ({"relay_url": "https://x?a=1"}, "must not end"),
        ({"mailbox": "xyz"}, "mailbox"),
        ({"token": "bad token"}, "token"),
        ({"secret": b"short"}, "32 bytes"),
        ({"expires": 0}, "expiry"),
        ({"hub_name": ""}, "hub name"),
        ({"hub_name": "\U0001f3e0" * 64}, "255 bytes"),
        ({"token": "t" * 256}, "255 bytes"),
    ],
)
def test_invalid_fields_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        make_code(**changes)


@settings(max_examples=100)
@given(st.binary(max_size=80))
def test_base32_round_trips(data: bytes) -> None:
    assert b32decode(b32encode(data)) == data
    assert set(b32encode(data)) <= set(ALPHABET)


@settings(max_examples=300)
@given(st.text(alphabet=ALPHABET + "-: iloIL", max_size=400))
def test_random_text_raises_only_decode_error(text: str) -> None:
    with contextlib.suppress(DecodeError):
        PairingCode.parse(text)


@settings(max_examples=100)
@given(
    url=st.sampled_from(["http://127.0.0.1:1", "https://relay.example", "https://ü.example/x"]),
    token=st.text(alphabet="abcXYZ019._~+/=-", min_size=1, max_size=120),
    name=st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=60),
)
def test_any_valid_code_round_trips(url: str, token: str, name: str) -> None:
    code = make_code(relay_url=url, token=token, hub_name=name, secret=secrets.token_bytes(32))
    assert PairingCode.parse(code.to_text()) == code


def test_qr_png_round_trip_and_terminal_rendering(tmp_path: Path) -> None:
    code = make_code(secret=secrets.token_bytes(32))
    path = tmp_path / "pair.png"
    save_qr_png(code, path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_bytes().startswith(b"\x89PNG")
    assert decode_qr_png(path) == code
    text = qr_terminal(code)
    assert len(text.splitlines()) > 20 and "█" in text


def test_qr_png_errors_are_decode_errors(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="cannot read"):
        decode_qr_png(tmp_path / "missing.png")
    bogus = tmp_path / "bogus.png"
    bogus.write_bytes(b"not a png")
    with pytest.raises(DecodeError, match="not a readable PNG"):
        decode_qr_png(bogus)
    import segno

    other = tmp_path / "other.png"
    segno.make_qr("https://example.org").save(str(other), scale=5)
    with pytest.raises(DecodeError, match="not a Privastead pairing code"):
        decode_qr_png(other)
    blank = tmp_path / "blank.png"
    segno.make_qr("x").save(str(blank), scale=5, dark="white")
    with pytest.raises(DecodeError, match="no QR code"):
        decode_qr_png(blank)


def test_qr_in_a_noisy_colour_screenshot_is_found(tmp_path: Path) -> None:
    import numpy as np
    import png
    import segno

    code = make_code(secret=secrets.token_bytes(32))
    plain = tmp_path / "plain.png"
    segno.make_qr(code.to_text().upper(), error="m").save(str(plain), scale=4, border=4)
    width, height, rows, _ = png.Reader(bytes=plain.read_bytes()).asRGBA8()
    qr = np.vstack([np.frombuffer(bytes(r), dtype=np.uint8) for r in rows]).reshape(
        height, width, 4
    )
    rng = np.random.default_rng(3)
    canvas = np.full((height + 200, width + 300, 3), (40, 90, 160), dtype=np.int16)  # a desktop
    canvas[100 : 100 + height, 150 : 150 + width] = qr[..., :3]
    canvas += rng.integers(-25, 25, canvas.shape, dtype=np.int16)
    image = np.clip(canvas, 0, 255).astype(np.uint8)
    shot = tmp_path / "screenshot.png"
    png.from_array(image.reshape(image.shape[0], -1), "RGB").save(str(shot))
    assert decode_qr_png(shot) == code
