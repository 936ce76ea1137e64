//! Interop: AWS mls-rs, an independent RFC 9420 implementation, joins a group created by our
//! core (ciphersuite 0x0001) and both exchange application messages and a commit. This proves
//! our groups are standard MLS, not a private dialect. Then mls-rs plays a member that breaks
//! the membership rules (an Update that renames or rekeys its leaf, KeyPackages reusing a
//! member's credential or key): our core refuses each.

use mls_rs::identity::basic::{BasicCredential, BasicIdentityProvider};
use mls_rs::identity::SigningIdentity;
use mls_rs::{CipherSuite, CipherSuiteProvider, CryptoProvider, MlsMessage};
use mls_rs_crypto_rustcrypto::RustCryptoProvider;
use privastead_mls::{Client, Config, Error, Kind, Persist, X25519_AES128GCM};

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

/// An identity provider that accepts any successor: what a member bent on taking another's
/// name would run (mls-rs's basic provider refuses a renamed Update before it is sent).
#[derive(Clone, Debug, Default)]
struct Lenient;

impl mls_rs::IdentityProvider for Lenient {
    type Error = mls_rs::identity::basic::BasicIdentityProviderError;

    fn validate_member(
        &self,
        signing_identity: &SigningIdentity,
        timestamp: Option<mls_rs::time::MlsTime>,
        context: mls_rs_core::identity::MemberValidationContext<'_>,
    ) -> Result<(), Self::Error> {
        BasicIdentityProvider.validate_member(signing_identity, timestamp, context)
    }

    fn validate_external_sender(
        &self,
        signing_identity: &SigningIdentity,
        timestamp: Option<mls_rs::time::MlsTime>,
        extensions: Option<&mls_rs::ExtensionList>,
    ) -> Result<(), Self::Error> {
        BasicIdentityProvider.validate_external_sender(signing_identity, timestamp, extensions)
    }

    fn identity(
        &self,
        signing_identity: &SigningIdentity,
        extensions: &mls_rs::ExtensionList,
    ) -> Result<Vec<u8>, Self::Error> {
        BasicIdentityProvider.identity(signing_identity, extensions)
    }

    fn valid_successor(
        &self,
        _predecessor: &SigningIdentity,
        _successor: &SigningIdentity,
        _extensions: &mls_rs::ExtensionList,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }

    fn supported_types(&self) -> Vec<mls_rs::identity::CredentialType> {
        BasicIdentityProvider.supported_types()
    }
}

fn basic(name: &[u8], key: mls_rs::crypto::SignaturePublicKey) -> SigningIdentity {
    SigningIdentity::new(BasicCredential::new(name.to_vec()).into_credential(), key)
}

#[test]
fn an_mls_rs_member_cannot_rename_or_rekey_its_leaf_nor_add_a_members_twin() {
    let suite = CipherSuite::CURVE25519_AES128;
    let crypto = RustCryptoProvider::default();
    let cs = crypto.cipher_suite_provider(suite).expect("suite");
    let (secret, public) = cs.signature_key_generate().expect("keygen");
    // Handshakes as PrivateMessages, the only framing our groups accept.
    let encrypted = mls_rs::mls_rules::DefaultMlsRules::new().with_encryption_options(
        mls_rs::mls_rules::EncryptionOptions::new(true, mls_rs::client_builder::PaddingMode::None),
    );
    let phone = mls_rs::Client::builder()
        .identity_provider(Lenient)
        .mls_rules(encrypted)
        .crypto_provider(crypto.clone())
        .signing_identity(
            basic(b"mls-rs phone", public.clone()),
            secret.clone(),
            suite,
        )
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
    let members = |hub: &Client| -> Vec<(u32, Vec<u8>, Vec<u8>)> {
        hub.members(&gid)
            .expect("members")
            .into_iter()
            .map(|m| (m.index, m.identity, m.signature_key))
            .collect()
    };
    let before = members(&hub);

    // An Update that takes the hub's name (same key), and one that swaps in a new key.
    let renamed = group
        .propose_update_with_identity(secret.clone(), basic(b"hub", public.clone()), Vec::new())
        .expect("renamed update")
        .to_bytes()
        .expect("encode");
    let (new_secret, new_public) = cs.signature_key_generate().expect("keygen");
    let rekeyed = group
        .propose_update_with_identity(new_secret, basic(b"mls-rs phone", new_public), Vec::new())
        .expect("rekeyed update")
        .to_bytes()
        .expect("encode");
    for (proposal, what) in [(&renamed, "credential"), (&rekeyed, "signature key")] {
        let refused = hub.process(&gid, proposal, None);
        assert!(
            matches!(&refused, Err(Error::Policy(m)) if m.contains(what)),
            "{refused:?}"
        );
    }

    // KeyPackages for a second leaf: one naming the hub, one with the phone's own identity
    // and key (a member's twin).
    let (imp_secret, imp_public) = cs.signature_key_generate().expect("keygen");
    let impostor = mls_rs::Client::builder()
        .identity_provider(BasicIdentityProvider)
        .crypto_provider(crypto)
        .signing_identity(basic(b"hub", imp_public), imp_secret, suite)
        .build();
    // (OpenMLS itself refuses the duplicate signature key; our policy the duplicate name.)
    for (kp, what) in [
        (
            impostor.generate_key_package_message(Default::default(), Default::default(), None),
            "credential",
        ),
        (
            phone.generate_key_package_message(Default::default(), Default::default(), None),
            "SignatureKey",
        ),
    ] {
        let kp = kp.expect("key package").to_bytes().expect("encode");
        let refused = hub.add_members(&gid, &[&kp], None, None);
        assert!(
            matches!(&refused, Err(Error::Policy(m)) if m.contains(what)),
            "{refused:?}"
        );
    }
    assert_eq!(members(&hub), before);

    // An honest update still goes through, and mls-rs follows the commit that folds it.
    let honest = group
        .propose_update(Vec::new())
        .expect("update")
        .to_bytes()
        .expect("encode");
    assert_eq!(
        hub.process(&gid, &honest, None).expect("proposal").kind,
        Kind::Proposal
    );
    let commit = hub.self_update(&gid, None).expect("commit");
    group
        .process_incoming_message(MlsMessage::from_bytes(&commit).expect("decode"))
        .expect("commit");
    assert_eq!(group.current_epoch(), hub.epoch(&gid).expect("epoch"));
    let after = members(&hub);
    assert_eq!(after[1].1, before[1].1); // same name
    assert_eq!(after[1].2, before[1].2); // same signature key
}
