"""The short-code exchange over a real relay process (``relay.short_channel``): the hub
allocates a nameplate, the device claims it with nothing but the typed code, both run the
exchange through the pairing mailbox, and the payload arrives; with a wrong code both sides
burn it and the payload never reaches the mailbox; a stray frame in the mailbox (a second
device, or the relay) burns it too."""

from __future__ import annotations

import asyncio
import os

import pytest
from relay_harness import RelayProcess, mailbox_id

from privastead.clock import SystemClock
from privastead.crypto import ShortCodeExchange
from privastead.errors import PairingMismatchError
from privastead.protocol.short_code import exchange_context, frame, generate, parse, unframe
from privastead.relay.client import RelayClient
from privastead.relay.short_channel import ShortChannel

PAYLOAD = os.urandom(32) + b"relay token and hub name"
CLOCK = SystemClock()


async def _hub(relay: RelayProcess, mailbox: str, secret: bytes, nameplate: int) -> str:
    ex = ShortCodeExchange("hub", secret, exchange_context(mailbox, nameplate))
    async with relay.client() as c:
        try:
            await ShortChannel(c, mailbox, ex, CLOCK).run_hub(PAYLOAD, CLOCK.time() + 30)
        except PairingMismatchError as e:
            return str(e)
    return ""


async def _device(relay_url: str, typed: str) -> bytes | str:
    code = parse(typed)
    async with RelayClient(relay_url, "") as anonymous:
        claim = await anonymous.claim_nameplate(str(code.nameplate))
    ex = ShortCodeExchange("device", code.secret, exchange_context(claim.mailbox, code.nameplate))
    async with RelayClient(relay_url, claim.token) as c:
        try:
            return await ShortChannel(c, claim.mailbox, ex, CLOCK).run_device(CLOCK.time() + 30)
        except PairingMismatchError as e:
            return str(e)


async def _start(relay: RelayProcess) -> tuple[str, int]:
    mailbox = mailbox_id()
    async with relay.client() as hub:
        await hub.create_mailbox(mailbox)
        plate = await hub.allocate_nameplate(mailbox)
    return mailbox, int(plate.nameplate)


@pytest.mark.parametrize("wrong", [False, True])
async def test_short_code_pairing_through_a_real_relay(
    any_relay: RelayProcess, wrong: bool
) -> None:
    mailbox, nameplate = await _start(any_relay)
    code = generate(nameplate)
    typed = str(code).upper().replace("-", " ")  # as a person might type it
    if wrong:  # another list word: a plain wrong guess, not a typo that gets corrected
        other = next(w for w in ("zoom", "acid") if w != code.words[1])
        typed = f"{code.nameplate} {code.words[0]} {other}"
    hub_result, device_result = await asyncio.gather(
        _hub(any_relay, mailbox, code.secret, nameplate), _device(any_relay.url, typed)
    )
    async with any_relay.client() as hub:
        page = await hub.list_messages(mailbox)
        bodies = [await hub.body_of(mailbox, m) for m in page.messages]
    steps = [unframe(b)[:2] for b in bodies]
    if wrong:
        assert "wrong code or a relay that tampered" in hub_result
        assert isinstance(device_result, str) and "wrong code or a relay" in device_result
        assert ("hub", "sealed") not in steps  # the payload was never sent
    else:
        assert hub_result == "" and device_result == PAYLOAD
        assert ("hub", "sealed") in steps
        assert not any(PAYLOAD in b for b in bodies)  # only ever sealed on the relay


async def test_a_stray_frame_in_the_exchange_burns_it_on_both_sides(
    any_relay: RelayProcess,
) -> None:
    mailbox, nameplate = await _start(any_relay)
    code = generate(nameplate)
    # Someone with access to the mailbox (the relay) answers first with its own PAKE message.
    intruder = ShortCodeExchange("device", b"9-not-it", exchange_context(mailbox, nameplate))
    async with any_relay.client() as relay:
        await relay.upload(mailbox, frame("device", "pake", intruder.pake_message()), "x" * 16)
    hub_result, device_result = await asyncio.gather(
        _hub(any_relay, mailbox, code.secret, nameplate), _device(any_relay.url, str(code))
    )
    # The hub keyed on the intruder's message: the confirmations fail on both sides, or the
    # device's own PAKE message arrives where a confirmation belongs; either way both burn.
    assert hub_result and isinstance(device_result, str), (hub_result, device_result)
    assert "burned" in hub_result and "burned" in device_result
