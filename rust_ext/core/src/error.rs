//! The core's one error type. Each variant maps to one class of `privastead.errors`.

use std::fmt;

/// Every failure of the MLS core. Messages never contain key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Not a well-formed message of the expected kind, or larger than the configured limit.
    Decode(String),
    /// Cannot decrypt or authenticate. Deliberately uninformative: every cause looks alike.
    Decryption,
    /// The message is for another epoch than the group's current one.
    WrongEpoch {
        message_epoch: u64,
        group_epoch: u64,
    },
    /// Too old: its keys were deleted (forward secrecy).
    Stale(String),
    /// Already processed once (a relay retry, a replay); safe to drop.
    Duplicate,
    /// Authentic but not allowed by Privastead's group policy.
    Policy(String),
    /// Unknown group, removed from it, or a state that forbids the call.
    GroupState(String),
    /// A Welcome that cannot be joined (wrong PSK, no key package, unexpected inviter).
    Join(String),
    /// The state snapshot is corrupt, of another version, or could not be persisted.
    Storage(String),
    /// A caller mistake (bad length, empty list, unknown ciphersuite).
    InvalidArgument(String),
    /// A bug, a panic caught at the boundary, or an OpenMLS library error.
    Internal(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Decode(m) => write!(f, "malformed message: {m}"),
            Error::Decryption => f.write_str("message could not be decrypted or authenticated"),
            Error::WrongEpoch {
                message_epoch,
                group_epoch,
            } => write!(
                f,
                "message is for epoch {message_epoch} but the group is at epoch {group_epoch}"
            ),
            Error::Stale(m) => write!(f, "message is too old: {m}"),
            Error::Duplicate => f.write_str("message was already processed"),
            Error::Policy(m) => write!(f, "not allowed by policy: {m}"),
            Error::GroupState(m) => write!(f, "{m}"),
            Error::Join(m) => write!(f, "cannot join: {m}"),
            Error::Storage(m) => write!(f, "state: {m}"),
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::Internal(m) => write!(f, "internal error in the MLS core: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// Shorthand used across the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Wrap any OpenMLS error whose cause is our bug or the library's, not the peer's.
pub(crate) fn internal(e: impl fmt::Debug) -> Error {
    Error::Internal(format!("{e:?}"))
}

/// Errors of operations on our own group state (not on incoming bytes).
pub(crate) fn group_state(what: &str, e: impl fmt::Debug) -> Error {
    Error::GroupState(format!("{what}: {e:?}"))
}
