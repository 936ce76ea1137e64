"""Encode any message to padded envelope bytes, and decode bytes back to the right class."""

from __future__ import annotations

from privastead.errors import DecodeError
from privastead.protocol.envelope import MAX_ENVELOPE_SIZE, MessageKind, decode_envelope
from privastead.protocol.health_messages import ClockProbe, ResendGone
from privastead.protocol.messages import (
    ClipEnd,
    ClipFragment,
    Heartbeat,
    LiveAnswer,
    LiveRequest,
    LiveStop,
    Notification,
    ResendRequest,
)
from privastead.protocol.pairing_messages import (
    PairAccept,
    PairKeyPackages,
    PairReject,
    ReAddAccept,
    ReAddRequest,
)
from privastead.protocol.playback_messages import (
    PlaybackAnswer,
    PlaybackRequest,
    RecordingsAnswer,
    RecordingsRequest,
)

Message = (
    Notification
    | ClipFragment
    | Heartbeat
    | ResendRequest
    | LiveRequest
    | LiveStop
    | LiveAnswer
    | ReAddRequest
    | PairKeyPackages
    | PairAccept
    | ReAddAccept
    | ClipEnd
    | ClockProbe
    | ResendGone
    | PlaybackRequest
    | PlaybackAnswer
    | RecordingsRequest
    | RecordingsAnswer
    | PairReject
)

_CLASSES: dict[MessageKind, type[Message]] = {
    cls.KIND: cls
    for cls in (
        Notification,
        ClipFragment,
        Heartbeat,
        ResendRequest,
        LiveRequest,
        LiveStop,
        LiveAnswer,
        ReAddRequest,
        PairKeyPackages,
        PairAccept,
        ReAddAccept,
        ClipEnd,
        ClockProbe,
        ResendGone,
        PlaybackRequest,
        PlaybackAnswer,
        RecordingsRequest,
        RecordingsAnswer,
        PairReject,
    )
}


def encode_message(message: Message) -> bytes:
    """The padded envelope of ``message``, i.e. the plaintext to hand to MLS."""
    return message.encode()


def decode_message(data: bytes, *, max_size: int = MAX_ENVELOPE_SIZE) -> Message:
    """Decode decrypted plaintext into its message. Anything malformed raises ``DecodeError``."""
    envelope = decode_envelope(data, max_size=max_size)
    cls = _CLASSES.get(envelope.kind)
    if cls is None:  # pragma: no cover - every MessageKind has a class (tested)
        raise DecodeError(f"no message class for kind {envelope.kind.name}")
    return cls.from_envelope(envelope)


__all__ = ["Message", "decode_message", "encode_message"]
