//! Behaviour of the core: groups, policy, transactions, forward and post-compromise security.

use std::sync::{Arc, Mutex};

use crate::*;

/// Keeps the last persisted snapshot in memory; can be told to fail.
#[derive(Clone, Default)]
pub(crate) struct Mem {
    last: Arc<Mutex<Vec<u8>>>,
    fail: Arc<Mutex<bool>>,
}

impl Persist for Mem {
    fn persist(&mut self, snapshot: &[u8]) -> std::result::Result<(), String> {
        if *self.fail.lock().expect("lock") {
            return Err("disk full (injected)".into());
        }
        *self.last.lock().expect("lock") = snapshot.to_vec();
        Ok(())
    }
}

impl Mem {
    fn bytes(&self) -> Vec<u8> {
        self.last.lock().expect("lock").clone()
    }
    fn set_fail(&self, f: bool) {
        *self.fail.lock().expect("lock") = f;
    }
}

pub(crate) fn client(name: &str) -> (Client, Mem) {
    let mem = Mem::default();
    let c = Client::create(
        name.as_bytes(),
        X25519_AES128GCM,
        Config::default(),
        Box::new(mem.clone()),
    )
    .expect("create");
    (c, mem)
}

fn reopen(mem: &Mem) -> Client {
    Client::open(&mem.bytes(), Config::default(), Box::new(Mem::default())).expect("open")
}

/// A hub and `n` clients in one group, every client joined.
pub(crate) fn group(n: usize) -> (Client, Vec<Client>, Vec<u8>, Vec<Mem>) {
    let (mut hub, _) = client("hub");
    let gid = hub.create_group(None).expect("group");
    let mut clients = Vec::new();
    let mut mems = Vec::new();
    for i in 0..n {
        let (mut c, mem) = client(&format!("client{i}"));
        let kp = c.key_package(None).expect("kp");
        let out = hub.add_members(&gid, &[&kp], None, None).expect("add");
        for earlier in clients.iter_mut() {
            let r = Client::process(earlier, &gid, &out.commit, None).expect("commit");
            assert_eq!(r.kind, Kind::Commit);
        }
        let joined = c
            .join(&out.welcome, Some(b"hub"), None, None, None)
            .expect("join");
        assert_eq!(joined, gid);
        clients.push(c);
        mems.push(mem);
    }
    (hub, clients, gid, mems)
}

#[test]
fn two_and_three_member_groups_exchange_messages_both_ways() {
    for n in [1, 2] {
        let (mut hub, mut clients, gid, _) = group(n);
        let ct = hub.encrypt(&gid, b"motion", b"aad", None).expect("enc");
        for c in clients.iter_mut() {
            let r = c.process(&gid, &ct, None).expect("dec");
            assert_eq!(
                (r.kind, &r.data[..], &r.aad[..]),
                (Kind::Application, &b"motion"[..], &b"aad"[..])
            );
            assert_eq!(r.sender, b"hub");
            assert_eq!(
                c.safety_code(&gid).expect("code"),
                hub.safety_code(&gid).expect("code")
            );
        }
        let back = clients[0].encrypt(&gid, b"ack", b"", None).expect("enc");
        let r = hub.process(&gid, &back, None).expect("dec");
        assert_eq!((&r.data[..], &r.sender[..]), (&b"ack"[..], &b"client0"[..]));
        assert_eq!(hub.members(&gid).expect("members").len(), n + 1);
    }
}

#[test]
fn only_the_committer_commits_and_client_updates_are_folded() {
    let (mut hub, mut clients, gid, _) = group(2);
    assert!(matches!(
        clients[0].self_update(&gid, None),
        Err(Error::Policy(_))
    ));
    let before = clients[0].members(&gid).expect("m")[1].clone();
    let proposal = clients[0].propose_update(&gid, None).expect("propose");
    assert_eq!(
        hub.process(&gid, &proposal, None).expect("p").kind,
        Kind::Proposal
    );
    assert_eq!(
        clients[1].process(&gid, &proposal, None).expect("p").kind,
        Kind::Proposal
    );
    let commit = hub.self_update(&gid, None).expect("commit");
    for c in clients.iter_mut() {
        let r = c.process(&gid, &commit, None).expect("commit");
        assert_eq!(r.commit.expect("info").updated, vec![b"client0".to_vec()]);
    }
    assert_eq!(
        hub.epoch(&gid).expect("e"),
        clients[0].epoch(&gid).expect("e")
    );
    let after = hub.members(&gid).expect("m")[1].clone();
    assert_eq!(before.identity, after.identity);
    // A client may send again once the commit cleared its proposal.
    let ct = clients[0].encrypt(&gid, b"x", b"", None).expect("enc");
    assert_eq!(hub.process(&gid, &ct, None).expect("dec").data, b"x");
}

/// Craft a message with OpenMLS directly, bypassing our API's own checks, as a rogue or
/// buggy member could.
pub(crate) fn rogue<T>(
    c: &mut Client,
    gid: &[u8],
    f: impl FnOnce(
        &mut openmls::prelude::MlsGroup,
        &crate::provider::Provider,
        &openmls_basic_credential::SignatureKeyPair,
    ) -> T,
) -> T {
    let Client {
        provider,
        signer,
        groups,
        ..
    } = c;
    let g = groups.get_mut(gid).expect("group");
    f(&mut g.mls, provider, signer)
}

#[test]
fn commits_from_clients_and_forbidden_proposals_are_refused_and_leave_no_trace() {
    use openmls::prelude::{LeafNodeIndex, LeafNodeParameters};
    let (mut hub, mut clients, gid, _) = group(2);
    let epoch = hub.epoch(&gid).expect("e");
    let code = hub.safety_code(&gid).expect("code");
    // A client commits a self-update: refused by the hub and by the other client.
    let commit = rogue(&mut clients[0], &gid, |g, p, s| {
        g.self_update(p, s, LeafNodeParameters::default())
            .expect("rogue commit")
            .into_commit()
    });
    let commit = crate::ops::to_bytes(&commit).expect("bytes");
    assert!(matches!(
        hub.process(&gid, &commit, None),
        Err(Error::Policy(_))
    ));
    assert!(matches!(
        clients[1].process(&gid, &commit, None),
        Err(Error::Policy(_))
    ));
    assert_eq!(
        (
            hub.epoch(&gid).expect("e"),
            hub.safety_code(&gid).expect("c")
        ),
        (epoch, code)
    );
    // A client proposes removing the other client: refused.
    let (prop, _) = rogue(&mut clients[1], &gid, |g, p, s| {
        g.propose_remove_member(p, s, LeafNodeIndex::new(1))
            .expect("rogue proposal")
    });
    let prop = crate::ops::to_bytes(&prop).expect("bytes");
    assert!(matches!(
        hub.process(&gid, &prop, None),
        Err(Error::Policy(_))
    ));
    // The refused messages left nothing behind: the hub can still send and commit.
    let ct = hub.encrypt(&gid, b"still fine", b"", None).expect("enc");
    assert_eq!(
        clients[1].process(&gid, &ct, None).expect("dec").data,
        b"still fine"
    );
    let _ = hub.self_update(&gid, None).expect("commit");
}

#[test]
fn a_commit_by_the_committer_with_forbidden_content_is_refused() {
    use openmls::prelude::Extensions;
    let (mut hub, mut clients, gid, _) = group(1);
    // Group context extensions: never legitimate in Privastead.
    let (commit, _, _) = rogue(&mut hub, &gid, |g, p, s| {
        g.update_group_context_extensions(p, Extensions::empty(), s)
            .expect("gce")
    });
    let commit = crate::ops::to_bytes(&commit).expect("bytes");
    assert!(
        matches!(
            clients[0].process(&gid, &commit, None),
            Err(Error::Policy(_))
        ),
        "GCE"
    );
}

#[test]
fn tampered_truncated_replayed_and_wrong_group_messages_are_rejected() {
    let (mut hub, mut clients, gid, _) = group(1);
    let other = hub.create_group(None).expect("g");
    let ct = hub.encrypt(&gid, b"secret", b"", None).expect("enc");
    let c = &mut clients[0];
    let mut tampered = ct.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert_eq!(
        c.process(&gid, &tampered, None).expect_err("must fail"),
        Error::Decryption
    );
    assert!(matches!(
        c.process(&gid, &ct[..ct.len() / 2], None),
        Err(Error::Decode(_))
    ));
    assert!(matches!(
        c.process(&other, &ct, None),
        Err(Error::Policy(_))
    ));
    let mut wrong = ct.clone();
    // The group id sits in the clear header; point it at another group.
    let pos = ct
        .windows(gid.len())
        .position(|w| w == gid.as_slice())
        .expect("gid");
    wrong[pos..pos + gid.len()].copy_from_slice(&other);
    assert!(matches!(
        c.process(&gid, &wrong, None),
        Err(Error::Policy(_))
    ));
    // The genuine message still decrypts after all those failures: they left no trace.
    assert_eq!(c.process(&gid, &ct, None).expect("dec").data, b"secret");
    assert_eq!(
        c.process(&gid, &ct, None).expect_err("must fail"),
        Error::Duplicate
    );
}

#[test]
fn wrong_or_missing_psk_fails_the_join_and_leaves_the_joiner_unchanged() {
    let (mut hub, _) = client("hub");
    let gid = hub.create_group(None).expect("g");
    let (mut phone, mem) = client("phone");
    let kp = phone.key_package(None).expect("kp");
    let out = hub
        .add_members(&gid, &[&kp], Some(b"pairing secret"), None)
        .expect("add");
    let before = mem.bytes();
    let wrong = phone.join(
        &out.welcome,
        Some(b"hub"),
        None,
        Some(b"wrong secret"),
        None,
    );
    assert!(matches!(wrong, Err(Error::Join(_))), "{wrong:?}");
    let missing = phone.join(&out.welcome, Some(b"hub"), None, None, None);
    assert!(matches!(missing, Err(Error::Join(_))), "{missing:?}");
    let imposter = phone.join(
        &out.welcome,
        Some(b"evil"),
        None,
        Some(b"pairing secret"),
        None,
    );
    assert!(matches!(imposter, Err(Error::Join(_))), "{imposter:?}");
    assert_eq!(mem.bytes(), before, "nothing was persisted");
    assert_eq!(phone.checkpoint(), &before[..]);
    // The key package was not consumed by the failures: the right secret still joins.
    let gid2 = phone
        .join(
            &out.welcome,
            None,
            Some(&hub.signature_key()),
            Some(b"pairing secret"),
            None,
        )
        .expect("join");
    assert_eq!(gid2, gid);
    assert_eq!(
        phone.safety_code(&gid).expect("c"),
        hub.safety_code(&gid).expect("c")
    );
}

#[test]
fn a_removed_member_decrypts_nothing_new() {
    let (mut hub, mut clients, gid, _) = group(2);
    let commit = hub
        .remove_members(&gid, &[Target::Identity(b"client1".to_vec())], None)
        .expect("remove");
    let r = clients[0].process(&gid, &commit, None).expect("commit");
    assert_eq!(r.commit.expect("info").removed, vec![b"client1".to_vec()]);
    let r = clients[1].process(&gid, &commit, None).expect("commit");
    assert!(r.commit.expect("info").removed_self);
    let ct = hub.encrypt(&gid, b"after", b"", None).expect("enc");
    assert_eq!(
        clients[0].process(&gid, &ct, None).expect("dec").data,
        b"after"
    );
    assert!(matches!(
        clients[1].process(&gid, &ct, None),
        Err(Error::GroupState(_))
    ));
    assert!(matches!(
        hub.remove_members(&gid, &[Target::Index(0)], None),
        Err(Error::Policy(_))
    ));
}

#[test]
fn a_failed_persist_rolls_everything_back() {
    let (mut hub, mut clients, gid, mems) = group(1);
    let ct = hub.encrypt(&gid, b"m", b"", None).expect("enc");
    mems[0].set_fail(true);
    assert!(matches!(
        clients[0].process(&gid, &ct, None),
        Err(Error::Storage(_))
    ));
    mems[0].set_fail(false);
    // The decryption was undone, so the message can be processed again.
    assert_eq!(clients[0].process(&gid, &ct, None).expect("dec").data, b"m");
}

#[test]
fn state_survives_reopen_and_app_data_rides_in_the_same_snapshot() {
    let (mut hub, mut clients, gid, mems) = group(1);
    let ct = hub
        .encrypt(&gid, b"one", b"", Some(b"outbox:1"))
        .expect("enc");
    assert_eq!(hub.app_data(), b"outbox:1");
    let _ = clients[0]
        .process(&gid, &ct, Some(b"cursor:1"))
        .expect("dec");
    let mut reopened = reopen(&mems[0]);
    assert_eq!(reopened.app_data(), b"cursor:1");
    assert_eq!(reopened.groups(), vec![gid.clone()]);
    let ct2 = hub.encrypt(&gid, b"two", b"", None).expect("enc");
    assert_eq!(
        reopened.process(&gid, &ct2, None).expect("dec").data,
        b"two"
    );
    assert_eq!(
        reopened.process(&gid, &ct, None).expect_err("must fail"),
        Error::Duplicate
    );
}

#[test]
fn forward_secrecy_a_later_state_copy_cannot_read_earlier_messages() {
    let (mut hub, mut clients, gid, mems) = group(1);
    let old = hub.encrypt(&gid, b"old", b"", None).expect("enc");
    let _ = clients[0].process(&gid, &old, None).expect("dec");
    // Several epochs later (beyond max_past_epochs), steal the client's state.
    for _ in 0..3 {
        let commit = hub.self_update(&gid, None).expect("commit");
        let _ = clients[0].process(&gid, &commit, None).expect("commit");
    }
    let never_read = hub.encrypt(&gid, b"fresh", b"", None).expect("enc");
    let mut stolen = reopen(&mems[0]);
    assert!(matches!(
        stolen.process(&gid, &old, None),
        Err(Error::Stale(_))
    ));
    // Decrypting a message deletes its key: a copy taken after reading cannot read it again.
    let _ = clients[0].process(&gid, &never_read, None).expect("dec");
    let mut after = reopen(&mems[0]);
    assert_eq!(
        after
            .process(&gid, &never_read, None)
            .expect_err("must fail"),
        Error::Duplicate
    );
}

#[test]
fn post_compromise_security_a_stolen_state_is_locked_out_by_the_victims_update() {
    let (mut hub, mut clients, gid, mems) = group(1);
    let mut stolen = reopen(&mems[0]);
    let proposal = clients[0].propose_update(&gid, None).expect("propose");
    let _ = hub.process(&gid, &proposal, None).expect("p");
    let _ = stolen.process(&gid, &proposal, None);
    let commit = hub.self_update(&gid, None).expect("commit");
    let _ = clients[0].process(&gid, &commit, None).expect("commit");
    // The attacker's copy cannot follow the commit: the path secret went to the new leaf key.
    assert!(stolen.process(&gid, &commit, None).is_err());
    let ct = hub.encrypt(&gid, b"after heal", b"", None).expect("enc");
    assert_eq!(
        clients[0].process(&gid, &ct, None).expect("dec").data,
        b"after heal"
    );
    assert!(stolen.process(&gid, &ct, None).is_err());
}

#[test]
fn stragglers_from_the_previous_epoch_still_decrypt_and_future_epochs_report_both() {
    let (mut hub, mut clients, gid, _) = group(1);
    let straggler = hub.encrypt(&gid, b"late", b"", None).expect("enc");
    let commit = hub.self_update(&gid, None).expect("commit");
    let future = hub.encrypt(&gid, b"next", b"", None).expect("enc");
    let e = clients[0].epoch(&gid).expect("e");
    assert_eq!(
        clients[0]
            .process(&gid, &future, None)
            .expect_err("must fail"),
        Error::WrongEpoch {
            message_epoch: e + 1,
            group_epoch: e
        }
    );
    let _ = clients[0].process(&gid, &commit, None).expect("commit");
    assert_eq!(
        clients[0]
            .process(&gid, &straggler, None)
            .expect("dec")
            .data,
        b"late"
    );
    assert_eq!(
        clients[0].process(&gid, &future, None).expect("dec").data,
        b"next"
    );
    // The creator decrypts a client's straggler too.
    let client_old = clients[0].encrypt(&gid, b"c-late", b"", None).expect("enc");
    let commit = hub.self_update(&gid, None).expect("commit");
    let _ = clients[0].process(&gid, &commit, None).expect("commit");
    assert_eq!(
        hub.process(&gid, &client_old, None).expect("dec").data,
        b"c-late"
    );
}

#[test]
fn batches_share_one_persist_and_last_handshake_is_recorded() {
    let (mut hub, mut clients, gid, _) = group(1);
    let cts = hub
        .encrypt_batch(&gid, &[b"a", b"b", b"c"], b"clip", None)
        .expect("batch");
    let got: Vec<_> = cts
        .iter()
        .map(|ct| clients[0].process(&gid, ct, None).expect("dec").data)
        .collect();
    assert_eq!(got, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    let (seq, _) = hub.last_handshake();
    let commit = hub.self_update(&gid, None).expect("commit");
    assert_eq!(hub.last_handshake(), (seq + 1, vec![commit]));
}

#[test]
fn peek_reads_routing_facts_and_garbage_is_a_clean_error() {
    let (mut hub, _clients, gid, _) = group(1);
    let ct = hub.encrypt(&gid, b"x", b"", None).expect("enc");
    let p = peek(&ct, 1 << 20).expect("peek");
    assert_eq!(
        (p.group_id, p.epoch, p.kind),
        (gid.clone(), 1, Kind::Application)
    );
    assert!(matches!(peek(&ct, 10), Err(Error::Decode(_))));
    let mut seed = 0x1234_5678u32;
    for len in 0..300 {
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            })
            .collect();
        assert!(peek(&junk, 1 << 20).is_err());
        assert!(hub.process(&gid, &junk, None).is_err());
        assert!(Client::open(&junk, Config::default(), Box::new(Mem::default())).is_err());
    }
}

#[test]
fn export_secret_agrees_and_checks_length() {
    let (hub, clients, gid, _) = group(1);
    let a = hub.export_secret(&gid, "clip", b"ctx", 32).expect("exp");
    assert_eq!(
        a,
        clients[0]
            .export_secret(&gid, "clip", b"ctx", 32)
            .expect("exp")
    );
    assert!(matches!(
        hub.export_secret(&gid, "clip", b"", 70000),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn chacha_suite_works_and_mismatched_suites_are_refused() {
    let mem = Mem::default();
    let mut hub = Client::create(
        b"hub",
        X25519_CHACHA20POLY1305,
        Config::default(),
        Box::new(mem),
    )
    .expect("create");
    let gid = hub.create_group(None).expect("g");
    let (mut aes, _) = client("aes-phone");
    let kp = aes.key_package(None).expect("kp");
    assert!(matches!(
        hub.add_members(&gid, &[&kp], None, None),
        Err(Error::Policy(_))
    ));
    let mut cha = Client::create(
        b"p",
        X25519_CHACHA20POLY1305,
        Config::default(),
        Box::new(Mem::default()),
    )
    .expect("create");
    let kp = cha.key_package(None).expect("kp");
    let out = hub.add_members(&gid, &[&kp], None, None).expect("add");
    cha.join(&out.welcome, Some(b"hub"), None, None, None)
        .expect("join");
    let ct = hub.encrypt(&gid, b"chacha", b"", None).expect("enc");
    assert_eq!(cha.process(&gid, &ct, None).expect("dec").data, b"chacha");
}

/// Not a test: `cargo test --release -- --ignored --nocapture timing` prints where time goes.
#[test]
#[ignore]
fn timing() {
    use std::time::Instant;
    let (mut hub, mut clients, gid, _) = group(1);
    let pt = vec![7u8; 1 << 20];
    for _ in 0..3 {
        let t = Instant::now();
        let ct = hub.encrypt(&gid, &pt, b"", None).expect("enc");
        let enc = t.elapsed();
        let t = Instant::now();
        let _ = clients[0].process(&gid, &ct, None).expect("dec");
        let dec = t.elapsed();
        let t = Instant::now();
        hub.set_app_data(b"").expect("save");
        let save = t.elapsed();
        let t = Instant::now();
        let _ = crate::ops::parse(&ct, 1 << 30).expect("parse");
        let parse = t.elapsed();
        println!("enc {enc:?} dec {dec:?} save {save:?} parse {parse:?}");
    }
}

#[test]
#[ignore]
fn timing_primitives() {
    use openmls_traits::crypto::OpenMlsCrypto;
    use openmls_traits::signatures::Signer;
    use openmls_traits::types::AeadType;
    use std::time::Instant;
    let (hub, _) = client("hub");
    let data = vec![7u8; 1 << 20];
    for _ in 0..3 {
        let t = Instant::now();
        let sig = hub.signer.sign(&data).expect("sign");
        let sign = t.elapsed();
        let t = Instant::now();
        hub.provider
            .crypto
            .verify_signature(
                openmls_traits::types::SignatureScheme::ED25519,
                &data,
                &hub.signer.to_public_vec(),
                &sig,
            )
            .expect("verify");
        let verify = t.elapsed();
        let t = Instant::now();
        let ct = hub
            .provider
            .crypto
            .aead_encrypt(AeadType::Aes128Gcm, &[1; 16], &data, &[2; 12], b"")
            .expect("aead");
        let aead = t.elapsed();
        let t = Instant::now();
        let _ = hub
            .provider
            .crypto
            .aead_decrypt(AeadType::Aes128Gcm, &[1; 16], &ct, &[2; 12], b"")
            .expect("aead");
        let aead_d = t.elapsed();
        println!("sign {sign:?} verify {verify:?} aead_enc {aead:?} aead_dec {aead_d:?}");
    }
}
