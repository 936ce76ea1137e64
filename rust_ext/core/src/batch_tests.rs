//! Batches: one durable write for many operations, each operation still its own transaction.

use std::sync::{Arc, Mutex};

use crate::tests::{client, group, rogue, Mem};
use crate::*;

/// Counts persists, and keeps the last snapshot (via `Mem`).
#[derive(Clone, Default)]
struct Counted {
    mem: Mem,
    writes: Arc<Mutex<u32>>,
}

impl Persist for Counted {
    fn persist(&mut self, snapshot: &[u8]) -> std::result::Result<(), String> {
        self.mem.persist(snapshot)?;
        *self.writes.lock().expect("lock") += 1;
        Ok(())
    }
}

impl Counted {
    fn writes(&self) -> u32 {
        *self.writes.lock().expect("lock")
    }
}

/// A hub and one counted client in a group.
fn pair() -> (Client, Client, Vec<u8>, Counted) {
    let (mut hub, _) = client("hub");
    let gid = hub.create_group(None).expect("group");
    let counted = Counted::default();
    let mut c = Client::create(
        b"phone",
        X25519_AES128GCM,
        Config::default(),
        Box::new(counted.clone()),
    )
    .expect("create");
    let kp = c.key_package(None).expect("kp");
    let out = hub.add_members(&gid, &[&kp], None, None).expect("add");
    c.join(&out.welcome, Some(b"hub"), None, None, None)
        .expect("join");
    (hub, c, gid, counted)
}

#[test]
fn a_batch_processes_each_message_as_process_would_with_one_write() {
    let (mut hub, mut c, gid, counted) = pair();
    let a = hub.encrypt(&gid, b"a", b"", None).expect("enc");
    let commit = hub.self_update(&gid, None).expect("commit");
    let b = hub.encrypt(&gid, b"b", b"", None).expect("enc");
    let other = {
        let mut ahead = crate::tests::group(1);
        ahead
            .0
            .encrypt(&ahead.2, b"other group", b"", None)
            .expect("enc")
    };
    let before = counted.writes();
    let results = c
        .process_batch(
            &gid,
            &[&a, &commit, &b, &a, b"junk", &other],
            Some(b"after batch"),
        )
        .expect("batch");
    assert_eq!(
        counted.writes(),
        before + 1,
        "one durable write for the batch"
    );
    let kinds: Vec<_> = results
        .iter()
        .map(|r| r.as_ref().map(|x| (x.kind, x.data.clone())))
        .collect();
    assert!(matches!(&kinds[0], Ok((Kind::Application, d)) if d == b"a"));
    assert!(matches!(&kinds[1], Ok((Kind::Commit, _))));
    assert!(matches!(&kinds[2], Ok((Kind::Application, d)) if d == b"b"));
    assert!(matches!(results[3], Err(Error::Duplicate)));
    assert!(matches!(results[4], Err(Error::Decode(_))));
    assert!(
        matches!(results[5], Err(Error::Policy(_))),
        "{:?}",
        results[5]
    );
    assert_eq!(c.epoch(&gid).expect("e"), hub.epoch(&gid).expect("e"));
    assert_eq!(c.app_data(), b"after batch");
    // What was written is the state after the batch.
    let mut again = Client::open(
        &counted.mem.bytes(),
        Config::default(),
        Box::new(Mem::default()),
    )
    .expect("open");
    assert!(matches!(
        again.process(&gid, &b, None),
        Err(Error::Duplicate)
    ));
    assert_eq!(again.app_data(), b"after batch");
}

#[test]
fn a_message_refused_inside_a_batch_leaves_no_trace_and_the_rest_stands() {
    use openmls::prelude::LeafNodeParameters;
    let (mut hub, mut clients, gid, _) = group(2);
    let epoch = hub.epoch(&gid).expect("e");
    let code = hub.safety_code(&gid).expect("code");
    // A client commits (only the hub may): decrypting it consumes keys; refusing must undo that.
    let rogue_commit = rogue(&mut clients[0], &gid, |g, p, s| {
        g.self_update(p, s, LeafNodeParameters::default())
            .expect("rogue commit")
            .into_commit()
    });
    let rogue_commit = crate::ops::to_bytes(&rogue_commit).expect("bytes");
    let x = clients[1].encrypt(&gid, b"x", b"", None).expect("enc");
    let results = hub
        .process_batch(&gid, &[&rogue_commit, &x], None)
        .expect("batch");
    assert!(matches!(results[0], Err(Error::Policy(_))));
    assert_eq!(results[1].as_ref().expect("x").data, b"x");
    assert_eq!(
        (
            hub.epoch(&gid).expect("e"),
            hub.safety_code(&gid).expect("c")
        ),
        (epoch, code)
    );
    let ct = hub.encrypt(&gid, b"still fine", b"", None).expect("enc");
    assert_eq!(
        clients[1].process(&gid, &ct, None).expect("dec").data,
        b"still fine"
    );
}

#[test]
fn a_batch_whose_write_fails_is_undone_entirely() {
    let (mut hub, mut clients, gid, mems) = group(1);
    let cts: Vec<Vec<u8>> = (0..3)
        .map(|i| hub.encrypt(&gid, &[i], b"", None).expect("enc"))
        .collect();
    let refs: Vec<&[u8]> = cts.iter().map(|c| c.as_slice()).collect();
    mems[0].set_fail(true);
    assert!(matches!(
        clients[0].process_batch(&gid, &refs, Some(b"never")),
        Err(Error::Storage(_))
    ));
    mems[0].set_fail(false);
    assert_eq!(clients[0].app_data(), b"");
    // Nothing was consumed: every message still decrypts, in one batch again.
    let results = clients[0].process_batch(&gid, &refs, None).expect("batch");
    let data: Vec<Vec<u8>> = results.into_iter().map(|r| r.expect("ok").data).collect();
    assert_eq!(data, vec![vec![0], vec![1], vec![2]]);
}

#[test]
fn an_empty_batch_still_stores_its_app_data() {
    let (_hub, mut c, gid, counted) = pair();
    let before = counted.writes();
    assert!(c
        .process_batch(&gid, &[], Some(b"x"))
        .expect("batch")
        .is_empty());
    assert_eq!((counted.writes(), c.app_data()), (before + 1, &b"x"[..]));
}
