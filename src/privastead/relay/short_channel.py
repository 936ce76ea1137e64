"""One side of the short-code exchange over the relay's pairing mailbox (both sides use it).

The hub allocates a nameplate for a fresh mailbox and shows ``<nameplate>-<word>-<word>``;
the device claims the nameplate (no token needed) and both run ``crypto.ShortCodeExchange``
through the mailbox: PAKE messages, confirmation tags, then the hub's sealed payload (today's
whole pairing code: MLS PSK, pairing mailbox and token, relay URL, expiry, cameras). Whatever
does not fit the exchange (a malformed frame, a second PAKE message, a step out of order, a
tag that does not verify) burns it: :class:`PairingMismatchError` on that side; the other
side's check fails the same way, so both say so.
"""

from __future__ import annotations

import secrets

from privastead.clock import Clock
from privastead.crypto import ShortCodeExchange
from privastead.errors import DecodeError, PairingMismatchError
from privastead.protocol.short_code import frame, unframe
from privastead.relay.client import RelayClient, next_message


class ShortChannel:
    """One side's reader and writer of the exchange's frames in one mailbox."""

    def __init__(
        self, relay: RelayClient, mailbox: str, exchange: ShortCodeExchange, clock: Clock
    ) -> None:
        self.relay = relay
        self.mailbox = mailbox
        self.exchange = exchange
        self.clock = clock
        self._after = 0

    async def send(self, step: str, body: bytes) -> None:
        data = frame(self.exchange.side, step, body)
        await self.relay.upload(self.mailbox, data, secrets.token_hex(16))

    async def receive(self, step: str, deadline: float) -> bytes:
        """The peer's next frame, which must be ``step``; anything else burns the exchange."""
        while True:
            self._after, data = await next_message(
                self.relay, self.mailbox, self._after, deadline, self.clock
            )
            try:
                side, got, body = unframe(data)
            except DecodeError:
                side, got, body = self.exchange.peer, "garbage", b""
            if side == self.exchange.side:
                continue  # our own frame
            if got != step:
                self.exchange.burn()
                raise PairingMismatchError(
                    f"an unexpected message ({got}, expected {step}) arrived in the pairing "
                    "exchange: a second device or the relay joined it. This code is now "
                    "burned; start pairing again on the hub for a new code"
                )
            return body

    async def run_hub(self, payload: bytes, deadline: float) -> None:
        """The hub's side: seal ``payload`` for the device once both confirmations check."""
        ex = self.exchange
        await self.send("pake", ex.pake_message())
        await self.send("confirm", ex.receive_pake(await self.receive("pake", deadline)))
        ex.receive_confirmation(await self.receive("confirm", deadline))
        await self.send("sealed", ex.seal(payload))

    async def run_device(self, deadline: float) -> bytes:
        """The device's side: the hub's payload, opened."""
        ex = self.exchange
        await self.send("pake", ex.pake_message())
        tag = ex.receive_pake(await self.receive("pake", deadline))
        await self.send("confirm", tag)
        ex.receive_confirmation(await self.receive("confirm", deadline))
        return ex.open(await self.receive("sealed", deadline))


__all__ = ["ShortChannel"]
