"""The short-code exchange state machine over the Rust SPAKE2: agreement, wrong codes, order,
reuse, tampering, and a relay that runs the exchange itself with guessed codes."""

from __future__ import annotations

import pytest

from privastead import _native
from privastead.crypto.short_pairing import DEVICE, HUB, ShortCodeExchange, Stage
from privastead.errors import CryptoError, DecodeError, GroupStateError, PairingMismatchError
from privastead.protocol.short_code import generate, wordlist

CTX = b"https://relay.example.org|417"
PAYLOAD = b"mls psk, relay token, hub name" * 4


def _run(hub: ShortCodeExchange, dev: ShortCodeExchange) -> tuple[bytes, bytes]:
    """The honest order of messages; returns (sealed payload, opened payload)."""
    to_dev = hub.pake_message()
    to_hub = dev.pake_message()
    dev_tag = dev.receive_pake(to_dev)
    hub_tag = hub.receive_pake(to_hub)
    dev.receive_confirmation(hub_tag)
    hub.receive_confirmation(dev_tag)
    sealed = hub.seal(PAYLOAD)
    return sealed, dev.open(sealed)


def test_matching_codes_pair_and_the_payload_arrives() -> None:
    code = generate(417).secret
    hub, dev = ShortCodeExchange(HUB, code, CTX), ShortCodeExchange(DEVICE, code, CTX)
    sealed, opened = _run(hub, dev)
    assert opened == PAYLOAD
    assert PAYLOAD not in sealed
    assert hub.stage is dev.stage is Stage.DONE
    with pytest.raises(PairingMismatchError, match="out of order"):  # once only
        hub.seal(PAYLOAD)


def test_a_wrong_code_burns_it_on_both_sides_before_any_payload() -> None:
    hub = ShortCodeExchange(HUB, b"417-acorn-shiny", CTX)
    dev = ShortCodeExchange(DEVICE, b"417-acorn-shine", CTX)
    dev_tag = dev.receive_pake(hub.pake_message())
    hub_tag = hub.receive_pake(dev.pake_message())
    with pytest.raises(PairingMismatchError, match="wrong code or a relay that tampered"):
        dev.receive_confirmation(hub_tag)
    with pytest.raises(PairingMismatchError, match="wrong code or a relay that tampered"):
        hub.receive_confirmation(dev_tag)
    for side in (hub, dev):
        assert side.stage is Stage.BURNED
        with pytest.raises(PairingMismatchError):
            side.seal(PAYLOAD)
        with pytest.raises(PairingMismatchError):
            side.pake_message()


class GuessingRelay:
    """A relay that, instead of forwarding, runs the exchange itself with each side, using a
    guessed code: what a malicious relay operator can do with the mailbox it controls."""

    def __init__(self, guess: bytes) -> None:
        self.to_hub = ShortCodeExchange(DEVICE, guess, CTX)  # pretends to be the device
        self.to_dev = ShortCodeExchange(HUB, guess, CTX)  # pretends to be the hub
        self.learned: list[bytes] = []


@pytest.mark.parametrize("guesses", [1, 5])
def test_a_relay_running_the_exchange_with_guessed_codes_burns_the_code_and_learns_nothing(
    guesses: int,
) -> None:
    real = generate(417)
    words = [w for w in wordlist() if w not in real.words]
    for i in range(guesses):
        guess = f"417-{words[i]}-{words[-1 - i]}".encode()
        hub = ShortCodeExchange(HUB, real.secret, CTX)
        dev = ShortCodeExchange(DEVICE, real.secret, CTX)
        relay = GuessingRelay(guess)
        # The relay answers each side with its own PAKE message.
        relay_tag_for_hub = relay.to_hub.receive_pake(hub.pake_message())
        hub_tag = hub.receive_pake(relay.to_hub.pake_message())
        relay_tag_for_dev = relay.to_dev.receive_pake(dev.pake_message())
        dev_tag = dev.receive_pake(relay.to_dev.pake_message())
        # Whatever the relay forwards or makes up as confirmations, both sides refuse it...
        with pytest.raises(PairingMismatchError, match="wrong code or a relay that tampered"):
            hub.receive_confirmation(relay_tag_for_hub)
        with pytest.raises(PairingMismatchError, match="wrong code or a relay that tampered"):
            dev.receive_confirmation(relay_tag_for_dev)
        # ...and the relay's own checks of the real tags fail too: its guess was wrong.
        with pytest.raises(PairingMismatchError):
            relay.to_hub.receive_confirmation(hub_tag)
        with pytest.raises(PairingMismatchError):
            relay.to_dev.receive_confirmation(dev_tag)
        # The hub never seals the payload once burned, so the relay has nothing to open.
        with pytest.raises(PairingMismatchError):
            hub.seal(PAYLOAD)
        assert hub.stage is dev.stage is Stage.BURNED


def test_a_substituted_pake_message_is_detected_on_both_sides() -> None:
    code = b"9-acid-zoom"
    hub, dev = ShortCodeExchange(HUB, code, CTX), ShortCodeExchange(DEVICE, code, CTX)
    # The relay swaps the device's message for a fresh one made with the *right* code (say it
    # learned it): the keys still differ because the transcripts differ.
    other = ShortCodeExchange(DEVICE, code, CTX)
    dev_tag = dev.receive_pake(hub.pake_message())
    hub_tag = hub.receive_pake(other.pake_message())
    with pytest.raises(PairingMismatchError):
        dev.receive_confirmation(hub_tag)
    with pytest.raises(PairingMismatchError):
        hub.receive_confirmation(dev_tag)


def test_malformed_messages_and_out_of_order_steps_burn_the_code() -> None:
    code = b"9-acid-zoom"
    hub = ShortCodeExchange(HUB, code, CTX)
    with pytest.raises(PairingMismatchError, match="refused"):
        hub.receive_pake(b"\x00" * 5)
    assert hub.stage is Stage.BURNED
    hub = ShortCodeExchange(HUB, code, CTX)
    with pytest.raises(PairingMismatchError, match="out of order"):
        hub.receive_confirmation(b"\x00" * 32)  # before the PAKE
    assert hub.stage is Stage.BURNED
    # A reflected message (the hub's own) is refused by SPAKE2's asymmetric roles.
    hub = ShortCodeExchange(HUB, code, CTX)
    with pytest.raises(PairingMismatchError):
        hub.receive_pake(hub.pake_message())


def test_a_tampered_payload_is_refused() -> None:
    code = b"9-acid-zoom"
    hub, dev = ShortCodeExchange(HUB, code, CTX), ShortCodeExchange(DEVICE, code, CTX)
    dev_tag = dev.receive_pake(hub.pake_message())
    hub_tag = hub.receive_pake(dev.pake_message())
    dev.receive_confirmation(hub_tag)
    hub.receive_confirmation(dev_tag)
    sealed = bytearray(hub.seal(PAYLOAD))
    sealed[20] ^= 1
    with pytest.raises(PairingMismatchError, match="altered"):
        dev.open(bytes(sealed))


def test_the_native_exchange_is_used_once_and_validates_input() -> None:
    hub = _native.NativePake("hub", b"code", CTX)
    dev = _native.NativePake("device", b"code", CTX)
    key = hub.finish(dev.outbound())
    assert len(key) == 32 and key == dev.finish(hub.outbound())
    with pytest.raises(GroupStateError):
        hub.finish(dev.outbound())
    with pytest.raises(ValueError):
        _native.NativePake("relay", b"code", CTX)
    with pytest.raises(ValueError):
        _native.NativePake("hub", b"", CTX)
    with pytest.raises(DecodeError):
        _native.NativePake("hub", b"code", CTX).finish(b"short")
    with pytest.raises(CryptoError):
        _native.pairing_verify_confirmation(key, b"t", "device", b"\x00" * 32)
    with pytest.raises(ValueError):
        ShortCodeExchange("relay", b"code", CTX)
