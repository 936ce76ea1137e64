//! Ed25519 for OpenMLS: the client's signer (stored as OpenMLS's `SignatureKeyPair`, so state
//! files keep their format) and the verification the crypto provider does.
//!
//! OpenMLS signs every message with the `Signer` it is handed, not through the crypto
//! provider, so the hot signing path needs its own type. `SignatureKeyPair` keeps its private
//! key private; its serde form, which is exactly what the state file stores, carries the
//! 32-byte Ed25519 seed, and that is where this type reads it once, when a client is created
//! or opened.
//!
//! The curve arithmetic is ed25519-dalek's (`hazmat`, constant-time Rust); the SHA-512 passes
//! over the message, most of the cost for a video fragment, run on `privastead_sha512` (the
//! system's OpenSSL 3 where it is, AWS-LC otherwise). Ed25519 is deterministic (RFC 8032), so
//! these signatures are byte-for-byte RustCrypto's and AWS-LC's (unit-tested).

use ed25519_dalek::hazmat::{raw_sign, raw_verify, ExpandedSecretKey};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use openmls_basic_credential::SignatureKeyPair;
use openmls_traits::signatures::{Signer as OpenMlsSigner, SignerError};
use openmls_traits::types::{CryptoError, SignatureScheme};
use privastead_sha512::Sha512;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The serde form of `SignatureKeyPair` (only the fields we read).
#[derive(Deserialize)]
struct StoredKey {
    private: Zeroizing<Vec<u8>>,
    public: Vec<u8>,
}

/// A signature key pair whose signatures this module computes.
pub(crate) struct Signer {
    key: SignatureKeyPair,
    /// Scalar and nonce prefix from the seed (wiped when dropped).
    expanded: ExpandedSecretKey,
    public: VerifyingKey,
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
        let (expanded, public) = expand(&stored.private)
            .ok_or_else(|| Error::Storage("signature key seed is not 32 bytes".into()))?;
        if public.as_bytes()[..] != stored.public[..] {
            return Err(Error::Storage(
                "inconsistent signature key: the public key is not the seed's".into(),
            ));
        }
        Ok(Signer {
            key,
            expanded,
            public,
        })
    }

    /// The key pair as OpenMLS stores it.
    pub fn key(&self) -> &SignatureKeyPair {
        &self.key
    }

    /// The Ed25519 public key.
    pub fn to_public_vec(&self) -> Vec<u8> {
        self.public.as_bytes().to_vec()
    }
}

impl OpenMlsSigner for Signer {
    fn sign(&self, payload: &[u8]) -> std::result::Result<Vec<u8>, SignerError> {
        Ok(raw_sign::<Sha512>(&self.expanded, payload, &self.public)
            .to_bytes()
            .to_vec())
    }

    fn signature_scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

/// An Ed25519 signature from a 32-byte seed (the provider's `sign`; not on the message path).
pub(crate) fn sign_ed25519(seed: &[u8], data: &[u8]) -> std::result::Result<Vec<u8>, CryptoError> {
    let (expanded, public) = expand(seed).ok_or(CryptoError::CryptoLibraryError)?;
    Ok(raw_sign::<Sha512>(&expanded, data, &public)
        .to_bytes()
        .to_vec())
}

/// The signing scalar and nonce prefix, and the public key, of a 32-byte Ed25519 seed.
fn expand(seed: &[u8]) -> Option<(ExpandedSecretKey, VerifyingKey)> {
    let seed: Zeroizing<[u8; 32]> = Zeroizing::new(seed.try_into().ok()?);
    let public = SigningKey::from_bytes(&seed).verifying_key();
    Some((ExpandedSecretKey::from(&*seed), public))
}

/// Verify an Ed25519 signature as RFC 8032 says (canonical S, cofactorless equation, R
/// compared as encoded), refusing small-order ("weak") public keys as RustCrypto's
/// `verify_strict` did.
///
/// RFC 8032's equation accepts a signature under a small-order key that anyone can produce
/// for any message. A member's key is its own choice, so a member with such a key could have
/// messages forged in its name by the rest of the group; refusing these keys keeps
/// signatures binding. (A small-order R under a strong key needs the private key, so
/// checking A suffices for unforgeability.)
pub(crate) fn verify_ed25519(
    public_key: &[u8],
    data: &[u8],
    signature: &[u8],
) -> std::result::Result<(), CryptoError> {
    let bytes: &[u8; 32] = public_key
        .try_into()
        .map_err(|_| CryptoError::InvalidPublicKey)?;
    let signature = Signature::from_slice(signature).map_err(|_| CryptoError::InvalidSignature)?;
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| CryptoError::InvalidPublicKey)?;
    if key.is_weak() {
        return Err(CryptoError::InvalidSignature);
    }
    raw_verify::<Sha512>(&key, data, &signature).map_err(|_| CryptoError::InvalidSignature)
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
            assert_eq!(
                fast,
                aws_lc_signature(&signer, &msg),
                "message of {len} bytes"
            );
            for verifier in [&crypto as &dyn VerifyDyn, &crypto.fallback] {
                verifier
                    .verify(&msg, &signer.to_public_vec(), &fast)
                    .expect("verify");
            }
        }
        assert_eq!(signer.to_public_vec(), signer.key().to_public_vec());
    }

    /// The same signature made by AWS-LC from the stored seed (the previous signer).
    fn aws_lc_signature(signer: &Signer, msg: &[u8]) -> Vec<u8> {
        let json = serde_json::to_vec(signer.key()).expect("json");
        let stored: StoredKey = serde_json::from_slice(&json).expect("stored");
        aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&stored.private)
            .expect("seed")
            .sign(msg)
            .as_ref()
            .to_vec()
    }

    /// AWS-LC's RFC 8032 verification plus the weak-key refusal: the rule this module keeps.
    fn aws_lc_verdict(pk: &[u8], msg: &[u8], sig: &[u8]) -> bool {
        let weak = <&[u8; 32]>::try_from(pk)
            .ok()
            .and_then(|b| VerifyingKey::from_bytes(b).ok())
            .is_none_or(|k| k.is_weak());
        !weak
            && aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, pk)
                .verify(msg, sig)
                .is_ok()
    }

    #[test]
    fn verification_accepts_and_refuses_exactly_what_aws_lc_did() {
        // Every single-bit change of R, S and the key, S + L (malleability), S with its top
        // bits set, and the untouched signature, over a short and a long message.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let signer = Signer::generate(SignatureScheme::ED25519).expect("signer");
        let pk = signer.to_public_vec();
        for len in [3usize, 70_000] {
            let msg: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let sig = OpenMlsSigner::sign(&signer, &msg).expect("sign");
            let mut cases: Vec<(Vec<u8>, Vec<u8>)> = vec![(pk.clone(), sig.clone())];
            for bit in (0..512).step_by(7) {
                let mut s = sig.clone();
                s[bit / 8] ^= 1 << (bit % 8);
                cases.push((pk.clone(), s));
            }
            for bit in (0..256).step_by(5) {
                let mut k = pk.clone();
                k[bit / 8] ^= 1 << (bit % 8);
                cases.push((k, sig.clone()));
            }
            let mut s_plus_l = sig.clone();
            let mut carry = 0u16;
            for i in 0..32 {
                let v = u16::from(s_plus_l[32 + i]) + u16::from(L[i]) + carry;
                s_plus_l[32 + i] = v as u8;
                carry = v >> 8;
            }
            cases.push((pk.clone(), s_plus_l));
            let mut top = sig.clone();
            top[63] |= 0xe0;
            cases.push((pk.clone(), top));
            let mut accepted = 0;
            for (k, s) in &cases {
                let ours = verify_ed25519(k, &msg, s).is_ok();
                assert_eq!(
                    ours,
                    aws_lc_verdict(k, &msg, s),
                    "key {k:02x?} sig {s:02x?}"
                );
                accepted += usize::from(ours);
            }
            assert_eq!(accepted, 1, "only the untouched signature verifies");
        }
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
        let key = VerifyingKey::from_bytes(&identity).expect("a point");
        let sig = Signature::from_slice(&forged).expect("64 bytes");
        assert!(
            raw_verify::<Sha512>(&key, b"anything", &sig).is_ok(),
            "RFC 8032's equation alone accepts it too"
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
