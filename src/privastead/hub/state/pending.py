"""A device the hub holds as *pending*: it proved it knows the pairing code, but the owner has
not confirmed it yet (``docs/design/pairing-short-code.md``, "Confirm before adding").

A pending device has nothing: no leaf in any camera group, no Welcome, no relay token. It is a
record in ``devices.json`` (``state.registry``), so ``privastead-hub devices list`` shows it and
``devices approve|reject`` decide it from any terminal, also while another process (the running
hub, or a ``privastead-hub pair`` without one) holds the exchange. It expires with the code, and
it survives a hub restart: the record and the pairing group's state file let the next
``privastead-hub run`` resume waiting.

What the owner compares before confirming: the pairing group's safety code (both sides derive
it from the same MLS epoch) and the device's key fingerprint (a hash of the KeyPackages it sent,
``PairKeyPackages.fingerprint``), which the device shows too.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from privastead.errors import StorageError


class Decision(enum.Enum):
    WAITING = "waiting"
    APPROVED = "approved"
    REJECTED = "rejected"


_KEYS = frozenset(
    {
        "name",
        "requested_at",
        "expires_at",
        "cameras",
        "replace",
        "safety_code",
        "fingerprint",
        "decision",
        "alerts",
        "mailbox",
        "token_id",
        "group_id",
        "request",
        "after_seq",
    }
)


@dataclass(frozen=True)
class PendingDevice:
    pending_id: str
    name: str
    requested_at: float
    expires_at: float
    cameras: tuple[str, ...]
    replace: str | None  # the paired device this one re-adds (``pair --replace``), if any
    safety_code: str
    fingerprint: str
    decision: Decision = Decision.WAITING
    alerts: tuple[str, ...] = ()  # security alerts seen while it waited (shown to the owner)
    # What a restarted hub needs to finish the pairing (the pairing group's state is the file
    # ``HubDataDir.pairing_state(pending_id)``): the pairing mailbox and its token's id, the
    # pairing group, the device's request (base64 of the ``PairKeyPackages`` plaintext: public
    # keys and a name) and the mailbox seq after which the answer goes.
    mailbox: str = ""
    token_id: str = ""
    group_id: str = ""
    request: str = ""
    after_seq: int = 0

    @property
    def resumable(self) -> bool:
        return bool(self.mailbox and self.group_id and self.request)

    def expired(self, now: float) -> bool:
        return now >= self.expires_at

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "requested_at": self.requested_at,
            "expires_at": self.expires_at,
            "cameras": list(self.cameras),
            "replace": self.replace,
            "safety_code": self.safety_code,
            "fingerprint": self.fingerprint,
            "decision": self.decision.value,
            "alerts": list(self.alerts),
            "mailbox": self.mailbox,
            "token_id": self.token_id,
            "group_id": self.group_id,
            "request": self.request,
            "after_seq": self.after_seq,
        }

    @classmethod
    def from_json(cls, pending_id: str, value: object) -> PendingDevice:
        what = f"devices.json: pending device {pending_id}"
        if not isinstance(value, dict) or set(value) != _KEYS:
            raise StorageError(f"{what} must hold {', '.join(sorted(_KEYS))}")
        cameras, alerts, replace = value["cameras"], value["alerts"], value["replace"]
        if not isinstance(cameras, list) or not all(isinstance(c, str) for c in cameras):
            raise StorageError(f"{what}: cameras must be a list of names")
        if not isinstance(alerts, list) or not all(isinstance(a, str) for a in alerts):
            raise StorageError(f"{what}: alerts must be a list of texts")
        if replace is not None and not isinstance(replace, str):
            raise StorageError(f"{what}: replace must be a device id or null")
        try:
            decision = Decision(value["decision"])
            return cls(
                pending_id=pending_id,
                name=str(value["name"]),
                requested_at=float(value["requested_at"]),
                expires_at=float(value["expires_at"]),
                cameras=tuple(cameras),
                replace=replace,
                safety_code=str(value["safety_code"]),
                fingerprint=str(value["fingerprint"]),
                decision=decision,
                alerts=tuple(alerts),
                mailbox=str(value["mailbox"]),
                token_id=str(value["token_id"]),
                group_id=str(value["group_id"]),
                request=str(value["request"]),
                after_seq=int(value["after_seq"]),
            )
        except (TypeError, ValueError):
            raise StorageError(f"{what}: a field has the wrong type or value") from None


__all__ = ["Decision", "PendingDevice"]
