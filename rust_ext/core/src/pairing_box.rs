//! What the PAKE key is used for: key confirmation, then one sealed pairing payload.
//!
//! From the 32-byte SPAKE2 key and the exchange transcript (context and both exchange
//! messages) HKDF-SHA256 derives one confirmation key and one payload key per side. Binding the
//! transcript means a relay that swapped an exchange message makes the two sides derive
//! different keys, which the confirmation tags expose before any payload is sent.
//!
//! Payloads are sealed with ChaCha20-Poly1305 under a fresh random nonce (prepended); each side
//! has its own payload key, so the two directions never share a (key, nonce) space.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::pake::{Side, PAKE_KEY_LEN};

/// Length of a key-confirmation tag (HMAC-SHA256).
pub const CONFIRMATION_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

fn side_label(side: Side) -> &'static [u8] {
    match side {
        Side::Hub => b"hub",
        Side::Device => b"device",
    }
}

fn subkey(
    key: &[u8],
    transcript: &[u8],
    purpose: &[u8],
    side: Side,
) -> Result<Zeroizing<[u8; 32]>> {
    if key.len() != PAKE_KEY_LEN {
        return Err(Error::InvalidArgument(format!(
            "pairing key has {} bytes, expected {PAKE_KEY_LEN}",
            key.len()
        )));
    }
    let salt = Sha256::digest(transcript);
    let hk = Hkdf::<Sha256>::new(Some(&salt), key);
    let mut info = b"privastead pairing v1 ".to_vec();
    info.extend_from_slice(purpose);
    info.push(b' ');
    info.extend_from_slice(side_label(side));
    let mut out = Zeroizing::new([0u8; 32]);
    hk.expand(&info, out.as_mut_slice())
        .map_err(|_| Error::Internal("HKDF output length".into()))?;
    Ok(out)
}

fn confirmation_mac(key: &[u8], transcript: &[u8], side: Side) -> Result<Hmac<Sha256>> {
    let k = subkey(key, transcript, b"confirm", side)?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(k.as_slice())
        .map_err(|_| Error::Internal("HMAC key length".into()))?;
    mac.update(b"key confirmation");
    Ok(mac)
}

/// The tag `side` sends to prove it holds the key for this transcript.
pub fn confirmation(key: &[u8], transcript: &[u8], side: Side) -> Result<[u8; CONFIRMATION_LEN]> {
    Ok(confirmation_mac(key, transcript, side)?
        .finalize()
        .into_bytes()
        .into())
}

/// Checks, in constant time, the tag the other `side` sent. A mismatch means a wrong code or
/// a relay that tampered with the exchange; the caller must burn the code.
pub fn verify_confirmation(key: &[u8], transcript: &[u8], side: Side, tag: &[u8]) -> Result<()> {
    confirmation_mac(key, transcript, side)?
        .verify_slice(tag)
        .map_err(|_| Error::Decryption)
}

/// Seals a payload sent by `from`. Output: nonce || ciphertext || tag.
pub fn seal(
    key: &[u8],
    transcript: &[u8],
    from: Side,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let k = subkey(key, transcript, b"payload", from)?;
    let cipher = ChaCha20Poly1305::new(Key::from_slice(k.as_slice()));
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::getrandom(&mut nonce)
        .map_err(|e| Error::Internal(format!("no randomness for the nonce: {e}")))?;
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| Error::Internal("payload too large to seal".into()))?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens a payload sealed by `from`; any change to it, the AAD or the key is a `Decryption`.
pub fn open(
    key: &[u8],
    transcript: &[u8],
    from: Side,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(Error::Decode(format!(
            "sealed pairing payload has {} bytes, at least {} expected",
            sealed.len(),
            NONCE_LEN + TAG_LEN
        )));
    }
    let k = subkey(key, transcript, b"payload", from)?;
    let cipher = ChaCha20Poly1305::new(Key::from_slice(k.as_slice()));
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| Error::Decryption)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7u8; 32];
    const T: &[u8] = b"ctx|msg-hub|msg-device";

    #[test]
    fn confirmation_round_trip_and_sides_differ() {
        let hub = confirmation(&KEY, T, Side::Hub).expect("tag");
        let dev = confirmation(&KEY, T, Side::Device).expect("tag");
        assert_ne!(hub, dev);
        verify_confirmation(&KEY, T, Side::Hub, &hub).expect("hub tag verifies");
        verify_confirmation(&KEY, T, Side::Device, &dev).expect("device tag verifies");
        // A tag reflected to its sender, another key, another transcript, a short tag: refused.
        assert_eq!(
            verify_confirmation(&KEY, T, Side::Device, &hub),
            Err(Error::Decryption)
        );
        assert_eq!(
            verify_confirmation(&[8u8; 32], T, Side::Hub, &hub),
            Err(Error::Decryption)
        );
        assert_eq!(
            verify_confirmation(&KEY, b"other", Side::Hub, &hub),
            Err(Error::Decryption)
        );
        assert_eq!(
            verify_confirmation(&KEY, T, Side::Hub, &hub[..16]),
            Err(Error::Decryption)
        );
    }

    #[test]
    fn seal_open_round_trip_and_tampering() {
        let sealed = seal(&KEY, T, Side::Hub, b"aad", b"psk and relay token").expect("seal");
        assert_eq!(
            open(&KEY, T, Side::Hub, b"aad", &sealed).expect("open"),
            b"psk and relay token"
        );
        assert_ne!(
            sealed,
            seal(&KEY, T, Side::Hub, b"aad", b"psk and relay token").expect("seal")
        );
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(
            open(&KEY, T, Side::Hub, b"aad", &flipped),
            Err(Error::Decryption)
        );
        assert_eq!(
            open(&KEY, T, Side::Hub, b"other", &sealed),
            Err(Error::Decryption)
        );
        assert_eq!(
            open(&KEY, T, Side::Device, b"aad", &sealed),
            Err(Error::Decryption)
        );
        assert_eq!(
            open(&KEY, b"x", Side::Hub, b"aad", &sealed),
            Err(Error::Decryption)
        );
        assert!(matches!(
            open(&KEY, T, Side::Hub, b"aad", &sealed[..20]),
            Err(Error::Decode(_))
        ));
    }

    #[test]
    fn a_short_key_is_refused() {
        assert!(matches!(
            confirmation(&KEY[..31], T, Side::Hub),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            seal(&[], T, Side::Hub, b"", b""),
            Err(Error::InvalidArgument(_))
        ));
    }
}
