//! The crypto provider OpenMLS runs on: AWS-LC (through aws-lc-rs) for AEAD, hashing and key
//! derivation, Ed25519 from `signer.rs`, RustCrypto for the rest.
//!
//! An application message costs one Ed25519 signature over its whole content (two SHA-512
//! passes), one AEAD pass, a few HKDF expansions for the sender ratchet, and on the receiver
//! one AEAD pass and one Ed25519 verification. The AEAD (AES-GCM with AES-NI/VAES,
//! ChaCha20-Poly1305), SHA-2 and HKDF run here on AWS-LC's assembly; Ed25519 runs on
//! ed25519-dalek with its SHA-512 passes on the system's OpenSSL where there is one
//! (`signer.rs`). HPKE (only in commits and Welcomes), signature key generation,
//! non-Ed25519 signatures and randomness stay with OpenMLS's RustCrypto provider, whose
//! outputs are byte-identical where both could serve: the choice of backend changes speed,
//! never the wire format. `docs/design/crypto-provider.md` says why and what was measured.

use aws_lc_rs::{aead, digest, hkdf, hmac};
use openmls::prelude::tls_codec::SecretVLBytes;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::types::{
    AeadType, Ciphersuite, CryptoError, ExporterSecret, HashType, HpkeCiphertext, HpkeConfig,
    HpkeKeyPair, KemOutput, SignatureScheme,
};

/// AWS-LC for hashing, HKDF/HMAC and AEAD, `signer.rs` for Ed25519; `fallback` for the rest.
#[derive(Default)]
pub(crate) struct Crypto {
    pub fallback: RustCrypto,
}

fn digest_alg(hash: HashType) -> &'static digest::Algorithm {
    match hash {
        HashType::Sha2_256 => &digest::SHA256,
        HashType::Sha2_384 => &digest::SHA384,
        HashType::Sha2_512 => &digest::SHA512,
    }
}

fn hmac_alg(hash: HashType) -> hmac::Algorithm {
    match hash {
        HashType::Sha2_256 => hmac::HMAC_SHA256,
        HashType::Sha2_384 => hmac::HMAC_SHA384,
        HashType::Sha2_512 => hmac::HMAC_SHA512,
    }
}

fn hkdf_alg(hash: HashType) -> hkdf::Algorithm {
    match hash {
        HashType::Sha2_256 => hkdf::HKDF_SHA256,
        HashType::Sha2_384 => hkdf::HKDF_SHA384,
        HashType::Sha2_512 => hkdf::HKDF_SHA512,
    }
}

fn aead_alg(alg: AeadType) -> &'static aead::Algorithm {
    match alg {
        AeadType::Aes128Gcm => &aead::AES_128_GCM,
        AeadType::Aes256Gcm => &aead::AES_256_GCM,
        AeadType::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
    }
}

/// An HKDF output length for aws-lc-rs's `expand`.
struct OkmLen(usize);

impl hkdf::KeyType for OkmLen {
    fn len(&self) -> usize {
        self.0
    }
}

fn aead_key(
    alg: AeadType,
    key: &[u8],
    nonce: &[u8],
) -> Result<(aead::LessSafeKey, aead::Nonce), CryptoError> {
    let key =
        aead::UnboundKey::new(aead_alg(alg), key).map_err(|_| CryptoError::CryptoLibraryError)?;
    let nonce =
        aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::InvalidLength)?;
    Ok((aead::LessSafeKey::new(key), nonce))
}

impl OpenMlsCrypto for Crypto {
    fn supports(&self, ciphersuite: Ciphersuite) -> Result<(), CryptoError> {
        self.fallback.supports(ciphersuite)
    }

    fn supported_ciphersuites(&self) -> Vec<Ciphersuite> {
        self.fallback.supported_ciphersuites()
    }

    fn hkdf_extract(
        &self,
        hash_type: HashType,
        salt: &[u8],
        ikm: &[u8],
    ) -> Result<SecretVLBytes, CryptoError> {
        // HKDF-Extract(salt, IKM) = HMAC-Hash(salt, IKM) (RFC 5869 §2.2); an empty salt and
        // HashLen zero bytes give the same HMAC key.
        self.hmac(hash_type, salt, ikm)
    }

    fn hmac(
        &self,
        hash_type: HashType,
        key: &[u8],
        message: &[u8],
    ) -> Result<SecretVLBytes, CryptoError> {
        let tag = hmac::sign(&hmac::Key::new(hmac_alg(hash_type), key), message);
        Ok(tag.as_ref().into())
    }

    fn hkdf_expand(
        &self,
        hash_type: HashType,
        prk: &[u8],
        info: &[u8],
        okm_len: usize,
    ) -> Result<SecretVLBytes, CryptoError> {
        let alg = hkdf_alg(hash_type);
        if okm_len == 0 || okm_len > 255 * alg.hmac_algorithm().digest_algorithm().output_len() {
            return Err(CryptoError::HkdfOutputLengthInvalid);
        }
        let mut okm = vec![0u8; okm_len];
        hkdf::Prk::new_less_safe(alg, prk)
            .expand(&[info], OkmLen(okm_len))
            .and_then(|out| out.fill(&mut okm))
            .map_err(|_| CryptoError::HkdfOutputLengthInvalid)?;
        Ok(okm.into())
    }

    fn hash(&self, hash_type: HashType, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Ok(digest::digest(digest_alg(hash_type), data)
            .as_ref()
            .to_vec())
    }

    fn aead_encrypt(
        &self,
        alg: AeadType,
        key: &[u8],
        data: &[u8],
        nonce: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let (key, nonce) = aead_key(alg, key, nonce)?;
        let mut out = Vec::with_capacity(data.len() + alg.tag_size());
        out.extend_from_slice(data);
        key.seal_in_place_append_tag(nonce, aead::Aad::from(aad), &mut out)
            .map_err(|_| CryptoError::CryptoLibraryError)?;
        Ok(out)
    }

    fn aead_decrypt(
        &self,
        alg: AeadType,
        key: &[u8],
        ct_tag: &[u8],
        nonce: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let (key, nonce) = aead_key(alg, key, nonce)?;
        let mut buf = ct_tag.to_vec();
        let len = key
            .open_in_place(nonce, aead::Aad::from(aad), &mut buf)
            .map_err(|_| CryptoError::AeadDecryptionError)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }

    fn signature_key_gen(&self, alg: SignatureScheme) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
        self.fallback.signature_key_gen(alg)
    }

    fn verify_signature(
        &self,
        alg: SignatureScheme,
        data: &[u8],
        pk: &[u8],
        sig: &[u8],
    ) -> Result<(), CryptoError> {
        match alg {
            SignatureScheme::ED25519 => crate::signer::verify_ed25519(pk, data, sig),
            _ => self.fallback.verify_signature(alg, data, pk, sig),
        }
    }

    fn sign(&self, alg: SignatureScheme, data: &[u8], key: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match alg {
            SignatureScheme::ED25519 => crate::signer::sign_ed25519(key, data),
            _ => self.fallback.sign(alg, data, key),
        }
    }

    fn hpke_seal(
        &self,
        config: HpkeConfig,
        pk_r: &[u8],
        info: &[u8],
        aad: &[u8],
        ptxt: &[u8],
    ) -> Result<HpkeCiphertext, CryptoError> {
        self.fallback.hpke_seal(config, pk_r, info, aad, ptxt)
    }

    fn hpke_open(
        &self,
        config: HpkeConfig,
        input: &HpkeCiphertext,
        sk_r: &[u8],
        info: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.fallback.hpke_open(config, input, sk_r, info, aad)
    }

    fn hpke_setup_sender_and_export(
        &self,
        config: HpkeConfig,
        pk_r: &[u8],
        info: &[u8],
        exporter_context: &[u8],
        exporter_length: usize,
    ) -> Result<(KemOutput, ExporterSecret), CryptoError> {
        self.fallback.hpke_setup_sender_and_export(
            config,
            pk_r,
            info,
            exporter_context,
            exporter_length,
        )
    }

    fn hpke_setup_receiver_and_export(
        &self,
        config: HpkeConfig,
        enc: &[u8],
        sk_r: &[u8],
        info: &[u8],
        exporter_context: &[u8],
        exporter_length: usize,
    ) -> Result<ExporterSecret, CryptoError> {
        self.fallback.hpke_setup_receiver_and_export(
            config,
            enc,
            sk_r,
            info,
            exporter_context,
            exporter_length,
        )
    }

    fn derive_hpke_keypair(
        &self,
        config: HpkeConfig,
        ikm: &[u8],
    ) -> Result<HpkeKeyPair, CryptoError> {
        self.fallback.derive_hpke_keypair(config, ikm)
    }
}

#[cfg(test)]
mod tests {
    //! AWS-LC must compute exactly what RustCrypto computes (OpenMLS checks RustCrypto against
    //! the MLS working group's test vectors): every primitive, several sizes, both ways.
    use super::*;
    use openmls_traits::random::OpenMlsRand as _;

    const SIZES: [usize; 7] = [0, 1, 15, 16, 1000, 65_536, 1 << 20];

    fn input(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn hashes_hmac_and_hkdf_equal_rustcrypto() {
        let (ours, theirs) = (Crypto::default(), RustCrypto::default());
        for hash in [HashType::Sha2_256, HashType::Sha2_384, HashType::Sha2_512] {
            for (i, len) in SIZES.into_iter().enumerate() {
                let data = input(len, i as u8);
                let key = input(i * 7, 3);
                assert_eq!(
                    ours.hash(hash, &data),
                    theirs.hash(hash, &data),
                    "{hash:?} {len}"
                );
                assert_eq!(ours.hmac(hash, &key, &data), theirs.hmac(hash, &key, &data));
                assert_eq!(
                    ours.hkdf_extract(hash, &key, &data),
                    theirs.hkdf_extract(hash, &key, &data),
                    "extract {hash:?} salt {}",
                    key.len()
                );
            }
            let prk = input(hash.size(), 9);
            let max = 255 * hash.size();
            for okm_len in [1, 16, 32, 33, hash.size() * 3 + 1, max] {
                let info = input(okm_len % 40, 5);
                assert_eq!(
                    ours.hkdf_expand(hash, &prk, &info, okm_len),
                    theirs.hkdf_expand(hash, &prk, &info, okm_len),
                    "expand {hash:?} {okm_len}"
                );
            }
            for bad in [0, max + 1] {
                assert_eq!(
                    ours.hkdf_expand(hash, &prk, b"", bad),
                    Err(CryptoError::HkdfOutputLengthInvalid)
                );
            }
        }
    }

    #[test]
    fn aeads_equal_rustcrypto_and_refuse_tampering() {
        let (ours, theirs) = (Crypto::default(), RustCrypto::default());
        for alg in [
            AeadType::Aes128Gcm,
            AeadType::Aes256Gcm,
            AeadType::ChaCha20Poly1305,
        ] {
            let key = ours.fallback.random_vec(alg.key_size()).expect("rand");
            let nonce = ours.fallback.random_vec(alg.nonce_size()).expect("rand");
            for (i, len) in SIZES.into_iter().enumerate() {
                let pt = input(len, i as u8);
                let aad = input(i * 3, 1);
                let ct = ours
                    .aead_encrypt(alg, &key, &pt, &nonce, &aad)
                    .expect("seal");
                assert_eq!(
                    Ok(ct.clone()),
                    theirs.aead_encrypt(alg, &key, &pt, &nonce, &aad),
                    "{alg:?} {len}"
                );
                assert_eq!(
                    ours.aead_decrypt(alg, &key, &ct, &nonce, &aad),
                    Ok(pt.clone())
                );
                let mut bad = ct.clone();
                let last = bad.len() - 1;
                bad[last] ^= 1;
                assert_eq!(
                    ours.aead_decrypt(alg, &key, &bad, &nonce, &aad),
                    Err(CryptoError::AeadDecryptionError)
                );
                assert_eq!(
                    ours.aead_decrypt(alg, &key, &ct, &nonce, b"other aad"),
                    Err(CryptoError::AeadDecryptionError)
                );
            }
            assert!(ours.aead_decrypt(alg, &key, &[0; 3], &nonce, b"").is_err());
            assert!(ours
                .aead_encrypt(alg, &key, b"x", &nonce[1..], b"")
                .is_err());
            assert!(ours
                .aead_encrypt(alg, &key[1..], b"x", &nonce, b"")
                .is_err());
        }
    }

    #[test]
    fn ed25519_sign_and_verify_agree_with_rustcrypto() {
        let (ours, theirs) = (Crypto::default(), RustCrypto::default());
        let (sk, pk) = theirs
            .signature_key_gen(SignatureScheme::ED25519)
            .expect("keygen");
        for (i, len) in SIZES.into_iter().enumerate() {
            let msg = input(len, i as u8);
            let sig = ours
                .sign(SignatureScheme::ED25519, &msg, &sk)
                .expect("sign");
            assert_eq!(
                Ok(sig.clone()),
                theirs.sign(SignatureScheme::ED25519, &msg, &sk)
            );
            assert_eq!(
                ours.verify_signature(SignatureScheme::ED25519, &msg, &pk, &sig),
                Ok(())
            );
            let mut other = msg.clone();
            other.push(0);
            assert_eq!(
                ours.verify_signature(SignatureScheme::ED25519, &other, &pk, &sig),
                Err(CryptoError::InvalidSignature)
            );
        }
    }
}
