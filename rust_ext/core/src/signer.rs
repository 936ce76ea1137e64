//! The client's Ed25519 signer: stored as OpenMLS's `SignatureKeyPair` (so state files keep
//! their format), signing through AWS-LC.
//!
//! OpenMLS signs every message with the `Signer` it is handed, not through the crypto
//! provider, so the hot signing path needs its own type. `SignatureKeyPair` keeps its private
//! key private; its serde form, which is exactly what the state file stores, carries the
//! 32-byte Ed25519 seed, and that is where this type reads it once, when a client is created
//! or opened. Ed25519 is deterministic (RFC 8032), so AWS-LC's signature over a message is
//! byte-for-byte the one RustCrypto would make (unit-tested).

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use openmls_basic_credential::SignatureKeyPair;
use openmls_traits::signatures::{Signer as OpenMlsSigner, SignerError};
use openmls_traits::types::{CryptoError, SignatureScheme};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The serde form of `SignatureKeyPair` (only the fields we read).
#[derive(Deserialize)]
struct StoredKey {
    private: Zeroizing<Vec<u8>>,
    public: Vec<u8>,
}

/// A signature key pair whose signatures AWS-LC computes.
pub(crate) struct Signer {
    key: SignatureKeyPair,
    fast: Ed25519KeyPair,
}

impl Signer {
    /// A fresh Ed25519 key pair.
    pub fn generate(scheme: SignatureScheme) -> Result<Signer> {
        let key = SignatureKeyPair::new(scheme)
            .map_err(|e| Error::Internal(format!("cannot generate a signature key: {e:?}")))?;
        Signer::from_key(key)
    }

    /// Wrap a stored key pair (the only scheme of our ciphersuites is Ed25519).
    pub fn from_key(key: SignatureKeyPair) -> Result<Signer> {
        if key.signature_scheme() != SignatureScheme::ED25519 {
            return Err(Error::Storage(format!(
                "unsupported signature scheme {:?}",
                key.signature_scheme()
            )));
        }
        let json = Zeroizing::new(
            serde_json::to_vec(&key).map_err(|e| Error::Internal(format!("signer: {e}")))?,
        );
        let stored: StoredKey = serde_json::from_slice(&json)
            .map_err(|e| Error::Storage(format!("unreadable signature key: {e}")))?;
        let fast = Ed25519KeyPair::from_seed_and_public_key(&stored.private, &stored.public)
            .map_err(|e| Error::Storage(format!("inconsistent signature key: {e}")))?;
        Ok(Signer { key, fast })
    }

    /// The key pair as OpenMLS stores it.
    pub fn key(&self) -> &SignatureKeyPair {
        &self.key
    }

    /// The Ed25519 public key.
    pub fn to_public_vec(&self) -> Vec<u8> {
        self.fast.public_key().as_ref().to_vec()
    }
}

impl OpenMlsSigner for Signer {
    fn sign(&self, payload: &[u8]) -> std::result::Result<Vec<u8>, SignerError> {
        Ok(self.fast.sign(payload).as_ref().to_vec())
    }

    fn signature_scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

/// Refuse a small-order ("weak") Ed25519 public key, as RustCrypto's `verify_strict` did.
///
/// AWS-LC verifies as RFC 8032 says (canonical S, cofactorless equation), which accepts a
/// signature under a small-order key that anyone can produce for any message. A member's key
/// is its own choice, so a member with such a key could have messages forged in its name by
/// the rest of the group; refusing these keys keeps signatures binding. (A small-order R
/// under a strong key needs the private key, so checking A suffices for unforgeability.)
pub(crate) fn reject_weak_ed25519(
    public_key: &[u8],
    signature: &[u8],
) -> std::result::Result<(), CryptoError> {
    let bytes: &[u8; 32] = public_key
        .try_into()
        .map_err(|_| CryptoError::InvalidPublicKey)?;
    if signature.len() != 64 {
        return Err(CryptoError::InvalidSignature);
    }
    let key = ed25519_dalek::VerifyingKey::from_bytes(bytes)
        .map_err(|_| CryptoError::InvalidPublicKey)?;
    if key.is_weak() {
        return Err(CryptoError::InvalidSignature);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use openmls_rust_crypto::MemoryStorage;
    use openmls_traits::crypto::OpenMlsCrypto as _;

    use crate::crypto::Crypto;

    #[test]
    fn signatures_are_byte_identical_to_signature_key_pair_and_verify_both_ways() {
        let signer = Signer::generate(SignatureScheme::ED25519).expect("signer");
        let crypto = Crypto::default();
        for len in [0usize, 1, 100, 65_536, 1 << 20] {
            let msg: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let fast = OpenMlsSigner::sign(&signer, &msg).expect("sign");
            let reference = OpenMlsSigner::sign(signer.key(), &msg).expect("sign");
            assert_eq!(fast, reference, "message of {len} bytes");
            for verifier in [&crypto as &dyn VerifyDyn, &crypto.fallback] {
                verifier
                    .verify(&msg, &signer.to_public_vec(), &fast)
                    .expect("verify");
            }
        }
        assert_eq!(signer.to_public_vec(), signer.key().to_public_vec());
    }

    /// Object-safe view of `verify_signature` for the two providers.
    trait VerifyDyn {
        fn verify(&self, msg: &[u8], pk: &[u8], sig: &[u8])
            -> std::result::Result<(), CryptoError>;
    }
    impl<T: openmls_traits::crypto::OpenMlsCrypto> VerifyDyn for T {
        fn verify(
            &self,
            msg: &[u8],
            pk: &[u8],
            sig: &[u8],
        ) -> std::result::Result<(), CryptoError> {
            self.verify_signature(SignatureScheme::ED25519, msg, pk, sig)
        }
    }

    #[test]
    fn a_stored_key_pair_reads_back_into_the_same_signer() {
        let storage = MemoryStorage::default();
        let signer = Signer::generate(SignatureScheme::ED25519).expect("signer");
        signer.key().store(&storage).expect("store");
        let read =
            SignatureKeyPair::read(&storage, &signer.to_public_vec(), SignatureScheme::ED25519)
                .expect("stored");
        let again = Signer::from_key(read).expect("signer");
        assert_eq!(again.to_public_vec(), signer.to_public_vec());
        assert_eq!(
            OpenMlsSigner::sign(&again, b"m").expect("sign"),
            OpenMlsSigner::sign(&signer, b"m").expect("sign")
        );
    }

    #[test]
    fn weak_keys_and_malformed_signatures_are_refused() {
        let crypto = Crypto::default();
        // A small-order public key (the identity point): [k]A is the identity for every k,
        // so (R = identity, S = 0) satisfies RFC 8032's cofactorless equation for any message.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut forged = identity.to_vec();
        forged.extend_from_slice(&[0u8; 32]);
        let library_alone =
            aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, &identity)
                .verify(b"anything", &forged);
        assert!(
            library_alone.is_ok(),
            "AWS-LC alone accepts the forgery: the check matters"
        );
        for msg in [&b"anything"[..], b"else"] {
            assert_eq!(
                crypto.verify_signature(SignatureScheme::ED25519, msg, &identity, &forged),
                Err(CryptoError::InvalidSignature)
            );
        }
        let signer = Signer::generate(SignatureScheme::ED25519).expect("signer");
        let pk = signer.to_public_vec();
        let sig = OpenMlsSigner::sign(&signer, b"m").expect("sign");
        // S >= L (malleability): add the group order to S.
        let mut high_s = sig.clone();
        high_s[63] |= 0x10;
        assert!(crypto
            .verify_signature(SignatureScheme::ED25519, b"m", &pk, &high_s)
            .is_err());
        assert!(crypto
            .verify_signature(SignatureScheme::ED25519, b"m", &pk, &sig[..63])
            .is_err());
        assert!(crypto
            .verify_signature(SignatureScheme::ED25519, b"m", &pk[..31], &sig)
            .is_err());
    }
}
