"""Playback of continuous recording: what a client asks in the camera's ``control`` group and
what the hub answers (``docs/design/playback.md``).

- ``RecordingsRequest`` (client → ``control``): "which spans of ``camera`` are recorded between
  ``start`` and ``end``?" The hub answers ``RecordingsAnswer`` with merged spans.
- ``PlaybackRequest`` (client → ``control``): "send me ``camera`` from ``start`` to ``end``"
  (Unix seconds, the hub's clock; at most ``MAX_PLAYBACK_SECONDS`` long). The hub answers
  ``PlaybackAnswer``: on success the relay live channel to join, the ``live`` epoch the stream
  is encrypted in, what it will send (the wall-clock span, starting at the keyframe before
  ``start``; its duration, pieces and bytes, so the client can verify it got everything); on
  failure an ``error`` code and text, and ``nearby``: the recorded spans closest to the range
  (for "nothing recorded" the user learns what exists instead).

Both requests carry the client's random ``request`` id; answers name it, so several requests
in flight (two windows of the UI) never mix. Everything travels inside MLS: the relay sees
neither camera nor times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from privastead.compat import Self
from privastead.errors import DecodeError
from privastead.protocol.envelope import Envelope, MessageKind
from privastead.protocol.fields import (
    Fields,
    check_hex_id,
    check_int,
    check_name,
    check_number,
    check_text,
)
from privastead.protocol.messages import MAX_TIME, _Message

MAX_PLAYBACK_SECONDS = 3 * 3600.0  # one request; longer ranges are asked for in parts
MAX_LISTING_SECONDS = 8 * 86400.0  # a recordings listing covers at most a week and a day
MAX_SPANS = 1024  # spans in one listing (a day of 60 s segments with a gap between each fits)
MAX_NEARBY = 16
PLAYBACK_ERRORS = ("nothing_recorded", "busy", "unavailable")

Span = tuple[float, float]


def check_spans(value: object, what: str, limit: int = MAX_SPANS) -> tuple[Span, ...]:
    """At most ``limit`` sorted, non-overlapping ``[start, end]`` pairs of Unix seconds."""
    if not isinstance(value, tuple | list) or len(value) > limit:
        raise DecodeError(f"{what} must be a list of at most {limit} spans")
    spans: list[Span] = []
    for i, pair in enumerate(value):
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise DecodeError(f"{what}[{i}] must be [start, end]")
        start = check_number(pair[0], f"{what}[{i}][0]", 0.0, MAX_TIME)
        end = check_number(pair[1], f"{what}[{i}][1]", 0.0, MAX_TIME)
        if end < start or (spans and start < spans[-1][1]):
            raise DecodeError(f"{what} must be sorted, non-overlapping, start <= end")
        spans.append((start, end))
    return tuple(spans)


def _check_range(start: object, end: object, what: str, longest: float) -> tuple[float, float]:
    first = check_number(start, f"{what}.start", 0.0, MAX_TIME)
    last = check_number(end, f"{what}.end", 0.0, MAX_TIME)
    if not first < last <= first + longest:
        raise DecodeError(f"{what}: end must be after start and at most {longest:.0f} s later")
    return first, last


@dataclass(frozen=True)
class _RangeRequest(_Message):
    camera: str
    request: str
    start: float
    end: float
    LONGEST: ClassVar[float] = MAX_PLAYBACK_SECONDS

    def __post_init__(self) -> None:
        what = self.KIND.name.lower()
        check_name(self.camera, f"{what}.camera")
        check_hex_id(self.request, f"{what}.request")
        start, end = _check_range(self.start, self.end, what, self.LONGEST)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    def _header(self) -> dict[str, Any]:
        return {
            "camera": self.camera,
            "request": self.request,
            "start": self.start,
            "end": self.end,
        }

    @classmethod
    def _parse(cls, envelope: Envelope) -> Self:
        keys = ("camera", "request", "start", "end")
        f = Fields(envelope.header, cls.KIND.name.lower(), keys)
        return cls(**{k: f.raw(k) for k in keys})


@dataclass(frozen=True)
class PlaybackRequest(_RangeRequest):
    """Client → ``control``: send ``camera``'s recording from ``start`` to ``end``."""

    KIND: ClassVar[MessageKind] = MessageKind.PLAYBACK_REQUEST


@dataclass(frozen=True)
class RecordingsRequest(_RangeRequest):
    """Client → ``control``: list ``camera``'s recorded spans between ``start`` and ``end``."""

    KIND: ClassVar[MessageKind] = MessageKind.RECORDINGS_REQUEST
    LONGEST: ClassVar[float] = MAX_LISTING_SECONDS


@dataclass(frozen=True)
class RecordingsAnswer(_Message):
    """Hub → ``control``: the recorded spans of ``camera`` that overlap the request's range
    (adjacent segments merged; ``truncated`` when more than ``MAX_SPANS`` exist)."""

    KIND: ClassVar[MessageKind] = MessageKind.RECORDINGS_ANSWER
    camera: str
    request: str
    spans: tuple[Span, ...]
    truncated: bool
    seq: int

    def __post_init__(self) -> None:
        check_name(self.camera, "recordings_answer.camera")
        check_hex_id(self.request, "recordings_answer.request")
        object.__setattr__(self, "spans", check_spans(self.spans, "recordings_answer.spans"))
        if not isinstance(self.truncated, bool):
            raise DecodeError("recordings_answer.truncated must be true or false")
        check_int(self.seq, "recordings_answer.seq")

    def _header(self) -> dict[str, Any]:
        return {
            "camera": self.camera,
            "request": self.request,
            "spans": [list(s) for s in self.spans],
            "truncated": self.truncated,
            "seq": self.seq,
        }

    @classmethod
    def _parse(cls, envelope: Envelope) -> Self:
        keys = ("camera", "request", "spans", "truncated", "seq")
        f = Fields(envelope.header, "recordings_answer", keys)
        return cls(
            camera=f.raw("camera"),
            request=f.raw("request"),
            spans=check_spans(f.array("spans", MAX_SPANS), "recordings_answer.spans"),
            truncated=f.raw("truncated"),
            seq=f.raw("seq"),
        )


@dataclass(frozen=True)
class PlaybackAnswer(_Message):
    """Hub → ``control``: the answer to the ``PlaybackRequest`` whose id is ``request``.

    On success (``error`` empty): join relay live channel ``session_id`` as a viewer once the
    ``live`` group is at ``epoch``; the stream covers wall-clock ``start``..``end`` (``start``
    is the keyframe at or before the asked start), plays ``duration`` seconds, and comes as
    ``pieces`` fMP4 pieces (the init segment included) of ``bytes`` bytes in all. On failure,
    ``error`` is one of ``PLAYBACK_ERRORS``, ``detail`` says it for people and ``nearby``
    lists the recorded spans closest to the asked range.
    """

    KIND: ClassVar[MessageKind] = MessageKind.PLAYBACK_ANSWER
    camera: str
    request: str
    seq: int
    session_id: str = "0" * 32
    epoch: int = 0
    start: float = 0.0
    end: float = 0.0
    duration: float = 0.0
    pieces: int = 0
    bytes: int = 0
    error: str = ""
    detail: str = ""
    nearby: tuple[Span, ...] = ()

    def __post_init__(self) -> None:
        check_name(self.camera, "playback_answer.camera")
        check_hex_id(self.request, "playback_answer.request")
        check_int(self.seq, "playback_answer.seq")
        check_hex_id(self.session_id, "playback_answer.session_id")
        check_int(self.epoch, "playback_answer.epoch")
        for name in ("start", "end", "duration"):
            value = check_number(getattr(self, name), f"playback_answer.{name}", 0.0, MAX_TIME)
            object.__setattr__(self, name, value)
        check_int(self.pieces, "playback_answer.pieces", 0, 1 << 31)
        check_int(self.bytes, "playback_answer.bytes", 0, 1 << 50)
        if self.error and self.error not in PLAYBACK_ERRORS:
            raise DecodeError(f"playback_answer.error must be one of {', '.join(PLAYBACK_ERRORS)}")
        check_text(self.detail, "playback_answer.detail", 300)
        nearby = check_spans(self.nearby, "playback_answer.nearby", MAX_NEARBY)
        object.__setattr__(self, "nearby", nearby)
        if not self.error and (self.pieces < 2 or self.end < self.start):
            raise DecodeError("playback_answer: a stream has an init and a fragment at least")

    _FIELDS: ClassVar[tuple[str, ...]] = (
        "camera",
        "request",
        "seq",
        "session_id",
        "epoch",
        "start",
        "end",
        "duration",
        "pieces",
        "bytes",
        "error",
        "detail",
    )

    def _header(self) -> dict[str, Any]:
        header = {name: getattr(self, name) for name in self._FIELDS}
        header["nearby"] = [list(s) for s in self.nearby]
        return header

    @classmethod
    def _parse(cls, envelope: Envelope) -> Self:
        f = Fields(envelope.header, "playback_answer", (*cls._FIELDS, "nearby"))
        nearby = check_spans(f.array("nearby", MAX_NEARBY), "playback_answer.nearby", MAX_NEARBY)
        return cls(**{k: f.raw(k) for k in cls._FIELDS}, nearby=nearby)


__all__ = [
    "MAX_LISTING_SECONDS",
    "MAX_PLAYBACK_SECONDS",
    "MAX_SPANS",
    "PLAYBACK_ERRORS",
    "PlaybackAnswer",
    "PlaybackRequest",
    "RecordingsAnswer",
    "RecordingsRequest",
    "Span",
    "check_spans",
]
