"""Messages of pairing and re-adding a device (protocol.md, "Pairing").

``PairKeyPackages``, ``PairAccept`` and ``PairReject`` travel only inside the two-member pairing
group, which is keyed by the one-time secret of the pairing code (an MLS external PSK); being
inside that group is what authenticates them. ``ReAddRequest`` comes from a device that lost
sync with some of its camera groups and asks the hub to remove and re-add it there, without
touching other devices.
Binary fields (key packages, Welcomes, signature keys) are strict base64 in the JSON header.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from privastead.compat import Self
from privastead.errors import DecodeError
from privastead.protocol.envelope import Envelope, MessageKind
from privastead.protocol.fields import (
    Fields,
    b64,
    check_bytes,
    check_group,
    check_hex_id,
    check_int,
    check_name,
    check_text,
    check_token,
    unb64,
)
from privastead.protocol.messages import _Message

MAX_CAMERAS = 64
MAX_KEY_PACKAGE = 16 << 10
MAX_WELCOME = 256 << 10
MAX_SIGNATURE_KEY = 1 << 10


def _check_kp_map(value: object, what: str) -> dict[str, bytes]:
    """group name -> KeyPackage bytes."""
    if not isinstance(value, Mapping) or not value:
        raise DecodeError(f"{what} must map at least one group to a key package")
    return {
        check_group(g, f"{what} key"): check_bytes(
            kp, f"{what}.{g}", min_len=1, max_len=MAX_KEY_PACKAGE
        )
        for g, kp in value.items()
    }


def _kp_map_from_json(value: object, what: str) -> dict[str, bytes]:
    if not isinstance(value, dict):
        raise DecodeError(f"{what} must be an object")
    return {g: unb64(kp, f"{what}.{g}") for g, kp in value.items()}


@dataclass(frozen=True)
class PairKeyPackages(_Message):
    """Client → pairing group: its name and one KeyPackage per (camera, group) it wants.

    Each KeyPackage belongs to a fresh identity, so a device's groups are not linkable through
    a shared credential.
    """

    KIND: ClassVar[MessageKind] = MessageKind.PAIR_KEY_PACKAGES
    device_name: str
    key_packages: Mapping[str, Mapping[str, bytes]]

    def __post_init__(self) -> None:
        check_name(self.device_name, "pair_key_packages.device_name")
        kps = self.key_packages
        if not isinstance(kps, Mapping) or not 0 < len(kps) <= MAX_CAMERAS:
            raise DecodeError(
                f"pair_key_packages.key_packages must name 1 to {MAX_CAMERAS} cameras"
            )
        checked = {
            check_name(cam, "pair_key_packages camera"): _check_kp_map(
                groups, f"pair_key_packages.key_packages.{cam}"
            )
            for cam, groups in kps.items()
        }
        object.__setattr__(self, "key_packages", checked)

    def _header(self) -> dict[str, Any]:
        return {
            "device_name": self.device_name,
            "key_packages": {
                cam: {g: b64(kp) for g, kp in groups.items()}
                for cam, groups in self.key_packages.items()
            },
        }

    def fingerprint(self) -> str:
        """The device's key fingerprint the owner compares before confirming: SHA-256 over
        every KeyPackage it sent (camera, group, bytes; sorted), 64 bits as four groups of
        four hex digits. Both sides compute it from the same bytes."""
        digest = hashlib.sha256(b"privastead device keys v1")
        for cam in sorted(self.key_packages):
            for group, kp in sorted(self.key_packages[cam].items()):
                for part in (cam.encode(), group.encode(), bytes(kp)):
                    digest.update(struct.pack(">I", len(part)) + part)
        hexed = digest.hexdigest()[:16]
        return " ".join(hexed[i : i + 4] for i in range(0, 16, 4))

    @classmethod
    def _parse(cls, envelope: Envelope) -> Self:
        f = Fields(envelope.header, "pair_key_packages", ("device_name", "key_packages"))
        kps = {
            cam: _kp_map_from_json(groups, f"pair_key_packages.key_packages.{cam}")
            for cam, groups in f.obj("key_packages").items()
        }
        return cls(device_name=f.raw("device_name"), key_packages=kps)


@dataclass(frozen=True)
class GroupGrant:
    """What a device needs to join one camera group.

    ``first_seq`` is the hub's next sequence number in that group when the device was added: the
    device's sequence tracker starts there, so even its first messages cannot be dropped unseen.
    ``after_seq`` is the relay seq of the commit that added the device in the group's mailbox
    (0: not known): the device reads from the message after it, so a commit the hub makes before
    the device registers is not skipped (the hub registered the device's token there first).
    """

    group: str
    mailbox: str
    hub_signature_key: bytes
    welcome: bytes
    first_seq: int
    after_seq: int = 0

    def __post_init__(self) -> None:
        check_group(self.group, "group_grant.group")
        check_hex_id(self.mailbox, "group_grant.mailbox")
        check_bytes(
            self.hub_signature_key,
            "group_grant.hub_signature_key",
            min_len=1,
            max_len=MAX_SIGNATURE_KEY,
        )
        check_bytes(self.welcome, "group_grant.welcome", min_len=1, max_len=MAX_WELCOME)
        check_int(self.first_seq, "group_grant.first_seq")
        check_int(self.after_seq, "group_grant.after_seq")

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "mailbox": self.mailbox,
            "hub_signature_key": b64(self.hub_signature_key),
            "welcome": b64(self.welcome),
            "first_seq": self.first_seq,
            "after_seq": self.after_seq,
        }

    @classmethod
    def from_json(cls, value: object) -> Self:
        if not isinstance(value, dict):
            raise DecodeError("group_grant must be an object")
        keys = ("group", "mailbox", "hub_signature_key", "welcome", "first_seq", "after_seq")
        f = Fields(value, "group_grant", keys)
        return cls(
            group=f.raw("group"),
            mailbox=f.raw("mailbox"),
            hub_signature_key=unb64(f.raw("hub_signature_key"), f.what("hub_signature_key")),
            welcome=unb64(f.raw("welcome"), f.what("welcome")),
            first_seq=f.raw("first_seq"),
            after_seq=f.raw("after_seq"),
        )


@dataclass(frozen=True)
class CameraGrant:
    """One camera the device was added to, with a grant per group."""

    camera: str
    groups: tuple[GroupGrant, ...]

    def __post_init__(self) -> None:
        check_name(self.camera, "camera_grant.camera")
        if not isinstance(self.groups, tuple) or not self.groups:
            raise DecodeError("camera_grant.groups must hold at least one group")
        names = [g.group for g in self.groups if isinstance(g, GroupGrant)]
        if len(names) != len(self.groups) or len(set(names)) != len(names):
            raise DecodeError(f"camera_grant {self.camera!r}: groups must be distinct grants")

    def to_json(self) -> dict[str, Any]:
        return {"camera": self.camera, "groups": [g.to_json() for g in self.groups]}

    @classmethod
    def from_json(cls, value: object) -> Self:
        if not isinstance(value, dict):
            raise DecodeError("camera_grant must be an object")
        f = Fields(value, "camera_grant", ("camera", "groups"))
        groups = tuple(GroupGrant.from_json(g) for g in f.array("groups", 8))
        return cls(camera=f.raw("camera"), groups=groups)


@dataclass(frozen=True)
class PairAccept(_Message):
    """Hub → pairing group: the device's id, its own relay token, and a grant per camera."""

    KIND: ClassVar[MessageKind] = MessageKind.PAIR_ACCEPT
    device_id: str
    relay_token: str
    cameras: tuple[CameraGrant, ...]

    def __repr__(self) -> str:  # the token is a credential: keep it out of logs
        cams = ", ".join(c.camera for c in self.cameras)
        return f"PairAccept(device_id={self.device_id!r}, cameras=[{cams}])"

    def __post_init__(self) -> None:
        check_hex_id(self.device_id, "pair_accept.device_id")
        check_token(self.relay_token, "pair_accept.relay_token")
        if not isinstance(self.cameras, tuple) or not 0 < len(self.cameras) <= MAX_CAMERAS:
            raise DecodeError(f"pair_accept.cameras must hold 1 to {MAX_CAMERAS} cameras")
        names = [c.camera for c in self.cameras if isinstance(c, CameraGrant)]
        if len(names) != len(self.cameras) or len(set(names)) != len(names):
            raise DecodeError("pair_accept.cameras must be distinct camera grants")

    def _header(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "relay_token": self.relay_token,
            "cameras": [c.to_json() for c in self.cameras],
        }

    @classmethod
    def _parse(cls, envelope: Envelope) -> Self:
        f = Fields(envelope.header, "pair_accept", ("device_id", "relay_token", "cameras"))
        cameras = tuple(CameraGrant.from_json(c) for c in f.array("cameras", MAX_CAMERAS))
        return cls(device_id=f.raw("device_id"), relay_token=f.raw("relay_token"), cameras=cameras)


#: Why the hub refused a device that it held as pending.
REJECT_REASONS = ("rejected", "expired")


@dataclass(frozen=True)
class PairReject(_Message):
    """Hub → pairing group: the owner rejected this device, or never confirmed it before the
    code expired. The device got nothing (no group, no token) and is told so plainly."""

    KIND: ClassVar[MessageKind] = MessageKind.PAIR_REJECT
    reason: str

    def __post_init__(self) -> None:
        if self.reason not in REJECT_REASONS:
            raise DecodeError(f"pair_reject.reason must be one of {', '.join(REJECT_REASONS)}")

    def _header(self) -> dict[str, Any]:
        return {"reason": self.reason}

    @classmethod
    def _parse(cls, envelope: Envelope) -> Self:
        f = Fields(envelope.header, "pair_reject", ("reason",))
        return cls(reason=f.raw("reason"))


@dataclass(frozen=True)
class ReAddRequest(_Message):
    """A desynced device asks to be removed and re-added to some groups of one camera.

    It carries fresh KeyPackages for those groups; the hub checks the sender is the device it
    claims to be (MLS sender of the uplink) before acting.
    """

    KIND: ClassVar[MessageKind] = MessageKind.READD_REQUEST
    device_id: str
    camera: str
    key_packages: Mapping[str, bytes]
    reason: str = ""

    def __post_init__(self) -> None:
        check_hex_id(self.device_id, "readd_request.device_id")
        check_name(self.camera, "readd_request.camera")
        object.__setattr__(
            self, "key_packages", _check_kp_map(self.key_packages, "readd_request.key_packages")
        )
        check_text(self.reason, "readd_request.reason", 200)

    def _header(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "camera": self.camera,
            "key_packages": {g: b64(kp) for g, kp in self.key_packages.items()},
            "reason": self.reason,
        }

    @classmethod
    def _parse(cls, envelope: Envelope) -> Self:
        keys = ("device_id", "camera", "key_packages", "reason")
        f = Fields(envelope.header, "readd_request", keys)
        return cls(
            device_id=f.raw("device_id"),
            camera=f.raw("camera"),
            key_packages=_kp_map_from_json(f.raw("key_packages"), f.what("key_packages")),
            reason=f.raw("reason"),
        )


@dataclass(frozen=True)
class ReAddAccept(_Message):
    """Hub -> ``control`` group: the answer to a ``ReAddRequest`` of ``device_id``.

    The grant's Welcomes are encrypted to the device's fresh KeyPackages, so the other members
    of the control group, who also see this message, learn nothing from them. ``seq`` is the
    control group's app seq like any message there (no gap for the other devices).
    """

    KIND: ClassVar[MessageKind] = MessageKind.READD_ACCEPT
    device_id: str
    seq: int
    camera: CameraGrant

    def __post_init__(self) -> None:
        check_hex_id(self.device_id, "readd_accept.device_id")
        check_int(self.seq, "readd_accept.seq")
        if not isinstance(self.camera, CameraGrant):
            raise DecodeError("readd_accept.camera must be a camera grant")

    def _header(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "seq": self.seq, "camera": self.camera.to_json()}

    @classmethod
    def _parse(cls, envelope: Envelope) -> Self:
        f = Fields(envelope.header, "readd_accept", ("device_id", "seq", "camera"))
        return cls(
            device_id=f.raw("device_id"),
            seq=f.raw("seq"),
            camera=CameraGrant.from_json(f.raw("camera")),
        )


__all__ = [
    "REJECT_REASONS",
    "CameraGrant",
    "GroupGrant",
    "PairAccept",
    "PairKeyPackages",
    "PairReject",
    "ReAddAccept",
    "ReAddRequest",
]
