//! The OpenMLS provider we run on, the ciphersuites we allow, and the receiver settings.

use openmls::prelude::Ciphersuite;
use openmls_rust_crypto::{MemoryStorage, RustCrypto};
use openmls_traits::OpenMlsProvider;

use crate::crypto::Crypto;
use crate::error::{Error, Result};

/// AWS-LC for the message path and RustCrypto for the rest (`crypto.rs`), RustCrypto's
/// randomness, MemoryStorage for state; the snapshot makes it durable.
#[derive(Default)]
pub(crate) struct Provider {
    pub crypto: Crypto,
    pub storage: MemoryStorage,
}

impl OpenMlsProvider for Provider {
    type CryptoProvider = Crypto;
    type RandProvider = RustCrypto;
    type StorageProvider = MemoryStorage;

    fn storage(&self) -> &Self::StorageProvider {
        &self.storage
    }
    fn crypto(&self) -> &Self::CryptoProvider {
        &self.crypto
    }
    fn rand(&self) -> &Self::RandProvider {
        &self.crypto.fallback
    }
}

/// MLS ciphersuite ids we accept (RFC 9420 §17.1).
pub const X25519_AES128GCM: u16 = 0x0001;
/// The ChaCha20 suite, for boards without AES instructions (Raspberry Pi 4, Zero 2W).
pub const X25519_CHACHA20POLY1305: u16 = 0x0003;

pub(crate) fn ciphersuite(id: u16) -> Result<Ciphersuite> {
    match id {
        X25519_AES128GCM => Ok(Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519),
        X25519_CHACHA20POLY1305 => {
            Ok(Ciphersuite::MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519)
        }
        other => Err(Error::InvalidArgument(format!(
            "ciphersuite 0x{other:04x} is not supported (use 0x0001 or 0x0003)"
        ))),
    }
}

/// Local settings of a client. They are not part of the state file: each run passes them.
#[derive(Clone, Debug)]
pub struct Config {
    /// Incoming messages (and outgoing plaintexts) above this size are refused before decoding.
    pub max_message_size: usize,
    /// Epochs whose message keys a receiver keeps, for application messages sent just before
    /// a commit. Small on purpose: each kept epoch weakens forward secrecy a little.
    pub max_past_epochs: usize,
    /// How many generations a message may arrive late within an epoch.
    pub out_of_order_tolerance: u32,
    /// How far ahead a message may be within an epoch (gaps from lost messages).
    pub maximum_forward_distance: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_message_size: 16 * 1024 * 1024,
            max_past_epochs: 2,
            out_of_order_tolerance: 64,
            maximum_forward_distance: 5000,
        }
    }
}
