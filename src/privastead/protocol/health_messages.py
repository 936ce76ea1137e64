"""Messages that keep a client's judgement of the hub honest against a relay that lies by
omission or delay (threat_model.md, "What a client notices").

- ``ClockProbe`` (client → ``control``): "answer this nonce". The hub answers at once with a
  heartbeat listing the nonce (``Heartbeat.answers``). From the round trip, measured on its own
  clock, the client tells a hub whose clock lags (a quick answer, an old ``hub_time``) from a
  relay that holds messages back (no quick answer): the relay cannot make an answer up, since
  the nonce and the time travel inside MLS, nor reuse an old one, since the nonce is fresh.
- ``ResendGone`` (hub → ``control``): "these app seqs of that group will never come": the hub
  dropped them (outbox quota, a crash) or no longer keeps them to resend. A client stops
  waiting for them and counts them as lost, not as withheld by the relay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from privastead.compat import Self
from privastead.protocol.envelope import Envelope, MessageKind
from privastead.protocol.fields import Fields, check_group, check_hex_id, check_int, check_name
from privastead.protocol.messages import _Message, check_ranges


@dataclass(frozen=True)
class ClockProbe(_Message):
    """Client → ``control``: a fresh random ``nonce`` for the hub to echo in a heartbeat."""

    KIND: ClassVar[MessageKind] = MessageKind.CLOCK_PROBE
    camera: str
    nonce: str

    def __post_init__(self) -> None:
        check_name(self.camera, "clock_probe.camera")
        check_hex_id(self.nonce, "clock_probe.nonce")

    def _header(self) -> dict[str, Any]:
        return {"camera": self.camera, "nonce": self.nonce}

    @classmethod
    def _parse(cls, envelope: Envelope) -> Self:
        f = Fields(envelope.header, "clock_probe", ("camera", "nonce"))
        return cls(camera=f.raw("camera"), nonce=f.raw("nonce"))


@dataclass(frozen=True)
class ResendGone(_Message):
    """Hub → ``control``: app seqs (inclusive ranges) of ``camera``/``group`` that the hub
    cannot send (again): stop waiting for them."""

    KIND: ClassVar[MessageKind] = MessageKind.RESEND_GONE
    camera: str
    group: str
    ranges: tuple[tuple[int, int], ...]
    seq: int

    def __post_init__(self) -> None:
        check_name(self.camera, "resend_gone.camera")
        check_group(self.group, "resend_gone.group")
        object.__setattr__(self, "ranges", check_ranges(self.ranges, "resend_gone"))
        check_int(self.seq, "resend_gone.seq")

    def _header(self) -> dict[str, Any]:
        return {
            "camera": self.camera,
            "group": self.group,
            "ranges": [list(r) for r in self.ranges],
            "seq": self.seq,
        }

    @classmethod
    def _parse(cls, envelope: Envelope) -> Self:
        f = Fields(envelope.header, "resend_gone", ("camera", "group", "ranges", "seq"))
        return cls(
            camera=f.raw("camera"),
            group=f.raw("group"),
            ranges=check_ranges(f.array("ranges"), "resend_gone"),
            seq=f.raw("seq"),
        )


__all__ = ["ClockProbe", "ResendGone"]
