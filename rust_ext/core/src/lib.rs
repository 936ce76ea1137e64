//! Privastead's MLS core: group lifecycle over OpenMLS, state as bytes, no I/O, no Python.
//!
//! A [`Client`] is one identity with its groups. Every mutating call is a transaction: its
//! effects are handed to a [`Persist`] sink as one snapshot before its outputs are returned,
//! and a failed call leaves the state exactly as it was.

mod batch;
mod client;
mod crypto;
mod error;
mod membership;
mod ops;
mod pairing_box;
mod pake;
mod policy;
mod provider;
mod signer;
mod snapshot;

pub use client::{Client, Persist};
pub use error::{Error, Result};
pub use ops::{AddOutput, MemberInfo, Target, PAIRING_PSK_ID};
pub use pairing_box::{
    confirmation, open as open_pairing_payload, seal as seal_pairing_payload, verify_confirmation,
    CONFIRMATION_LEN,
};
pub use pake::{Pake, Side, PAKE_KEY_LEN, PAKE_MESSAGE_LEN};
pub use policy::{peek, CommitInfo, Kind, Peek, Received};
pub use privastead_sha512::backend as sha512_backend;
pub use provider::{Config, X25519_AES128GCM, X25519_CHACHA20POLY1305};
pub use snapshot::OPENMLS_VERSION;

/// Version of this core, recorded in state snapshots.
pub const CORE_VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(test)]
mod batch_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_membership;
