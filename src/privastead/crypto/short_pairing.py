"""The short-code pairing exchange: a pure state machine over bytes (no sockets, no clock).

Both sides run the same four steps through the relay's pairing mailbox::

    hub                                   device
    PAKE message  ──────────────────────▶
                  ◀──────────────────────  PAKE message
    confirmation  ──────────────────────▶  (checks it)
                  ◀──────────────────────  confirmation (hub checks it)
    sealed payload ─────────────────────▶  (opens it)

The PAKE is SPAKE2 in the Rust core; the transcript (context, both PAKE messages, in side
order) is bound into the confirmation tags and the payload key, so a relay that answers with
its own PAKE message (it can try one guessed code per exchange) ends up with a key neither side
has: the confirmation tags disagree and both sides raise :class:`PairingMismatchError`. Any
failure burns the exchange; there is no retry on the same code. The payload (today's pairing
secret: MLS PSK, relay token and the rest) is sealed only after the other side's confirmation
was verified, so a relay that guessed wrong never sees it even encrypted.
"""

from __future__ import annotations

import enum
import struct

from privastead import _native
from privastead.errors import CryptoError, PairingMismatchError

HUB = "hub"
DEVICE = "device"
_AAD = b"privastead short-code pairing payload v1"


class Stage(enum.Enum):
    STARTED = "started"  # our PAKE message is out; waiting for theirs
    KEYED = "keyed"  # key derived, our confirmation out; waiting for theirs
    CONFIRMED = "confirmed"  # their confirmation verified: the payload may flow
    DONE = "done"  # the payload was sealed or opened
    BURNED = "burned"  # failed: this code can never be used again


def _framed(*parts: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


class ShortCodeExchange:
    """One side of one exchange; each method is allowed in one stage only."""

    def __init__(self, side: str, code: bytes, context: bytes) -> None:
        if side not in (HUB, DEVICE):
            raise ValueError(f"side must be {HUB!r} or {DEVICE!r}, not {side!r}")
        self.side = side
        self.peer = DEVICE if side == HUB else HUB
        self._context = bytes(context)
        self._pake = _native.NativePake(side, bytes(code), self._context)
        self._outbound = self._pake.outbound()
        self._key = b""
        self._transcript = b""
        self.stage = Stage.STARTED

    def _expect(self, stage: Stage) -> None:
        if self.stage is Stage.BURNED:
            raise PairingMismatchError()
        if self.stage is not stage:
            at = self.stage
            self._burn()
            raise PairingMismatchError(
                f"pairing exchange step out of order (at {at.value}, needed "
                f"{stage.value}): this code is now burned; start pairing again for a new code"
            )

    def _burn(self) -> None:
        self.stage = Stage.BURNED
        self._key = b""

    def burn(self) -> None:
        """Give up on this exchange (the transport saw something that does not belong in it);
        every later call raises."""
        self._burn()

    def pake_message(self) -> bytes:
        """Our PAKE message, to send first; not secret, so it may be sent again (a retry)
        until the exchange is burned."""
        if self.stage is Stage.BURNED:
            raise PairingMismatchError()
        return self._outbound

    def receive_pake(self, inbound: bytes) -> bytes:
        """Takes the peer's PAKE message; returns our confirmation tag to send."""
        self._expect(Stage.STARTED)
        try:
            self._key = self._pake.finish(bytes(inbound))
        except CryptoError as e:
            self._burn()
            raise PairingMismatchError(
                f"the other side's exchange message was refused ({e}): wrong code or a relay "
                "that tampered with the exchange; this code is now burned"
            ) from None
        hub_msg, dev_msg = (
            (self._outbound, bytes(inbound))
            if self.side == HUB
            else (bytes(inbound), self._outbound)
        )
        self._transcript = _framed(b"privastead short-code v1", self._context, hub_msg, dev_msg)
        self.stage = Stage.KEYED
        return _native.pairing_confirmation(self._key, self._transcript, self.side)

    def receive_confirmation(self, tag: bytes) -> None:
        """Checks the peer's tag (constant time); a mismatch burns the code and raises."""
        self._expect(Stage.KEYED)
        try:
            _native.pairing_verify_confirmation(self._key, self._transcript, self.peer, bytes(tag))
        except CryptoError:
            self._burn()
            raise PairingMismatchError() from None
        self.stage = Stage.CONFIRMED

    def seal(self, payload: bytes) -> bytes:
        """Encrypts the pairing payload for the peer; allowed once, after confirmation."""
        self._expect(Stage.CONFIRMED)
        sealed = _native.pairing_seal(self._key, self._transcript, self.side, _AAD, bytes(payload))
        self._done()
        return sealed

    def open(self, sealed: bytes) -> bytes:
        """Decrypts the peer's pairing payload; allowed once, after confirmation."""
        self._expect(Stage.CONFIRMED)
        try:
            payload = _native.pairing_open(
                self._key, self._transcript, self.peer, _AAD, bytes(sealed)
            )
        except CryptoError:
            self._burn()
            raise PairingMismatchError(
                "the sealed pairing payload was altered on the way: this code is now burned; "
                "start pairing again on the hub for a new code"
            ) from None
        self._done()
        return payload

    def _done(self) -> None:
        self.stage = Stage.DONE
        self._key = b""
