"""The device's side of the short code: ``417-acorn-shiny`` → the hub's whole pairing code.

The device claims the nameplate on the relay (no token needed; the claim gives it the pairing
mailbox and a token for it, once), then runs the PAKE exchange keyed by the code with the hub
(``relay.short_channel``). The hub's sealed answer is the same pairing code its QR carries,
which ``client.pairing`` then uses as before. A wrong code, a relay that ran the exchange
itself, or a second device burns the code on both sides: :class:`PairingMismatchError`.
"""

from __future__ import annotations

from privastead.clock import Clock
from privastead.crypto import ShortCodeExchange
from privastead.errors import DecodeError, PairingMismatchError, PolicyError, RelayRejectedError
from privastead.protocol.pairing_code import PairingCode
from privastead.protocol.short_code import ShortCode, exchange_context
from privastead.relay.client import RelayClient
from privastead.relay.short_channel import ShortChannel


async def fetch_pairing_code(relay_url: str, code: ShortCode, *, clock: Clock) -> PairingCode:
    """The hub's pairing code, through the short code's exchange on ``relay_url``."""
    async with RelayClient(relay_url, "") as anonymous:
        try:
            claim = await anonymous.claim_nameplate(str(code.nameplate))
        except RelayRejectedError as e:
            if e.status == 404:
                raise PolicyError(
                    f"no pairing waits under number {code.nameplate} on {relay_url}: the code "
                    "was mistyped, has expired, or was already used (if you did not use it, "
                    "someone else may have: tell the hub's owner). Start `privastead-hub pair` "
                    "again for a new code"
                ) from None
            raise
    context = exchange_context(claim.mailbox, code.nameplate)
    exchange = ShortCodeExchange("device", code.secret, context)
    async with RelayClient(relay_url, claim.token) as relay:
        payload = await ShortChannel(relay, claim.mailbox, exchange, clock).run_device(
            claim.expires_at
        )
    try:
        return PairingCode.parse(payload.decode("ascii"))
    except (DecodeError, UnicodeDecodeError):
        # Authentic (it opened under the PAKE key) yet not a code: a broken hub, not a relay.
        raise PairingMismatchError(
            "the hub's answer to the short code is not a pairing code: update the hub and "
            "start pairing again"
        ) from None


__all__ = ["fetch_pairing_code"]
