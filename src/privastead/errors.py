"""The one exception tree of Privastead.

Catch ``PrivasteadError`` to catch everything this package raises on purpose::

    PrivasteadError
    ├── ConfigError (ValueError)        bad config file or option; names the file and line
    ├── StorageError (OSError)          state file missing, corrupt, locked, or disk failure
    │   ├── StateLockedError            another process holds the state file
    │   └── StorageFullError            the disk (or a quota) is full: make room, then go on
    ├── CryptoError                     anything from the MLS core
    │   ├── DecodeError (ValueError)    bytes that are not a well-formed message, or too large
    │   ├── DecryptionError             cannot decrypt or authenticate; deliberately uninformative
    │   ├── WrongEpochError             handshake or data for another epoch (buffer or drop)
    │   ├── StaleMessageError           too old: its keys are gone (forward secrecy)
    │   ├── DuplicateMessageError       already decrypted once; safe to drop
    │   ├── PolicyError                 well-formed and authentic, but not allowed by our rules
    │   │   └── PairingRefusedError     the owner rejected the device, or did not confirm in time
    │   ├── GroupStateError             unknown group, removed from group, pending commit ...
    │   ├── JoinError                   a Welcome that cannot be joined (wrong PSK, no key package)
    │   └── PairingMismatchError        short-code pairing failed: wrong code or a tampering relay
    ├── RelayError                      talking to the relay
    │   ├── RelayUnavailableError       network error, timeout, 5xx: retry later
    │   └── RelayRejectedError          a 4xx: the request is wrong and retrying will not help
    │       └── DeviceRemovedError      this device's token was revoked: it was removed, stop
    ├── MediaError                      cameras, decoding, recording
    │   ├── CameraUnavailableError      cannot connect, stalled, or the stream ended
    │   ├── CorruptMediaError           undecodable or malformed video
    │   ├── NothingRecordedError        no recording in the asked time range (says what exists)
    │   └── PlaybackIncompleteError     a playback arrived with a gap, reordered or cut short
    ├── AdminError                      the running hub's local admin socket refused or broke off
    ├── LocalSocketError                the running client's local socket refused or broke off
    └── RemovalIncompleteError          a device removal that the groups' member lists disprove

Security-relevant calls raise and never return ``False``. Every failure to decrypt or
authenticate a message surfaces as the same ``DecryptionError`` with the same text, so that
callers (and logs) learn nothing about which check failed.
"""

from __future__ import annotations


class PrivasteadError(Exception):
    """Base of every error Privastead raises on purpose."""


class ConfigError(PrivasteadError, ValueError):
    """A config file or option is invalid. The message names the file, line and key."""


class StorageError(PrivasteadError, OSError):
    """Persistent state could not be read or written, or is corrupt."""


class StateLockedError(StorageError):
    """The state file is in use by another process."""


class StorageFullError(StorageError):
    """The disk or a quota is full. What was written before stays intact; the writer waits
    until room is made (retention) instead of failing for good."""


class CryptoError(PrivasteadError):
    """An operation of the MLS core failed."""


class DecodeError(CryptoError, ValueError):
    """The input is not a well-formed message of the expected kind, or exceeds the size limit."""


class DecryptionError(CryptoError):
    """The message cannot be decrypted or authenticated.

    Deliberately carries no detail: a wrong key, a tampered byte, a forged signature and an
    unknown sender all look the same.
    """

    def __init__(self, message: str = "message could not be decrypted or authenticated") -> None:
        super().__init__(message)


class WrongEpochError(CryptoError):
    """The message belongs to another epoch than the group's current one."""

    def __init__(self, message: str, message_epoch: int = -1, group_epoch: int = -1) -> None:
        super().__init__(message)
        self.message_epoch = message_epoch
        self.group_epoch = group_epoch


class StaleMessageError(CryptoError):
    """The message is too old: the keys needed to read it were deleted (forward secrecy)."""


class DuplicateMessageError(CryptoError):
    """The message was already decrypted once. Relays may duplicate; drop it."""


class PairingMismatchError(CryptoError):
    """A short-code pairing exchange failed its key confirmation, or was used out of order.

    Both sides raise it with the same text: either side typed a wrong code or the relay ran the
    exchange itself. The code is burned either way; the remedy is a new code.
    """

    def __init__(
        self,
        message: str = (
            "wrong code or a relay that tampered with the exchange: this code is now burned; "
            "start pairing again on the hub for a new code"
        ),
    ) -> None:
        super().__init__(message)


class PolicyError(CryptoError):
    """The message or operation is authentic but not allowed by Privastead's group policy."""


class PairingRefusedError(PolicyError):
    """The hub held the device as pending and the owner rejected it, or did not confirm it
    before the code expired: the device got nothing (no group, no relay token)."""

    def __init__(self, message: str, reason: str = "rejected") -> None:
        super().__init__(message)
        self.reason = reason


class GroupStateError(CryptoError):
    """The group is unknown, inactive (we were removed), or in a state that forbids the call."""


class JoinError(CryptoError):
    """A Welcome could not be joined: wrong pre-shared key, no matching key package, or the
    inviter or membership is not what was expected."""


class RelayError(PrivasteadError):
    """Talking to the relay failed."""


class RelayUnavailableError(RelayError):
    """The relay could not be reached or failed on its side; retrying later may help."""


class RelayRejectedError(RelayError):
    """The relay refused the request (4xx). Retrying the same request will not help."""

    def __init__(self, message: str, status: int = 400, code: str = "bad_request") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class DeviceRemovedError(RelayRejectedError):
    """The relay answered that this device's token was revoked (code ``device_removed``).

    The hub removed the device (or the owner revoked its token): nothing will ever succeed
    with it again, so a client stops retrying and tells its user to pair again.
    """

    def __init__(
        self,
        message: str = "this device was removed: pair it again",
        status: int = 401,
        code: str = "device_removed",
    ) -> None:
        super().__init__(message, status, code)


class MediaError(PrivasteadError):
    """A camera stream, decoder or recorder failed."""


class CameraUnavailableError(MediaError):
    """The camera cannot be reached, stalled, or ended its stream."""


class CorruptMediaError(MediaError):
    """Video data is malformed or cannot be decoded."""


class NothingRecordedError(MediaError):
    """The hub holds no recording of the camera in the asked time range; the message lists
    the recorded spans nearest to it."""


class PlaybackIncompleteError(MediaError):
    """A playback stream lost, reordered or repeated a message, or ended before its last one:
    the relay (or the connection) did not deliver it whole. Nothing was written; ask again."""


class AdminError(PrivasteadError):
    """A request on the running hub's admin socket was refused (wrong user, malformed, too
    large) or the connection broke off before its answer."""


class LocalSocketError(PrivasteadError):
    """A request on the running client's local socket was refused or broke off (wrong user,
    malformed, too large, or the client stopped)."""


class RemovalIncompleteError(PrivasteadError):
    """``devices remove`` could not prove the device gone: a group's member list still holds
    one of its leaves (or its relay token could not be revoked). The message names what; the
    device stays listed as "removal incomplete" until a later removal succeeds."""


__all__ = [
    "AdminError",
    "CameraUnavailableError",
    "ConfigError",
    "CorruptMediaError",
    "CryptoError",
    "DecodeError",
    "DecryptionError",
    "DeviceRemovedError",
    "DuplicateMessageError",
    "GroupStateError",
    "JoinError",
    "LocalSocketError",
    "MediaError",
    "NothingRecordedError",
    "PairingMismatchError",
    "PairingRefusedError",
    "PlaybackIncompleteError",
    "PolicyError",
    "PrivasteadError",
    "RelayError",
    "RelayRejectedError",
    "RelayUnavailableError",
    "RemovalIncompleteError",
    "StaleMessageError",
    "StateLockedError",
    "StorageError",
    "StorageFullError",
    "WrongEpochError",
]
