"""The short-code building blocks together through a real relay process: the hub allocates a
nameplate, the device claims it with nothing but the typed code, both run the exchange through
the pairing mailbox, and the payload arrives; with a wrong code both sides burn it and the
payload never reaches the mailbox."""

from __future__ import annotations

import asyncio
import os

import pytest
from relay_harness import RelayProcess, mailbox_id

from privastead.clock import SystemClock
from privastead.crypto import ShortCodeExchange
from privastead.errors import PairingMismatchError
from privastead.protocol.short_code import generate, parse
from privastead.relay.client import RelayClient, next_message

PAYLOAD = os.urandom(32) + b"relay token and hub name"


class Wire:
    """One side's view of the shared pairing mailbox: sends tagged frames, reads the peer's."""

    def __init__(self, relay: RelayClient, mailbox: str, me: bytes) -> None:
        self.relay, self.mailbox, self.me, self.after = relay, mailbox, me, 0

    async def send(self, kind: bytes, body: bytes) -> None:
        await self.relay.upload(self.mailbox, self.me + kind + body, os.urandom(8).hex())

    async def recv(self, kind: bytes) -> bytes:
        clock = SystemClock()
        while True:
            self.after, body = await next_message(
                self.relay, self.mailbox, self.after, clock.time() + 30, clock
            )
            if body[:1] != self.me:
                assert body[1:2] == kind
                return body[2:]


async def _hub(relay: RelayProcess, mailbox: str, code: bytes, ctx: bytes) -> list[str]:
    ex = ShortCodeExchange("hub", code, ctx)
    async with relay.client() as c:
        wire = Wire(c, mailbox, b"H")
        await wire.send(b"P", ex.pake_message())
        await wire.send(b"C", ex.receive_pake(await wire.recv(b"P")))
        try:
            ex.receive_confirmation(await wire.recv(b"C"))
        except PairingMismatchError as e:
            return [str(e)]
        await wire.send(b"S", ex.seal(PAYLOAD))
    return []


async def _device(relay_url: str, typed: str) -> bytes | str:
    code = parse(typed)
    async with RelayClient(relay_url, "") as anonymous:
        claim = await anonymous.claim_nameplate(str(code.nameplate))
    ex = ShortCodeExchange("device", code.secret, f"{relay_url}|{code.nameplate}".encode())
    async with RelayClient(relay_url, claim.token) as c:
        wire = Wire(c, claim.mailbox, b"D")
        await wire.send(b"P", ex.pake_message())
        await wire.send(b"C", ex.receive_pake(await wire.recv(b"P")))
        try:
            ex.receive_confirmation(await wire.recv(b"C"))
        except PairingMismatchError as e:
            return str(e)
        return ex.open(await wire.recv(b"S"))


@pytest.mark.parametrize("wrong", [False, True])
async def test_short_code_pairing_through_a_real_relay(
    any_relay: RelayProcess, wrong: bool
) -> None:
    mailbox = mailbox_id()
    async with any_relay.client() as hub:
        await hub.create_mailbox(mailbox)
        plate = await hub.allocate_nameplate(mailbox)
    code = generate(int(plate.nameplate))
    typed = str(code).upper().replace("-", " ")  # as a person might type it
    if wrong:  # another list word: a plain wrong guess, not a typo that gets corrected
        other = next(w for w in ("zoom", "acid") if w != code.words[1])
        typed = f"{code.nameplate} {code.words[0]} {other}"
    ctx = f"{any_relay.url}|{code.nameplate}".encode()
    hub_result, device_result = await asyncio.gather(
        _hub(any_relay, mailbox, code.secret, ctx), _device(any_relay.url, typed)
    )
    async with any_relay.client() as hub:
        page = await hub.list_messages(mailbox)
        bodies = [await hub.body_of(mailbox, m) for m in page.messages]
    if wrong:
        assert hub_result and "wrong code or a relay that tampered" in hub_result[0]
        assert isinstance(device_result, str) and "wrong code or a relay" in device_result
        assert not any(b[1:2] == b"S" for b in bodies)  # the payload was never sent
    else:
        assert hub_result == [] and device_result == PAYLOAD
        assert not any(PAYLOAD in b for b in bodies)  # only ever sealed on the relay
