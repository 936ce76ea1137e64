//! SHA-512 for Ed25519 on the fastest well-kept implementation the process has.
//!
//! An MLS application message is signed with Ed25519, which hashes the whole message twice
//! with SHA-512 when signing and once when verifying; for a 1 MiB video fragment those three
//! passes are most of the cryptography's cost. AWS-LC (and ring, and RustCrypto) hash at
//! about 610 MB/s on an AMD Zen 4, where their vector SHA-512 is switched off; OpenSSL 3's
//! AVX2/BMI2 code runs at about 860 MB/s on the same core. Every Linux this project supports
//! ships OpenSSL 3 as `libcrypto.so.3` (the distributions' own CPython loads it for `hashlib`
//! and `ssl`), so [`Sha512`] hashes with it when it loads, is OpenSSL 3, and passes a
//! known-answer self-test against AWS-LC; otherwise (a system without OpenSSL 3, such as a
//! musl container, or `PRIVASTEAD_SYSTEM_LIBCRYPTO=0`) it hashes with AWS-LC. Either way the
//! bytes are SHA-512's: the choice changes speed, never a signature.
//!
//! [`Sha512`] implements RustCrypto's `Digest` so that ed25519-dalek's `hazmat` signing and
//! verification (curve arithmetic in Rust) can take their hash from it.

use std::sync::OnceLock;

use digest::consts::U64;
use digest::{FixedOutput, HashMarker, Output, OutputSizeUser, Reset, Update};

mod libcrypto;

use libcrypto::{Ctx, LibCrypto};

/// Set to `0` to hash with AWS-LC even where OpenSSL 3 is available (for comparisons).
pub const DISABLE_ENV: &str = "PRIVASTEAD_SYSTEM_LIBCRYPTO";

/// The implementation chosen for this process, once.
struct Choice {
    openssl: Option<LibCrypto>,
    description: String,
}

fn choice() -> &'static Choice {
    static CHOICE: OnceLock<Choice> = OnceLock::new();
    CHOICE.get_or_init(|| {
        if std::env::var_os(DISABLE_ENV).is_some_and(|v| v == "0") {
            return Choice {
                openssl: None,
                description: format!("AWS-LC ({DISABLE_ENV}=0)"),
            };
        }
        match LibCrypto::load().and_then(|lib| self_test(&lib).map(|()| lib)) {
            Ok(lib) => Choice {
                description: format!("{} (system libcrypto)", lib.version),
                openssl: Some(lib),
            },
            Err(why) => Choice {
                openssl: None,
                description: format!("AWS-LC ({why})"),
            },
        }
    })
}

/// Which implementation hashes in this process, e.g. "OpenSSL 3.5.1 1 Jul 2025 (system
/// libcrypto)" or "AWS-LC (libcrypto.so.3 not loadable (...))".
pub fn backend() -> &'static str {
    &choice().description
}

/// FIPS 180-2's "abc" example, then a 1 MiB buffer fed in uneven pieces, against AWS-LC.
fn self_test(lib: &LibCrypto) -> Result<(), String> {
    const ABC: [u8; 64] = [
        0xdd, 0xaf, 0x35, 0xa1, 0x93, 0x61, 0x7a, 0xba, 0xcc, 0x41, 0x73, 0x49, 0xae, 0x20, 0x41,
        0x31, 0x12, 0xe6, 0xfa, 0x4e, 0x89, 0xa9, 0x7e, 0xa2, 0x0a, 0x9e, 0xee, 0xe6, 0x4b, 0x55,
        0xd3, 0x9a, 0x21, 0x92, 0x99, 0x2a, 0x27, 0x4f, 0xc1, 0xa8, 0x36, 0xba, 0x3c, 0x23, 0xa3,
        0xfe, 0xeb, 0xbd, 0x45, 0x4d, 0x44, 0x23, 0x64, 0x3c, 0xe8, 0x0e, 0x2a, 0x9a, 0xc9, 0x4f,
        0xa5, 0x4c, 0xa4, 0x9f,
    ];
    let hash = |pieces: &[&[u8]]| -> Option<[u8; 64]> {
        let mut ctx = Ctx::new(lib)?;
        for piece in pieces {
            ctx.update(piece).then_some(())?;
        }
        let mut out = [0u8; 64];
        ctx.finish(&mut out)?;
        Some(out)
    };
    let failed = || format!("{} failed the SHA-512 self-test", lib.version);
    if hash(&[b"a", b"", b"bc"]).ok_or_else(failed)? != ABC {
        return Err(failed());
    }
    let big: Vec<u8> = (0..(1usize << 20) + 3)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let (a, rest) = big.split_at(111);
    let (b, c) = rest.split_at(1 << 19);
    let reference = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, &big);
    if hash(&[a, b, c]).ok_or_else(failed)?[..] != *reference.as_ref() {
        return Err(failed());
    }
    Ok(())
}

/// A SHA-512 computation on the process's chosen implementation.
pub struct Sha512(State);

enum State {
    OpenSsl(Ctx<'static>),
    AwsLc(aws_lc_rs::digest::Context),
}

impl Default for Sha512 {
    fn default() -> Self {
        let openssl = choice().openssl.as_ref().and_then(Ctx::new);
        Sha512(match openssl {
            Some(ctx) => State::OpenSsl(ctx),
            // No OpenSSL, or it could not allocate a context: AWS-LC for this one.
            None => State::AwsLc(aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA512)),
        })
    }
}

impl HashMarker for Sha512 {}

impl OutputSizeUser for Sha512 {
    type OutputSize = U64;
}

impl Update for Sha512 {
    fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            State::OpenSsl(ctx) => {
                // OpenSSL refuses an update only for an uninitialised or corrupted context;
                // there is no way to report it through `Digest`, and a wrong hash must not
                // become a signature.
                assert!(ctx.update(data), "libcrypto refused a SHA-512 update");
            }
            State::AwsLc(ctx) => ctx.update(data),
        }
    }
}

impl FixedOutput for Sha512 {
    fn finalize_into(self, out: &mut Output<Self>) {
        match self.0 {
            State::OpenSsl(ctx) => {
                let mut digest = [0u8; 64];
                assert!(
                    ctx.finish(&mut digest).is_some(),
                    "libcrypto refused to finish a SHA-512"
                );
                out.copy_from_slice(&digest);
            }
            State::AwsLc(ctx) => out.copy_from_slice(ctx.finish().as_ref()),
        }
    }
}

impl Reset for Sha512 {
    fn reset(&mut self) {
        *self = Sha512::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use digest::Digest;

    fn both(data: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let ours = Sha512::digest(data).to_vec();
        let reference = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, data)
            .as_ref()
            .to_vec();
        (ours, reference)
    }

    #[test]
    fn equals_aws_lc_at_every_length_class_and_split() {
        for len in [
            0usize,
            1,
            111,
            112,
            127,
            128,
            129,
            255,
            256,
            4096,
            65_537,
            1 << 20,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 13 % 256) as u8).collect();
            let (ours, reference) = both(&data);
            assert_eq!(ours, reference, "{len} bytes");
            let mut split = Sha512::default();
            for piece in data.chunks(97) {
                Update::update(&mut split, piece);
            }
            assert_eq!(
                split.finalize_fixed().to_vec(),
                reference,
                "{len} bytes in pieces"
            );
        }
    }

    #[test]
    fn the_system_libcrypto_is_used_where_it_exists() {
        // Every machine this project builds on has OpenSSL 3 (Debian 12+, Ubuntu 22.04+);
        // a self-test failure there would silently cost the speed this crate exists for.
        let present = std::path::Path::new("/usr/lib/x86_64-linux-gnu/libcrypto.so.3").exists()
            || std::path::Path::new("/lib/x86_64-linux-gnu/libcrypto.so.3").exists();
        if present && std::env::var_os(DISABLE_ENV).is_none() {
            assert!(choice().openssl.is_some(), "{}", backend());
            assert!(backend().starts_with("OpenSSL 3"), "{}", backend());
        }
    }

    #[test]
    fn the_fallback_hashes_the_same() {
        let mut aws = Sha512(State::AwsLc(aws_lc_rs::digest::Context::new(
            &aws_lc_rs::digest::SHA512,
        )));
        Update::update(&mut aws, b"abc");
        let (ours, _) = both(b"abc");
        assert_eq!(aws.finalize_fixed().to_vec(), ours);
    }
}
