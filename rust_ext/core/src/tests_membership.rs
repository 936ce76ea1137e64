//! Membership invariants (`membership.rs`) on every path a change can take: Adds we build,
//! Adds in commits we receive, Update proposals we receive, commit paths, proposals stored
//! before the check existed, and trees we join.

use openmls::prelude::{
    BasicCredential, CredentialWithKey, LeafNodeIndex, LeafNodeParameters, NewSignerBundle,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_traits::OpenMlsProvider as _;

use crate::ops::to_bytes;
use crate::tests::{client, group, rogue};
use crate::*;

fn credential(name: &[u8], key: Vec<u8>) -> CredentialWithKey {
    CredentialWithKey {
        credential: BasicCredential::new(name.to_vec()).into(),
        signature_key: key.into(),
    }
}

/// Members as (index, identity, key), to show that a refusal changed nothing.
fn roster(c: &Client, gid: &[u8]) -> Vec<(u32, Vec<u8>, Vec<u8>)> {
    c.members(gid)
        .expect("members")
        .into_iter()
        .map(|m| (m.index, m.identity, m.signature_key))
        .collect()
}

/// A KeyPackage with `name` as credential, signed by `signer` (another's key, if you like).
fn key_package_as(c: &mut Client, name: &[u8], signer: Option<&SignatureKeyPair>) -> Vec<u8> {
    use openmls::prelude::{KeyPackage, MlsMessageOut};
    let suite = c.suite;
    let Client {
        provider,
        signer: own,
        ..
    } = c;
    let signer = signer.unwrap_or(own);
    let bundle = KeyPackage::builder()
        .build(
            suite,
            &*provider,
            signer,
            credential(name, signer.to_public_vec()),
        )
        .expect("key package");
    to_bytes(&MlsMessageOut::from(bundle.key_package().clone())).expect("bytes")
}

#[test]
fn an_add_that_reuses_a_members_credential_or_key_is_refused_and_changes_nothing() {
    let (mut hub, mut clients, gid, _) = group(2);
    let (epoch, before) = (hub.epoch(&gid).expect("e"), roster(&hub, &gid));
    // A fresh device whose KeyPackage names the hub, or another client, as its credential.
    for name in [&b"hub"[..], b"client1"] {
        let (mut intruder, _) = client("intruder");
        let kp = key_package_as(&mut intruder, name, None);
        let refused = hub.add_members(&gid, &[&kp], None, None);
        assert!(
            matches!(refused, Err(Error::Policy(_))),
            "{name:?}: {refused:?}"
        );
    }
    // A KeyPackage carrying a member's signature key under a fresh name.
    let kp = {
        let c = &mut clients[0];
        let signer = SignatureKeyPair::read(
            &c.provider.storage,
            &c.signer.to_public_vec(),
            c.suite.signature_algorithm(),
        )
        .expect("signer");
        key_package_as(c, b"a fresh name", Some(&signer))
    };
    assert!(matches!(
        hub.add_members(&gid, &[&kp], None, None),
        Err(Error::Policy(_))
    ));
    // Two Adds of one commit may not share a credential either.
    let (mut a, _) = client("twin");
    let (mut b, _) = client("twin");
    let (kp_a, kp_b) = (
        a.key_package(None).expect("kp"),
        b.key_package(None).expect("kp"),
    );
    assert!(matches!(
        hub.add_members(&gid, &[&kp_a, &kp_b], None, None),
        Err(Error::Policy(_))
    ));
    assert_eq!(
        (hub.epoch(&gid).expect("e"), roster(&hub, &gid)),
        (epoch, before)
    );
    // Nothing is left half-done: an honest add goes through.
    let (mut fresh, _) = client("client2");
    let kp = fresh.key_package(None).expect("kp");
    let out = hub.add_members(&gid, &[&kp], None, None).expect("add");
    for c in clients.iter_mut() {
        c.process(&gid, &out.commit, None).expect("commit");
    }
}

#[test]
fn a_received_commit_adding_a_members_credential_is_refused_unless_that_leaf_is_removed() {
    let (mut hub, mut clients, gid, _) = group(2);
    let epoch = clients[0].epoch(&gid).expect("e");
    // The committer (buggy, or its state stolen) adds a second leaf named like client1: the
    // raw OpenMLS API allows it (it checks only key uniqueness). Every member refuses it.
    let (mut twin, _) = client("client1");
    let kp = twin.key_package(None).expect("kp");
    let kp = hub.parse_key_package(&kp).expect("parse");
    let commit = rogue(&mut hub, &gid, |g, p, s| {
        let bundle = g
            .commit_builder()
            .propose_adds([kp])
            .load_psks(p.storage())
            .expect("psks")
            .build(p.rand(), p.crypto(), s, |_| true)
            .expect("build")
            .stage_commit(p)
            .expect("stage");
        g.clear_pending_commit(p.storage()).expect("clear");
        to_bytes(&bundle.into_commit()).expect("bytes")
    });
    for c in clients.iter_mut() {
        assert!(matches!(
            c.process(&gid, &commit, None),
            Err(Error::Policy(_))
        ));
        assert_eq!(c.epoch(&gid).expect("e"), epoch);
    }
    // Replacing client1's leaf in the same commit (remove + add) is how a device is re-added.
    let (mut again, _) = client("client1");
    let kp = again.key_package(None).expect("kp");
    let kp = hub.parse_key_package(&kp).expect("parse");
    let commit = rogue(&mut hub, &gid, |g, p, s| {
        let bundle = g
            .commit_builder()
            .propose_removals([LeafNodeIndex::new(2)])
            .propose_adds([kp])
            .load_psks(p.storage())
            .expect("psks")
            .build(p.rand(), p.crypto(), s, |_| true)
            .expect("build")
            .stage_commit(p)
            .expect("stage");
        g.merge_pending_commit(p).expect("merge");
        to_bytes(&bundle.into_commit()).expect("bytes")
    });
    let r = clients[0].process(&gid, &commit, None).expect("replace");
    let info = r.commit.expect("info");
    assert_eq!(
        (info.added, info.removed),
        (vec![b"client1".to_vec()], vec![b"client1".to_vec()])
    );
}

#[test]
fn an_update_proposal_that_changes_credential_or_key_is_refused_by_every_member() {
    let (mut hub, mut clients, gid, _) = group(2);
    let before = roster(&hub, &gid);
    // client0 proposes to become "hub" (same signature key)...
    let renamed = rogue(&mut clients[0], &gid, |g, p, s| {
        let params = LeafNodeParameters::builder()
            .with_credential_with_key(credential(b"hub", s.to_public_vec()))
            .build();
        let (m, _) = g.propose_self_update(p, s, params).expect("propose");
        g.clear_pending_proposals(p.storage()).expect("clear");
        to_bytes(&m).expect("bytes")
    });
    // ...or to keep its name but sign with a new key from now on.
    let rekeyed = rogue(&mut clients[0], &gid, |g, p, s| {
        let new = SignatureKeyPair::new(s.signature_scheme()).expect("key");
        new.store(p.storage()).expect("store");
        let bundle = NewSignerBundle {
            signer: &new,
            credential_with_key: credential(b"client0", new.to_public_vec()),
        };
        let (m, _) = g
            .propose_self_update_with_new_signer(p, s, bundle, LeafNodeParameters::default())
            .expect("propose");
        g.clear_pending_proposals(p.storage()).expect("clear");
        to_bytes(&m).expect("bytes")
    });
    for proposal in [&renamed, &rekeyed] {
        let r = hub.process(&gid, proposal, None);
        assert!(matches!(r, Err(Error::Policy(_))), "{r:?}");
        let r = clients[1].process(&gid, proposal, None);
        assert!(matches!(r, Err(Error::Policy(_))), "{r:?}");
    }
    // Nothing was stored: the hub's next commit updates nobody, and the roster keeps its
    // credentials and keys.
    let commit = hub.self_update(&gid, None).expect("commit");
    let r = clients[1].process(&gid, &commit, None).expect("commit");
    assert!(r.commit.expect("info").updated.is_empty());
    let after = roster(&hub, &gid);
    assert_eq!(
        after.iter().map(|m| (m.0, &m.1, &m.2)).collect::<Vec<_>>(),
        before.iter().map(|m| (m.0, &m.1, &m.2)).collect::<Vec<_>>()
    );
}

#[test]
fn a_commit_path_that_changes_the_committers_credential_is_refused() {
    let (mut hub, mut clients, gid, _) = group(1);
    let commit = rogue(&mut hub, &gid, |g, p, s| {
        let params = LeafNodeParameters::builder()
            .with_credential_with_key(credential(b"client0", s.to_public_vec()))
            .build();
        let bundle = g.self_update(p, s, params).expect("commit");
        g.clear_pending_commit(p.storage()).expect("clear");
        to_bytes(&bundle.into_commit()).expect("bytes")
    });
    let epoch = clients[0].epoch(&gid).expect("e");
    assert!(matches!(
        clients[0].process(&gid, &commit, None),
        Err(Error::Policy(_))
    ));
    assert_eq!(clients[0].epoch(&gid).expect("e"), epoch);
    // The refused commit left the client able to follow the honest one.
    let commit = hub.self_update(&gid, None).expect("commit");
    clients[0]
        .process(&gid, &commit, None)
        .expect("honest commit");
}

#[test]
fn a_bad_proposal_stored_before_the_check_is_dropped_not_committed() {
    let (mut hub, mut clients, gid, _) = group(1);
    let before = roster(&hub, &gid);
    let renamed = rogue(&mut clients[0], &gid, |g, p, s| {
        let params = LeafNodeParameters::builder()
            .with_credential_with_key(credential(b"hub", s.to_public_vec()))
            .build();
        let (m, _) = g.propose_self_update(p, s, params).expect("propose");
        to_bytes(&m).expect("bytes")
    });
    // Stored straight through OpenMLS, as an older core without the check would have done.
    rogue(&mut hub, &gid, |g, p, _| {
        use openmls::prelude::tls_codec::Deserialize as _;
        use openmls::prelude::{MlsMessageIn, ProcessedMessageContent};
        let pm = MlsMessageIn::tls_deserialize_exact(&renamed[..])
            .expect("msg")
            .try_into_protocol_message()
            .expect("pm");
        let processed = g.process_message(p, pm).expect("process");
        let ProcessedMessageContent::ProposalMessage(q) = processed.into_content() else {
            panic!("not a proposal");
        };
        g.store_pending_proposal(p.storage(), *q).expect("store");
    });
    let commit = hub.self_update(&gid, None).expect("commit still possible");
    assert_eq!(roster(&hub, &gid)[1].1, before[1].1);
    // The client's pending leaf was not applied; it follows the commit (as a plain update of
    // the hub) and keeps its name.
    let r = clients[0].process(&gid, &commit, None).expect("commit");
    assert!(r.commit.expect("info").updated.is_empty());
}

#[test]
fn a_welcome_into_a_tree_with_two_leaves_of_one_credential_is_refused() {
    let (mut hub, _clients, gid, _) = group(1);
    let (mut twin, _) = client("twin");
    let (mut other, _) = client("twin");
    let kps = [
        twin.key_package(None).expect("kp"),
        other.key_package(None).expect("kp"),
    ];
    let parsed: Vec<_> = kps
        .iter()
        .map(|k| hub.parse_key_package(k).expect("parse"))
        .collect();
    let welcome = rogue(&mut hub, &gid, |g, p, s| {
        let bundle = g
            .commit_builder()
            .propose_adds(parsed)
            .load_psks(p.storage())
            .expect("psks")
            .build(p.rand(), p.crypto(), s, |_| true)
            .expect("build")
            .stage_commit(p)
            .expect("stage");
        let (_, welcome, _) = bundle.into_messages();
        to_bytes(&welcome.expect("welcome")).expect("bytes")
    });
    let groups = twin.groups();
    assert!(matches!(
        twin.join(&welcome, Some(b"hub"), None, None, None),
        Err(Error::Join(_))
    ));
    assert_eq!(twin.groups(), groups);
}
