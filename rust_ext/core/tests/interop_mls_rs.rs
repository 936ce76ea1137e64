//! Interop: AWS mls-rs, an independent RFC 9420 implementation, joins a group created by our
//! core (ciphersuite 0x0001) and both exchange application messages and a commit. This proves
//! our groups are standard MLS, not a private dialect.

use mls_rs::identity::basic::{BasicCredential, BasicIdentityProvider};
use mls_rs::identity::SigningIdentity;
use mls_rs::{CipherSuite, CipherSuiteProvider, CryptoProvider, MlsMessage};
use mls_rs_crypto_rustcrypto::RustCryptoProvider;
use privastead_mls::{Client, Config, Kind, Persist, X25519_AES128GCM};

struct Discard;

impl Persist for Discard {
    fn persist(&mut self, _snapshot: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

#[test]
fn mls_rs_joins_our_group_and_messages_flow_both_ways() {
    let suite = CipherSuite::CURVE25519_AES128;
    assert_eq!(u16::from(suite), X25519_AES128GCM);
    let crypto = RustCryptoProvider::default();
    let cs = crypto.cipher_suite_provider(suite).expect("suite");
    let (secret, public) = cs.signature_key_generate().expect("keygen");
    let identity = SigningIdentity::new(
        BasicCredential::new(b"mls-rs phone".to_vec()).into_credential(),
        public,
    );
    let phone = mls_rs::Client::builder()
        .identity_provider(BasicIdentityProvider)
        .crypto_provider(crypto)
        .signing_identity(identity, secret, suite)
        .build();

    let mut hub = Client::create(
        b"hub",
        X25519_AES128GCM,
        Config::default(),
        Box::new(Discard),
    )
    .expect("hub");
    let gid = hub.create_group(None).expect("group");

    let kp = phone
        .generate_key_package_message(Default::default(), Default::default(), None)
        .expect("key package")
        .to_bytes()
        .expect("encode");
    let added = hub.add_members(&gid, &[&kp], None, None).expect("add");
    let welcome = MlsMessage::from_bytes(&added.welcome).expect("welcome");
    let (mut group, _) = phone.join_group(None, &welcome, None).expect("join");
    assert_eq!(group.group_id(), gid.as_slice());
    assert_eq!(group.current_epoch(), hub.epoch(&gid).expect("epoch"));

    // Our core -> mls-rs.
    let ct = hub
        .encrypt(&gid, b"hello from openmls", b"", None)
        .expect("enc");
    let got = group
        .process_incoming_message(MlsMessage::from_bytes(&ct).expect("decode"))
        .expect("process");
    match got {
        mls_rs::group::ReceivedMessage::ApplicationMessage(m) => {
            assert_eq!(m.data(), b"hello from openmls")
        }
        other => panic!("unexpected {other:?}"),
    }

    // mls-rs -> our core.
    let back = group
        .encrypt_application_message(b"hello from mls-rs", Vec::new())
        .expect("encrypt")
        .to_bytes()
        .expect("encode");
    let r = hub.process(&gid, &back, None).expect("process");
    assert_eq!(
        (r.kind, &r.data[..]),
        (Kind::Application, &b"hello from mls-rs"[..])
    );
    assert_eq!(r.sender, b"mls-rs phone");

    // A key rotation by our committer is understood by mls-rs, and traffic continues.
    let commit = hub.self_update(&gid, None).expect("commit");
    group
        .process_incoming_message(MlsMessage::from_bytes(&commit).expect("decode"))
        .expect("commit");
    assert_eq!(group.current_epoch(), hub.epoch(&gid).expect("epoch"));
    let ct = hub
        .encrypt(&gid, b"after rotation", b"", None)
        .expect("enc");
    match group
        .process_incoming_message(MlsMessage::from_bytes(&ct).expect("decode"))
        .expect("process")
    {
        mls_rs::group::ReceivedMessage::ApplicationMessage(m) => {
            assert_eq!(m.data(), b"after rotation")
        }
        other => panic!("unexpected {other:?}"),
    }
    // Both implementations agree on the epoch authenticator, hence on the safety code.
    let auth = group.epoch_authenticator().expect("auth");
    let d =
        <sha2::Sha256 as sha2::Digest>::digest([&b"privastead safety code v1"[..], &auth].concat());
    let n = u64::from_be_bytes(d[..8].try_into().expect("8 bytes")) % 1_000_000_000_000;
    let s = format!("{n:012}");
    let code = format!("{} {} {}", &s[0..4], &s[4..8], &s[8..12]);
    assert_eq!(code, hub.safety_code(&gid).expect("code"));
}
