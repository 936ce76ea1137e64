"""The messages hub and clients exchange inside MLS groups, as frozen, validated dataclasses.

Each message maps to one envelope kind (``envelope.MessageKind``): small fields travel in the
canonical JSON header, bulk bytes (thumbnail, fragment) in the body. Every message that the hub
sends to a group carries that group's sequence number ``seq`` so that receivers notice a drop or
a replay on their own (``seq.SeqTracker``), independently of MLS.

Construction validates like decoding does and raises ``DecodeError`` (a ``ValueError``), so an
invalid message can be neither sent nor accepted. The pairing-group messages live in
``pairing_messages`` and decode through the same ``decode_message``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from privastead.compat import Self
from privastead.errors import DecodeError
from privastead.protocol.envelope import (
    Envelope,
    MessageKind,
    encode_envelope,
)
from privastead.protocol.fields import (
    Fields,
    check_bool,
    check_bytes,
    check_group,
    check_hex_id,
    check_int,
    check_name,
    check_number,
    check_text,
)

MAX_BOXES = 64
MAX_THUMBNAIL = 1 << 20
MAX_FRAGMENT = 48 << 20
MAX_TIME = float(1 << 40)
MAX_RANGES = 256
JPEG_SOI = b"\xff\xd8"

Box = tuple[float, float, float, float]


def message_id(group_id: bytes | str, seq: int) -> str:
    """The relay message id for ``seq`` in a group: 128 bits of a domain-separated SHA-256.

    Deterministic, so a retried upload of the same ciphertext (even after a hub restart) has the
    same id and the relay stores it once; it reveals nothing the relay could link to a group.
    """
    gid = group_id.encode("utf-8") if isinstance(group_id, str) else bytes(group_id)
    check_int(seq, "seq")
    digest = hashlib.sha256(
        b"privastead/message-id/v1\x00" + len(gid).to_bytes(4, "big") + gid + seq.to_bytes(8, "big")
    )
    return digest.hexdigest()[:32]


def resend_message_id(group_id: bytes | str, seq: int, attempt: int) -> str:
    """The relay id for sending ``seq`` again (the relay lost it but remembers the first id)."""
    check_int(attempt, "attempt", 1, 999)
    return f"{message_id(group_id, seq)}-r{attempt}"


class _Message:
    """Shared plumbing: each subclass defines KIND, ``_header``, ``_body`` and ``_parse``."""

    KIND: ClassVar[MessageKind]

    def _header(self) -> dict[str, Any]:
        raise NotImplementedError

    def _body(self) -> bytes:
        return b""

    def to_envelope(self) -> Envelope:
        return Envelope(self.KIND, self._header(), self._body())

    def encode(self) -> bytes:
        """The padded envelope bytes, ready for MLS encryption."""
        return encode_envelope(self.to_envelope())

    @classmethod
    def from_envelope(cls, envelope: Envelope) -> Self:
        if envelope.kind != cls.KIND:
            raise DecodeError(f"expected a {cls.KIND.name.lower()}, got {envelope.kind.name}")
        if cls._BODYLESS and envelope.body:
            raise DecodeError(f"{cls.KIND.name.lower()} must have an empty body")
        return cls._parse(envelope)

    _BODYLESS: ClassVar[bool] = True

    @classmethod
    def _parse(cls, envelope: Envelope) -> Self:
        raise NotImplementedError


def _check_boxes(boxes: object) -> tuple[Box, ...]:
    if not isinstance(boxes, tuple | list) or len(boxes) > MAX_BOXES:
        raise DecodeError(f"notification.boxes must be a list of at most {MAX_BOXES} boxes")
    result: list[Box] = []
    for i, box in enumerate(boxes):
        if not isinstance(box, tuple | list) or len(box) != 4:
            raise DecodeError(f"notification.boxes[{i}] must be [x, y, w, h]")
        x, y, w, h = (check_number(v, f"notification.boxes[{i}]", 0.0, 1.0) for v in box)
        if x + w > 1.0 + 1e-9 or y + h > 1.0 + 1e-9:
            raise DecodeError(f"notification.boxes[{i}] extends beyond the frame")
        result.append((x, y, w, h))
    return tuple(result)


@dataclass(frozen=True)
class Notification(_Message):
    """Event start: sent in the camera's ``events`` group; the thumbnail JPEG is the body."""

    KIND: ClassVar[MessageKind] = MessageKind.NOTIFICATION
    _BODYLESS: ClassVar[bool] = False
    camera: str
    event_id: str
    at: float
    score: float
    boxes: tuple[Box, ...]
    seq: int
    thumbnail: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        check_name(self.camera, "notification.camera")
        check_hex_id(self.event_id, "notification.event_id")
        object.__setattr__(self, "at", check_number(self.at, "notification.at", 0.0, MAX_TIME))
        object.__setattr__(self, "score", check_number(self.score, "notification.score", 0, 1e9))
        object.__setattr__(self, "boxes", _check_boxes(self.boxes))
        check_int(self.seq, "notification.seq")
        check_bytes(self.thumbnail, "notification.thumbnail", max_len=MAX_THUMBNAIL)
        if self.thumbnail and not self.thumbnail.startswith(JPEG_SOI):
            raise DecodeError("notification.thumbnail must be a JPEG (starts with FF D8)")

    def _header(self) -> dict[str, Any]:
        return {
            "camera": self.camera,
            "event_id": self.event_id,
            "at": self.at,
            "score": self.score,
            "boxes": [list(b) for b in self.boxes],
            "seq": self.seq,
        }

    def _body(self) -> bytes:
        return self.thumbnail

    @classmethod
    def _parse(cls, envelope: Envelope) -> Self:
        f = Fields(
            envelope.header, "notification", ("camera", "event_id", "at", "score", "boxes", "seq")
        )
        return cls(
            camera=f.raw("camera"),
            event_id=f.raw("event_id"),
            at=check_number(f.raw("at"), f.what("at"), 0.0, MAX_TIME),
            score=check_number(f.raw("score"), f.what("score"), 0.0, 1e9),
            boxes=_check_boxes(f.array("boxes", MAX_BOXES)),
            seq=f.raw("seq"),
            thumbnail=envelope.body,
        )


@dataclass(frozen=True)
class ClipFragment(_Message):
    """One fMP4 piece of a clip (index 0 is the init segment); ``final`` marks the last one.

    The clip id and index are inside the authenticated plaintext, so reordering, truncation and
    splicing across clips are visible to the receiver (``client.clipstore`` enforces them).
    """

    KIND: ClassVar[MessageKind] = MessageKind.CLIP_FRAGMENT
    _BODYLESS: ClassVar[bool] = False
    clip_id: str
    event_id: str
    index: int
    final: bool
    is_init: bool
    seq: int
    data: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        check_hex_id(self.clip_id, "clip_fragment.clip_id")
        check_hex_id(self.event_id, "clip_fragment.event_id")
        check_int(self.index, "clip_fragment.index", 0, 1 << 31)
        check_bool(self.final, "clip_fragment.final")
        check_bool(self.is_init, "clip_fragment.is_init")
        check_int(self.seq, "clip_fragment.seq")
        check_bytes(self.data, "clip_fragment.data", min_len=1, max_len=MAX_FRAGMENT)
        if self.is_init != (self.index == 0):
            raise DecodeError("clip_fragment: the init segment is index 0, and only index 0")

    def _header(self) -> dict[str, Any]:
        return {
            "clip_id": self.clip_id,
            "event_id": self.event_id,
            "index": self.index,
            "final": self.final,
            "is_init": self.is_init,
            "seq": self.seq,
        }

    def _body(self) -> bytes:
        return self.data

    @classmethod
    def _parse(cls, envelope: Envelope) -> Self:
        keys = ("clip_id", "event_id", "index", "final", "is_init", "seq")
        f = Fields(envelope.header, "clip_fragment", keys)
        return cls(**{k: f.raw(k) for k in keys}, data=envelope.body)


CLIP_END_REASONS = ("hub_restarted",)


@dataclass(frozen=True)
class ClipEnd(_Message):
    """The hub ends a clip without a ``final`` fragment: it stopped recording it early.

    Sent after a hub restart for the clip that was being recorded when it died: fragments
    ``0 .. fragments - 1`` are the whole clip (a playable prefix of the event). Clients finish
    the clip once they hold all of them and mark it incomplete with ``reason``. It names the
    clip and event like a fragment does, so it cannot end another clip unnoticed.
    """

    KIND: ClassVar[MessageKind] = MessageKind.CLIP_END
    clip_id: str
    event_id: str
    fragments: int
    reason: str
    seq: int

    def __post_init__(self) -> None:
        check_hex_id(self.clip_id, "clip_end.clip_id")
        check_hex_id(self.event_id, "clip_end.event_id")
        check_int(self.fragments, "clip_end.fragments", 1, 1 << 31)
        if self.reason not in CLIP_END_REASONS:
            raise DecodeError(f"clip_end.reason must be one of {', '.join(CLIP_END_REASONS)}")
        check_int(self.seq, "clip_end.seq")

    def _header(self) -> dict[str, Any]:
        return {
            "clip_id": self.clip_id,
            "event_id": self.event_id,
            "fragments": self.fragments,
            "reason": self.reason,
            "seq": self.seq,
        }

    @classmethod
    def _parse(cls, envelope: Envelope) -> Self:
        keys = ("clip_id", "event_id", "fragments", "reason", "seq")
        f = Fields(envelope.header, "clip_end", keys)
        return cls(**{k: f.raw(k) for k in keys})


def _check_scalar_map(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping) or len(value) > 256:
        raise DecodeError(f"{what} must be an object of at most 256 entries")
    for key, item in value.items():
        check_text(key, f"{what} key", 64)
        if isinstance(item, float):
            check_number(item, f"{what}.{key}", -1e18, 1e18)
        elif isinstance(item, str):
            check_text(item, f"{what}.{key}")
        elif not (item is None or isinstance(item, int | bool)):
            raise DecodeError(f"{what}.{key} must be a string, number, boolean or null")
    return dict(value)


def _check_int_map(value: object, what: str) -> dict[str, int]:
    if not isinstance(value, Mapping) or len(value) > 1024:
        raise DecodeError(f"{what} must be an object of at most 1024 entries")
    return {
        check_text(k, f"{what} key", 128): check_int(v, f"{what}.{k}") for k, v in value.items()
    }


MAX_ANSWERS = 16


@dataclass(frozen=True)
class Heartbeat(_Message):
    """Sent in each camera's ``control`` group every interval (and at once to answer a
    ``ClockProbe``).

    ``hub_time`` is the hub's clock: a client judges freshness by it, not by when the relay
    delivered the heartbeat. ``cameras`` maps a camera name to flat health facts (fps, last
    frame age, errors ...), ``epochs`` maps ``"<camera>/<group>"`` to the hub's MLS epoch,
    ``outbox`` holds the outbox counters (pending, bytes, dropped clips), so a client tells an
    outage from a desync. ``sent`` maps ``"<camera>/<group>"`` to the highest app seq of that
    group the relay has accepted from the hub (groups without application messages are left
    out): a client missing any of them knows the relay is holding them back, even when no later
    message ever arrives. ``answers`` lists the nonces of the ``ClockProbe`` requests this
    heartbeat answers.
    """

    KIND: ClassVar[MessageKind] = MessageKind.HEARTBEAT
    hub_time: float
    seq: int
    hub_version: str
    cameras: Mapping[str, Mapping[str, Any]]
    epochs: Mapping[str, int]
    outbox: Mapping[str, int]
    sent: Mapping[str, int] = field(default_factory=dict)
    answers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        hub_time = check_number(self.hub_time, "heartbeat.hub_time", 0.0, MAX_TIME)
        object.__setattr__(self, "hub_time", hub_time)
        check_int(self.seq, "heartbeat.seq")
        check_text(self.hub_version, "heartbeat.hub_version", 64)
        if not isinstance(self.cameras, Mapping) or len(self.cameras) > 256:
            raise DecodeError("heartbeat.cameras must be an object of at most 256 cameras")
        cameras = {
            check_name(name, "heartbeat.cameras key"): _check_scalar_map(
                health, f"heartbeat.cameras.{name}"
            )
            for name, health in self.cameras.items()
        }
        object.__setattr__(self, "cameras", cameras)
        object.__setattr__(self, "epochs", _check_int_map(self.epochs, "heartbeat.epochs"))
        object.__setattr__(self, "outbox", _check_int_map(self.outbox, "heartbeat.outbox"))
        object.__setattr__(self, "sent", _check_int_map(self.sent, "heartbeat.sent"))
        if not isinstance(self.answers, tuple | list) or len(self.answers) > MAX_ANSWERS:
            raise DecodeError(f"heartbeat.answers must list at most {MAX_ANSWERS} nonces")
        answers = tuple(check_hex_id(n, "heartbeat.answers[]") for n in self.answers)
        object.__setattr__(self, "answers", answers)

    def _header(self) -> dict[str, Any]:
        return {
            "hub_time": self.hub_time,
            "seq": self.seq,
            "hub_version": self.hub_version,
            "cameras": {k: dict(v) for k, v in self.cameras.items()},
            "epochs": dict(self.epochs),
            "outbox": dict(self.outbox),
            "sent": dict(self.sent),
            "answers": list(self.answers),
        }

    @classmethod
    def _parse(cls, envelope: Envelope) -> Self:
        keys = ("hub_time", "seq", "hub_version", "cameras", "epochs", "outbox", "sent", "answers")
        f = Fields(envelope.header, "heartbeat", keys)
        return cls(
            hub_time=check_number(f.raw("hub_time"), f.what("hub_time"), 0.0, MAX_TIME),
            seq=f.raw("seq"),
            hub_version=f.raw("hub_version"),
            cameras=f.obj("cameras"),
            epochs=f.obj("epochs"),
            outbox=f.obj("outbox"),
            sent=f.obj("sent"),
            answers=tuple(f.array("answers", MAX_ANSWERS)),
        )


def check_ranges(value: object, what: str = "resend_request") -> tuple[tuple[int, int], ...]:
    """1 to MAX_RANGES sorted, disjoint, inclusive ``[first, last]`` seq ranges."""
    if not isinstance(value, tuple | list) or not 0 < len(value) <= MAX_RANGES:
        raise DecodeError(f"{what}.ranges must hold 1 to {MAX_RANGES} ranges")
    result: list[tuple[int, int]] = []
    for i, pair in enumerate(value):
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise DecodeError(f"{what}.ranges[{i}] must be [first, last]")
        first = check_int(pair[0], f"{what}.ranges[{i}][0]")
        last = check_int(pair[1], f"{what}.ranges[{i}][1]")
        if first > last or (result and first <= result[-1][1]):
            raise DecodeError(f"{what}.ranges must be sorted, disjoint, first <= last")
        result.append((first, last))
    return tuple(result)


@dataclass(frozen=True)
class ResendRequest(_Message):
    """Client → ``control``: "I am missing these seq ranges (inclusive) of that group"."""

    KIND: ClassVar[MessageKind] = MessageKind.RESEND_REQUEST
    camera: str
    group: str
    ranges: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        check_name(self.camera, "resend_request.camera")
        check_group(self.group, "resend_request.group")
        object.__setattr__(self, "ranges", check_ranges(self.ranges))

    def _header(self) -> dict[str, Any]:
        return {
            "camera": self.camera,
            "group": self.group,
            "ranges": [list(r) for r in self.ranges],
        }

    @classmethod
    def _parse(cls, envelope: Envelope) -> Self:
        f = Fields(envelope.header, "resend_request", ("camera", "group", "ranges"))
        ranges = check_ranges(f.array("ranges"))
        return cls(camera=f.raw("camera"), group=f.raw("group"), ranges=ranges)


@dataclass(frozen=True)
class _LiveControl(_Message):
    camera: str
    session_id: str

    def __post_init__(self) -> None:
        check_name(self.camera, f"{self.KIND.name.lower()}.camera")
        check_hex_id(self.session_id, f"{self.KIND.name.lower()}.session_id")

    def _header(self) -> dict[str, Any]:
        return {"camera": self.camera, "session_id": self.session_id}

    @classmethod
    def _parse(cls, envelope: Envelope) -> Self:
        f = Fields(envelope.header, cls.KIND.name.lower(), ("camera", "session_id"))
        return cls(camera=f.raw("camera"), session_id=f.raw("session_id"))


@dataclass(frozen=True)
class LiveRequest(_LiveControl):
    """Client → ``control``: start a livestream of ``camera`` as session ``session_id``."""

    KIND: ClassVar[MessageKind] = MessageKind.LIVE_REQUEST


@dataclass(frozen=True)
class LiveStop(_LiveControl):
    """Client → ``control``: end livestream session ``session_id``."""

    KIND: ClassVar[MessageKind] = MessageKind.LIVE_STOP


@dataclass(frozen=True)
class LiveAnswer(_Message):
    """Hub → ``control``: the answer to the ``LiveRequest`` whose id was ``request``.

    ``session_id`` is the relay live channel to join as a viewer (a fresh random id per session,
    chosen by the hub; a request while a session runs gets the running one). ``epoch`` is the
    ``live`` group's epoch the fragments are encrypted in: the client processes the ``live``
    mailbox up to it (the session's self-update commit) before it connects. ``error`` is empty
    on success, else why no session runs (camera offline ...), and then ``session_id`` is unused.
    """

    KIND: ClassVar[MessageKind] = MessageKind.LIVE_ANSWER
    camera: str
    request: str
    session_id: str
    epoch: int
    seq: int
    error: str = ""

    def __post_init__(self) -> None:
        check_name(self.camera, "live_answer.camera")
        check_hex_id(self.request, "live_answer.request")
        check_hex_id(self.session_id, "live_answer.session_id")
        check_int(self.epoch, "live_answer.epoch")
        check_int(self.seq, "live_answer.seq")
        check_text(self.error, "live_answer.error", 200)

    def _header(self) -> dict[str, Any]:
        return {
            "camera": self.camera,
            "request": self.request,
            "session_id": self.session_id,
            "epoch": self.epoch,
            "seq": self.seq,
            "error": self.error,
        }

    @classmethod
    def _parse(cls, envelope: Envelope) -> Self:
        keys = ("camera", "request", "session_id", "epoch", "seq", "error")
        f = Fields(envelope.header, "live_answer", keys)
        return cls(**{k: f.raw(k) for k in keys})


__all__ = [
    "CLIP_END_REASONS",
    "MAX_ANSWERS",
    "Box",
    "ClipEnd",
    "ClipFragment",
    "Heartbeat",
    "LiveAnswer",
    "LiveRequest",
    "LiveStop",
    "Notification",
    "ResendRequest",
    "check_ranges",
    "message_id",
    "resend_message_id",
]
