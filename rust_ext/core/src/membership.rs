//! Membership invariants every change to a group must keep.
//!
//! RFC 9420 leaves credential continuity to the application, and OpenMLS 0.9 checks only that
//! signature and encryption keys are unique (an Add's signature key, every new encryption key);
//! it accepts an Add whose credential names a current member and an Update, proposed or in a
//! commit's path, that replaces a leaf's credential or signature key. Either lets a member
//! take on another's name or slip a leaf past whoever tracks members by credential or key
//! (the hub's device registry). So, on every path a change can enter (a proposal we receive,
//! a commit we receive, a commit we build, folded proposals included, a tree we join):
//!
//! - no two leaves share a credential identity or a signature key; an Add may reuse those of
//!   a leaf removed by the same commit (a device's leaf replaced in one commit), nothing else;
//! - a leaf keeps its credential and signature key for its whole life: an Update (proposal or
//!   commit path) may renew its encryption keys only.

use std::collections::HashSet;

use openmls::prelude::hash_ref::HashReference;
use openmls::prelude::*;
use openmls_rust_crypto::MemoryStorage;

use crate::error::{Error, Result};

fn identity(c: &Credential) -> Vec<u8> {
    c.serialized_content().to_vec()
}

/// An Update for leaf `index` (a proposal from that member, or the committer's path) may not
/// change the leaf's credential or signature key.
pub(crate) fn check_leaf_continuity(
    group: &MlsGroup,
    index: LeafNodeIndex,
    leaf: &LeafNode,
) -> Result<()> {
    let current = group
        .member_at(index)
        .ok_or_else(|| Error::Policy("an update for a leaf that is not a member".into()))?;
    if leaf.credential().credential_type() != current.credential.credential_type()
        || identity(leaf.credential()) != identity(&current.credential)
    {
        return Err(Error::Policy(
            "an update may not change a member's credential".into(),
        ));
    }
    if leaf.signature_key().as_slice() != current.signature_key.as_slice() {
        return Err(Error::Policy(
            "an update may not change a member's signature key".into(),
        ));
    }
    Ok(())
}

/// The changes of a commit by `committer`, checked against the group before it.
pub(crate) fn check_commit_membership(
    group: &MlsGroup,
    commit: &StagedCommit,
    committer: LeafNodeIndex,
) -> Result<()> {
    let removed: HashSet<LeafNodeIndex> = commit
        .remove_proposals()
        .map(|r| r.remove_proposal().removed())
        .collect();
    let mut identities = HashSet::new();
    let mut keys = HashSet::new();
    for m in group.members().filter(|m| !removed.contains(&m.index)) {
        identities.insert(identity(&m.credential));
        keys.insert(m.signature_key);
    }
    for add in commit.add_proposals() {
        let leaf = add.add_proposal().key_package().leaf_node();
        if !identities.insert(identity(leaf.credential())) {
            return Err(Error::Policy(
                "an Add may not carry the credential of a member (or of another Add)".into(),
            ));
        }
        if !keys.insert(leaf.signature_key().as_slice().to_vec()) {
            return Err(Error::Policy(
                "an Add may not carry the signature key of a member (or of another Add)".into(),
            ));
        }
    }
    for update in commit.update_proposals() {
        let Sender::Member(index) = update.sender() else {
            return Err(Error::Policy("an Update from a non-member".into()));
        };
        check_leaf_continuity(group, *index, update.update_proposal().leaf_node())?;
    }
    if let Some(leaf) = commit.update_path_leaf_node() {
        check_leaf_continuity(group, committer, leaf)?;
    }
    Ok(())
}

/// A group we are about to join: every leaf has its own identity and signature key.
pub(crate) fn check_unique_members(members: impl Iterator<Item = Member>) -> Result<()> {
    let mut identities = HashSet::new();
    let mut keys = HashSet::new();
    for m in members {
        if !identities.insert(identity(&m.credential)) || !keys.insert(m.signature_key) {
            return Err(Error::Join(
                "two members of the group share a credential or a signature key".into(),
            ));
        }
    }
    Ok(())
}

/// Forget stored Update proposals that break leaf continuity, so that a bad proposal stored
/// before this check existed cannot stop every later commit of ours. Received proposals are
/// checked before they are stored, so this normally finds nothing.
pub(crate) fn prune_stored_proposals(group: &mut MlsGroup, storage: &MemoryStorage) -> Result<()> {
    let bad: Vec<HashReference> = group
        .pending_proposals()
        .filter(|q| match (q.proposal(), q.sender()) {
            (Proposal::Update(u), Sender::Member(i)) => {
                check_leaf_continuity(group, *i, u.leaf_node()).is_err()
            }
            _ => false,
        })
        .map(|q| q.proposal_reference_ref().clone())
        .collect();
    for r in bad {
        group
            .remove_pending_proposal(storage, &r)
            .map_err(|e| Error::Internal(format!("cannot drop a stored proposal: {e:?}")))?;
    }
    Ok(())
}
