//! Incoming messages: decode, route, decrypt, and enforce Privastead's group policy.
//!
//! Policy: only PrivateMessages; the sender is a current member; only the group's committer
//! commits; other members may only propose Updates of their own leaf; a commit may carry a
//! path, Adds, Removes (never of the committer), Updates by reference and PSKs the receiver
//! holds, and nothing else (no GroupContextExtensions, ReInit, ExternalInit, SelfRemove or
//! custom proposals). Membership changes keep the invariants of [`crate::membership`]: one
//! leaf per credential and per signature key, and a leaf keeps both for its whole life.

use openmls::framing::errors::{MessageDecryptionError, SecretTreeError};
use openmls::prelude::*;
use openmls_rust_crypto::MemoryStorageError;

use crate::client::{guard, Client};
use crate::error::{internal, Error, Result};
use crate::membership::{check_commit_membership, check_leaf_continuity};
use crate::ops::parse;

/// What kind of content a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Application,
    Commit,
    Proposal,
}

/// What a merged commit changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitInfo {
    /// Identities added by the commit.
    pub added: Vec<Vec<u8>>,
    /// Identities removed by the commit.
    pub removed: Vec<Vec<u8>>,
    /// Identities whose Update proposals the commit applied.
    pub updated: Vec<Vec<u8>>,
    /// True when this client was removed; its copy of the group is then deleted.
    pub removed_self: bool,
}

/// A processed message.
#[derive(Debug, Clone)]
pub struct Received {
    pub kind: Kind,
    /// Plaintext of an application message; empty otherwise.
    pub data: Vec<u8>,
    pub sender: Vec<u8>,
    pub sender_index: u32,
    /// Epoch the message was sent in.
    pub epoch: u64,
    pub aad: Vec<u8>,
    pub commit: Option<CommitInfo>,
}

/// Clear-text routing facts of a message, readable without any key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peek {
    pub group_id: Vec<u8>,
    pub epoch: u64,
    pub kind: Kind,
}

fn kind_of(c: ContentType) -> Kind {
    match c {
        ContentType::Application => Kind::Application,
        ContentType::Proposal => Kind::Proposal,
        ContentType::Commit => Kind::Commit,
    }
}

fn protocol_message(bytes: &[u8], limit: usize) -> Result<ProtocolMessage> {
    parse(bytes, limit)?
        .try_into_protocol_message()
        .map_err(|_| Error::Decode("not a group message".into()))
}

/// Group id, epoch and content type of a message, for routing and buffering.
pub fn peek(message: &[u8], limit: usize) -> Result<Peek> {
    guard(|| {
        let pm = protocol_message(message, limit)?;
        Ok(Peek {
            group_id: pm.group_id().as_slice().to_vec(),
            epoch: pm.epoch().as_u64(),
            kind: kind_of(pm.content_type()),
        })
    })
}

/// Map OpenMLS processing errors to ours. Every cryptographic or authentication failure
/// becomes the same `Decryption`; only replay and age are told apart, because callers act
/// differently on them (drop silently, or resynchronise).
fn processing_error(e: ProcessMessageError<MemoryStorageError>) -> Error {
    match e {
        ProcessMessageError::ValidationError(v) => match v {
            ValidationError::WrongEpoch | ValidationError::NoPastEpochData => {
                Error::Stale("its epoch's keys are gone".into())
            }
            ValidationError::UnableToDecrypt(MessageDecryptionError::SecretTreeError(s)) => match s
            {
                SecretTreeError::SecretReuseError => Error::Duplicate,
                SecretTreeError::TooDistantInThePast => {
                    Error::Stale("too far behind in its epoch".into())
                }
                _ => Error::Decryption,
            },
            ValidationError::LibraryError(e) => internal(e),
            _ => Error::Decryption,
        },
        ProcessMessageError::IncompatibleWireFormat => {
            Error::Policy("only encrypted (PrivateMessage) framing is accepted".into())
        }
        ProcessMessageError::InvalidCommit(e) => {
            Error::GroupState(format!("the commit cannot be applied: {e:?}"))
        }
        ProcessMessageError::GroupStateError(e) => Error::GroupState(format!("{e:?}")),
        ProcessMessageError::LibraryError(e) => internal(e),
        ProcessMessageError::StorageError(e) => internal(e),
        _ => Error::Decryption,
    }
}

fn check_commit(sc: &StagedCommit, committer: u32) -> Result<()> {
    for q in sc.queued_proposals() {
        match q.proposal() {
            Proposal::Add(_) | Proposal::PreSharedKey(_) => {}
            Proposal::Remove(r) => {
                if r.removed().u32() == committer {
                    return Err(Error::Policy(
                        "a commit may not remove the committer".into(),
                    ));
                }
            }
            Proposal::Update(_) => {
                if q.proposal_or_ref_type() != ProposalOrRefType::Reference {
                    return Err(Error::Policy(
                        "Update proposals must be committed by reference".into(),
                    ));
                }
            }
            other => {
                return Err(Error::Policy(format!(
                    "a commit may not carry {:?} proposals",
                    other.proposal_type()
                )))
            }
        }
    }
    Ok(())
}

impl Client {
    /// Decrypt and apply one incoming message (see the module docs for the policy). The new
    /// state is durable before the result is returned; a refused message changes nothing.
    pub fn process(
        &mut self,
        gid: &[u8],
        message: &[u8],
        app_data: Option<&[u8]>,
    ) -> Result<Received> {
        let pm = guard(|| protocol_message(message, self.config.max_message_size))?;
        let ProtocolMessage::PrivateMessage(_) = &pm else {
            return Err(Error::Policy(
                "only encrypted (PrivateMessage) framing is accepted".into(),
            ));
        };
        if pm.group_id().as_slice() != gid {
            return Err(Error::Policy("the message is for another group".into()));
        }
        let g = self.group(gid)?;
        let (msg_epoch, group_epoch) = (pm.epoch().as_u64(), g.mls.epoch().as_u64());
        if msg_epoch > group_epoch {
            return Err(Error::WrongEpoch {
                message_epoch: msg_epoch,
                group_epoch,
            });
        }
        if msg_epoch < group_epoch
            && (pm.content_type() != ContentType::Application
                || group_epoch - msg_epoch > self.config.max_past_epochs as u64)
        {
            return Err(Error::Stale(format!(
                "epoch {msg_epoch} is behind the group's epoch {group_epoch}"
            )));
        }
        self.transact(app_data, |c| c.process_inner(gid, pm))
    }

    fn process_inner(&mut self, gid: &[u8], pm: ProtocolMessage) -> Result<Received> {
        let Client {
            provider, groups, ..
        } = self;
        let g = groups
            .get_mut(gid)
            .ok_or_else(|| Error::GroupState("unknown group".into()))?;
        let p = g
            .mls
            .process_message(&*provider, pm)
            .map_err(processing_error)?;
        let Sender::Member(idx) = *p.sender() else {
            return Err(Error::Policy("the sender is not a member".into()));
        };
        let mut r = Received {
            kind: Kind::Application,
            data: Vec::new(),
            sender: p.credential().serialized_content().to_vec(),
            sender_index: idx.u32(),
            epoch: p.epoch().as_u64(),
            aad: p.aad().to_vec(),
            commit: None,
        };
        let committer = g.committer;
        match p.into_content() {
            ProcessedMessageContent::ApplicationMessage(m) => {
                r.data = m.into_bytes();
            }
            ProcessedMessageContent::ProposalMessage(q) => {
                r.kind = Kind::Proposal;
                if idx.u32() == committer {
                    return Err(Error::Policy(
                        "the committer does not send proposals".into(),
                    ));
                }
                let Proposal::Update(update) = q.proposal() else {
                    return Err(Error::Policy(
                        "members may only propose updates of their own leaf".into(),
                    ));
                };
                check_leaf_continuity(&g.mls, idx, update.leaf_node())?;
                // Stored by every member: the committer's next commit may reference it.
                g.mls
                    .store_pending_proposal(provider.storage(), *q)
                    .map_err(internal)?;
            }
            ProcessedMessageContent::StagedCommitMessage(sc) => {
                r.kind = Kind::Commit;
                if idx.u32() != committer {
                    return Err(Error::Policy(
                        "only the group's committer may commit".into(),
                    ));
                }
                check_commit(&sc, committer)?;
                check_commit_membership(&g.mls, &sc, idx)?;
                let name_at = |i: LeafNodeIndex| {
                    g.mls
                        .member(i)
                        .map(|c| c.serialized_content().to_vec())
                        .unwrap_or_default()
                };
                let info = CommitInfo {
                    added: sc
                        .add_proposals()
                        .map(|a| {
                            a.add_proposal()
                                .key_package()
                                .leaf_node()
                                .credential()
                                .serialized_content()
                                .to_vec()
                        })
                        .collect(),
                    removed: sc
                        .remove_proposals()
                        .map(|q| name_at(q.remove_proposal().removed()))
                        .collect(),
                    updated: sc
                        .update_proposals()
                        .filter_map(|q| match q.sender() {
                            Sender::Member(i) => Some(name_at(*i)),
                            _ => None,
                        })
                        .collect(),
                    removed_self: sc.self_removed(),
                };
                g.mls
                    .merge_staged_commit(&*provider, *sc)
                    .map_err(|e| Error::GroupState(format!("cannot merge the commit: {e:?}")))?;
                if info.removed_self {
                    // Nothing more to read here; drop every key we still hold for it.
                    let mut gone = groups
                        .remove(gid)
                        .ok_or_else(|| Error::Internal("group vanished".into()))?;
                    gone.mls.delete(provider.storage()).map_err(internal)?;
                }
                r.commit = Some(info);
            }
            ProcessedMessageContent::ExternalJoinProposalMessage(_) => {
                return Err(Error::Policy("external proposals are not accepted".into()));
            }
            // Our own message echoed back by the relay: we have seen it.
            _ => return Err(Error::Duplicate),
        }
        Ok(r)
    }
}
