//! Privastead's MLS core: group lifecycle over OpenMLS, state as bytes, no I/O, no Python.
//!
//! A [`Client`] is one identity with its groups. Every mutating call is a transaction: its
//! effects are handed to a [`Persist`] sink as one snapshot before its outputs are returned,
//! and a failed call leaves the state exactly as it was.

mod client;
mod error;
mod membership;
mod ops;
mod policy;
mod provider;
mod snapshot;

pub use client::{Client, Persist};
pub use error::{Error, Result};
pub use ops::{AddOutput, MemberInfo, Target, PAIRING_PSK_ID};
pub use policy::{peek, CommitInfo, Kind, Peek, Received};
pub use provider::{Config, X25519_AES128GCM, X25519_CHACHA20POLY1305};
pub use snapshot::OPENMLS_VERSION;

/// Version of this core, recorded in state snapshots.
pub const CORE_VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_membership;
