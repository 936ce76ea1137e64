//! Group operations of a client: key packages, create, add, join, remove, update, encrypt.

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;

use openmls::schedule::{ExternalPsk, PreSharedKeyId, Psk};
use openmls_traits::storage::StorageProvider as _;
use sha2::{Digest, Sha256};

use crate::client::{guard, Client, Group};
use crate::error::{group_state, internal, Error, Result};
use crate::membership::{check_commit_membership, check_unique_members, prune_stored_proposals};

/// The PSK id under which the pairing secret is stored on both sides. The secret itself never
/// leaves the key schedule; a wrong secret makes the Welcome undecryptable.
pub const PAIRING_PSK_ID: &[u8] = b"privastead/pairing-psk/v1";
const GROUP_ID_LEN: usize = 16;
const SAFETY_LABEL: &[u8] = b"privastead safety code v1";

/// A commit that adds members, and the Welcome for the new members.
#[derive(Debug, Clone)]
pub struct AddOutput {
    pub commit: Vec<u8>,
    pub welcome: Vec<u8>,
}

/// A member as seen in the ratchet tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub index: u32,
    pub identity: Vec<u8>,
    pub signature_key: Vec<u8>,
}

/// Whom to remove: by identity (BasicCredential content) or by leaf index.
#[derive(Debug, Clone)]
pub enum Target {
    Identity(Vec<u8>),
    Index(u32),
}

pub(crate) fn to_bytes(m: &MlsMessageOut) -> Result<Vec<u8>> {
    m.tls_serialize_detached().map_err(internal)
}

/// Parse one MLSMessage, refusing oversized input before the decoder allocates anything.
pub(crate) fn parse(bytes: &[u8], limit: usize) -> Result<MlsMessageIn> {
    if bytes.len() > limit {
        return Err(Error::Decode(format!(
            "{} bytes exceed the limit of {limit}",
            bytes.len()
        )));
    }
    MlsMessageIn::tls_deserialize_exact(bytes).map_err(|e| Error::Decode(format!("{e:?}")))
}

/// Our own staged commit keeps the membership invariants, or it is dropped (the caller's
/// transaction rolls the state back): the same rule as for commits we receive.
fn check_own_commit(group: &MlsGroup) -> Result<()> {
    let staged = group
        .pending_commit()
        .ok_or_else(|| Error::Internal("no pending commit after staging".into()))?;
    check_commit_membership(group, staged, group.own_leaf_index())
}

fn identity_of(c: &Credential) -> Vec<u8> {
    c.serialized_content().to_vec()
}

impl Client {
    fn credential(&self) -> CredentialWithKey {
        CredentialWithKey {
            credential: BasicCredential::new(self.name.clone()).into(),
            signature_key: self.signer.to_public_vec().into(),
        }
    }

    pub(crate) fn group(&self, gid: &[u8]) -> Result<&Group> {
        self.groups.get(gid).ok_or_else(|| {
            Error::GroupState("unknown group (never joined, deleted, or removed)".into())
        })
    }

    pub(crate) fn group_mut(&mut self, gid: &[u8]) -> Result<&mut Group> {
        self.groups.get_mut(gid).ok_or_else(|| {
            Error::GroupState("unknown group (never joined, deleted, or removed)".into())
        })
    }

    fn committer_group(&mut self, gid: &[u8]) -> Result<&mut Group> {
        let g = self.group_mut(gid)?;
        if g.mls.own_leaf_index().u32() != g.committer {
            return Err(Error::Policy(
                "only the group's committer (its creator) may commit".into(),
            ));
        }
        Ok(g)
    }

    fn join_config(&self) -> MlsGroupJoinConfig {
        MlsGroupJoinConfig::builder()
            .use_ratchet_tree_extension(true)
            .max_past_epochs(self.config.max_past_epochs)
            .sender_ratchet_configuration(SenderRatchetConfiguration::new(
                self.config.out_of_order_tolerance,
                self.config.maximum_forward_distance,
            ))
            .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
            .build()
    }

    /// A fresh KeyPackage (as an MLSMessage), persisted before it is returned so that a
    /// Welcome built on it can always be joined.
    pub fn key_package(&mut self, app_data: Option<&[u8]>) -> Result<Vec<u8>> {
        self.transact(app_data, |c| {
            let bundle = KeyPackage::builder()
                .build(c.suite, &c.provider, &c.signer, c.credential())
                .map_err(internal)?;
            to_bytes(&MlsMessageOut::from(bundle.key_package().clone()))
        })
    }

    /// A new group with a random 16-byte id; this client is its only committer.
    pub fn create_group(&mut self, app_data: Option<&[u8]>) -> Result<Vec<u8>> {
        self.transact(app_data, |c| {
            let gid = c
                .provider
                .rand()
                .random_vec(GROUP_ID_LEN)
                .map_err(internal)?;
            let cfg = MlsGroupCreateConfig::builder()
                .ciphersuite(c.suite)
                .use_ratchet_tree_extension(true)
                .max_past_epochs(c.config.max_past_epochs)
                .sender_ratchet_configuration(SenderRatchetConfiguration::new(
                    c.config.out_of_order_tolerance,
                    c.config.maximum_forward_distance,
                ))
                .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
                .build();
            let mls = MlsGroup::new_with_group_id(
                &c.provider,
                &c.signer,
                &cfg,
                GroupId::from_slice(&gid),
                c.credential(),
            )
            .map_err(internal)?;
            let committer = mls.own_leaf_index().u32();
            c.groups.insert(gid.clone(), Group { mls, committer });
            Ok(gid)
        })
    }

    pub(crate) fn parse_key_package(&self, bytes: &[u8]) -> Result<KeyPackage> {
        let msg = parse(bytes, self.config.max_message_size)?;
        let MlsMessageBodyIn::KeyPackage(kp) = msg.extract() else {
            return Err(Error::Decode("not a KeyPackage".into()));
        };
        let kp = kp
            .validate(self.provider.crypto(), ProtocolVersion::Mls10)
            .map_err(|e| Error::Decode(format!("invalid KeyPackage: {e:?}")))?;
        if kp.ciphersuite() != self.suite {
            return Err(Error::Policy(
                "the KeyPackage uses another ciphersuite than the group".into(),
            ));
        }
        Ok(kp)
    }

    /// Add members (commit + Welcome); the commit also folds in stored update proposals.
    /// With `psk`, the pairing secret is mixed into the key schedule as an external PSK: only
    /// a joiner holding the same secret can use the Welcome.
    pub fn add_members(
        &mut self,
        gid: &[u8],
        key_packages: &[&[u8]],
        psk: Option<&[u8]>,
        app_data: Option<&[u8]>,
    ) -> Result<AddOutput> {
        if key_packages.is_empty() {
            return Err(Error::InvalidArgument("no key packages given".into()));
        }
        self.transact(app_data, |c| {
            let kps = key_packages
                .iter()
                .map(|b| c.parse_key_package(b))
                .collect::<Result<Vec<_>>>()?;
            let psk_id = match psk {
                Some(secret) => {
                    let id = PreSharedKeyId::new(
                        c.suite,
                        c.provider.rand(),
                        Psk::External(ExternalPsk::new(PAIRING_PSK_ID.to_vec())),
                    )
                    .map_err(internal)?;
                    id.store(&c.provider, secret).map_err(internal)?;
                    Some(id)
                }
                None => None,
            };
            let Client {
                provider,
                signer,
                groups,
                ..
            } = c;
            let g = groups.get_mut(gid).ok_or_else(|| {
                Error::GroupState("unknown group (never joined, deleted, or removed)".into())
            })?;
            if g.mls.own_leaf_index().u32() != g.committer {
                return Err(Error::Policy(
                    "only the group's committer (its creator) may commit".into(),
                ));
            }
            prune_stored_proposals(&mut g.mls, provider.storage())?;
            let mut builder = g
                .mls
                .commit_builder()
                .consume_proposal_store(true)
                .propose_adds(kps);
            if let Some(id) = &psk_id {
                builder = builder.add_proposal(Proposal::PreSharedKey(Box::new(
                    PreSharedKeyProposal::new(id.clone()),
                )));
            }
            let bundle = builder
                .load_psks(provider.storage())
                .map_err(|e| group_state("cannot commit", e))?
                .build(provider.rand(), provider.crypto(), &*signer, |_| true)
                .map_err(|e| Error::Policy(format!("cannot add: {e:?}")))?
                .stage_commit(&*provider)
                .map_err(|e| group_state("cannot commit", e))?;
            check_own_commit(&g.mls)?;
            let (commit, welcome, _) = bundle.into_messages();
            let welcome = welcome.ok_or_else(|| Error::Internal("no Welcome".into()))?;
            g.mls
                .merge_pending_commit(&*provider)
                .map_err(|e| group_state("cannot merge", e))?;
            if let Some(id) = &psk_id {
                // One-time secret: keep it no longer than the commit needs it.
                provider.storage().delete_psk(id.psk()).map_err(internal)?;
            }
            let out = AddOutput {
                commit: to_bytes(&commit)?,
                welcome: to_bytes(&welcome)?,
            };
            c.record_handshake(vec![out.commit.clone(), out.welcome.clone()]);
            Ok(out)
        })
    }

    /// Join a group from a Welcome. At least one inviter check is required; `psk` must be the
    /// pairing secret the inviter used (or `None` if it used none). On any failure the state,
    /// including the consumed key package, is exactly as before.
    pub fn join(
        &mut self,
        welcome: &[u8],
        inviter_identity: Option<&[u8]>,
        inviter_signature_key: Option<&[u8]>,
        psk: Option<&[u8]>,
        app_data: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        if inviter_identity.is_none() && inviter_signature_key.is_none() {
            return Err(Error::InvalidArgument(
                "join needs the expected inviter identity or signature key".into(),
            ));
        }
        let msg = parse(welcome, self.config.max_message_size)?;
        let MlsMessageBodyIn::Welcome(w) = msg.extract() else {
            return Err(Error::Decode("not a Welcome".into()));
        };
        self.transact(app_data, |c| {
            if let Some(secret) = psk {
                PreSharedKeyId::external(PAIRING_PSK_ID.to_vec(), Vec::new())
                    .store(&c.provider, secret)
                    .map_err(internal)?;
            }
            let cfg = c.join_config();
            let builder = StagedWelcome::build_from_welcome(&c.provider, &cfg, w)
                .map_err(|e| Error::Join(format!("{e:?}")))?;
            let carries_psk = builder
                .processed_welcome()
                .psks()
                .iter()
                .any(|id| matches!(id.psk(), Psk::External(e) if e.psk_id() == PAIRING_PSK_ID));
            if psk.is_some() && !carries_psk {
                return Err(Error::Join(
                    "the Welcome is not bound to a pairing secret".into(),
                ));
            }
            let staged = builder.build().map_err(|e| Error::Join(format!("{e:?}")))?;
            if staged.group_context().ciphersuite() != c.suite {
                return Err(Error::Join("the group uses another ciphersuite".into()));
            }
            let sender = staged.welcome_sender().map_err(internal)?;
            let identity_ok = inviter_identity
                .is_none_or(|want| sender.credential().serialized_content() == want);
            let key_ok =
                inviter_signature_key.is_none_or(|want| sender.signature_key().as_slice() == want);
            if !(identity_ok && key_ok) {
                return Err(Error::Join("the inviter is not who was expected".into()));
            }
            check_unique_members(staged.members())?;
            let committer = staged.welcome_sender_index().u32();
            let mls = staged
                .into_group(&c.provider)
                .map_err(|e| Error::Join(format!("{e:?}")))?;
            if psk.is_some() {
                c.provider
                    .storage()
                    .delete_psk(&Psk::External(ExternalPsk::new(PAIRING_PSK_ID.to_vec())))
                    .map_err(internal)?;
            }
            let gid = mls.group_id().as_slice().to_vec();
            if c.groups.contains_key(&gid) {
                return Err(Error::Join("already a member of this group".into()));
            }
            c.groups.insert(gid.clone(), Group { mls, committer });
            Ok(gid)
        })
    }

    fn resolve(&self, g: &Group, target: &Target) -> Result<LeafNodeIndex> {
        let found = g.mls.members().find(|m| match target {
            Target::Identity(id) => m.credential.serialized_content() == id.as_slice(),
            Target::Index(i) => m.index.u32() == *i,
        });
        let m = found.ok_or_else(|| Error::InvalidArgument("no such member".into()))?;
        if m.index.u32() == g.committer {
            return Err(Error::Policy("the committer cannot be removed".into()));
        }
        Ok(m.index)
    }

    fn commit(
        &mut self,
        gid: &[u8],
        removals: Vec<LeafNodeIndex>,
        force_update: bool,
    ) -> Result<Vec<u8>> {
        self.committer_group(gid)?;
        let Client {
            provider,
            signer,
            groups,
            ..
        } = self;
        let g = groups
            .get_mut(gid)
            .ok_or_else(|| Error::Internal("group vanished".into()))?;
        prune_stored_proposals(&mut g.mls, provider.storage())?;
        let bundle = g
            .mls
            .commit_builder()
            .consume_proposal_store(true)
            .force_self_update(force_update)
            .propose_removals(removals)
            .load_psks(provider.storage())
            .map_err(|e| group_state("cannot commit", e))?
            .build(provider.rand(), provider.crypto(), &*signer, |_| true)
            .map_err(|e| group_state("cannot commit", e))?
            .stage_commit(&*provider)
            .map_err(|e| group_state("cannot commit", e))?;
        check_own_commit(&g.mls)?;
        let commit = bundle.into_commit();
        g.mls
            .merge_pending_commit(&*provider)
            .map_err(|e| group_state("cannot merge", e))?;
        let bytes = to_bytes(&commit)?;
        self.record_handshake(vec![bytes.clone()]);
        Ok(bytes)
    }

    /// Remove members (one commit, also folding stored update proposals).
    pub fn remove_members(
        &mut self,
        gid: &[u8],
        targets: &[Target],
        app_data: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        if targets.is_empty() {
            return Err(Error::InvalidArgument("no members given".into()));
        }
        self.transact(app_data, |c| {
            let g = c.group(gid)?;
            let idx = targets
                .iter()
                .map(|t| c.resolve(g, t))
                .collect::<Result<Vec<_>>>()?;
            c.commit(gid, idx, false)
        })
    }

    /// Commit a path update of our own leaf, folding in every stored update proposal: new
    /// keys for us and (post-compromise security) for each client that proposed an update.
    pub fn self_update(&mut self, gid: &[u8], app_data: Option<&[u8]>) -> Result<Vec<u8>> {
        self.transact(app_data, |c| c.commit(gid, Vec::new(), true))
    }

    /// An Update proposal for our own leaf, for members that may not commit. The committer
    /// folds it into its next commit.
    pub fn propose_update(&mut self, gid: &[u8], app_data: Option<&[u8]>) -> Result<Vec<u8>> {
        self.transact(app_data, |c| {
            let Client {
                provider,
                signer,
                groups,
                ..
            } = c;
            let g = groups.get_mut(gid).ok_or_else(|| {
                Error::GroupState("unknown group (never joined, deleted, or removed)".into())
            })?;
            if g.mls.own_leaf_index().u32() == g.committer {
                return Err(Error::Policy(
                    "the committer updates with self_update, not proposals".into(),
                ));
            }
            let (msg, _) = g
                .mls
                .propose_self_update(&*provider, &*signer, LeafNodeParameters::default())
                .map_err(|e| group_state("cannot propose", e))?;
            let bytes = to_bytes(&msg)?;
            c.record_handshake(vec![bytes.clone()]);
            Ok(bytes)
        })
    }

    fn encrypt_one(&mut self, gid: &[u8], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        if plaintext.len() > self.config.max_message_size {
            return Err(Error::InvalidArgument(format!(
                "plaintext of {} bytes exceeds max_message_size",
                plaintext.len()
            )));
        }
        let Client {
            provider,
            signer,
            groups,
            ..
        } = self;
        let g = groups.get_mut(gid).ok_or_else(|| {
            Error::GroupState("unknown group (never joined, deleted, or removed)".into())
        })?;
        g.mls.set_aad(aad.to_vec());
        let out = g
            .mls
            .create_message(&*provider, &*signer, plaintext)
            .map_err(|e| group_state("cannot encrypt", e))?;
        to_bytes(&out)
    }

    /// Encrypt one application message.
    pub fn encrypt(
        &mut self,
        gid: &[u8],
        plaintext: &[u8],
        aad: &[u8],
        app_data: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        self.transact(app_data, |c| c.encrypt_one(gid, plaintext, aad))
    }

    /// Encrypt several messages with one persist for the whole batch.
    pub fn encrypt_batch(
        &mut self,
        gid: &[u8],
        plaintexts: &[&[u8]],
        aad: &[u8],
        app_data: Option<&[u8]>,
    ) -> Result<Vec<Vec<u8>>> {
        self.transact(app_data, |c| {
            plaintexts
                .iter()
                .map(|p| c.encrypt_one(gid, p, aad))
                .collect()
        })
    }

    /// Forget a group and all its keys.
    pub fn delete_group(&mut self, gid: &[u8], app_data: Option<&[u8]>) -> Result<()> {
        self.transact(app_data, |c| {
            let mut g = c.groups.remove(gid).ok_or_else(|| {
                Error::GroupState("unknown group (never joined, deleted, or removed)".into())
            })?;
            g.mls.delete(c.provider.storage()).map_err(internal)
        })
    }

    /// An exporter secret of the current epoch (RFC 9420 §8.5).
    pub fn export_secret(
        &self,
        gid: &[u8],
        label: &str,
        context: &[u8],
        length: usize,
    ) -> Result<Vec<u8>> {
        guard(|| {
            if length == 0 || length > usize::from(u16::MAX) {
                return Err(Error::InvalidArgument(
                    "length must be between 1 and 65535".into(),
                ));
            }
            self.group(gid)?
                .mls
                .export_secret(self.provider.crypto(), label, context, length)
                .map_err(|e| group_state("cannot export", e))
        })
    }

    /// The group's current epoch.
    pub fn epoch(&self, gid: &[u8]) -> Result<u64> {
        Ok(self.group(gid)?.mls.epoch().as_u64())
    }

    /// Members in leaf order.
    pub fn members(&self, gid: &[u8]) -> Result<Vec<MemberInfo>> {
        guard(|| {
            Ok(self
                .group(gid)?
                .mls
                .members()
                .map(|m| MemberInfo {
                    index: m.index.u32(),
                    identity: identity_of(&m.credential),
                    signature_key: m.signature_key,
                })
                .collect())
        })
    }

    /// Leaf index of the group's committer.
    pub fn committer(&self, gid: &[u8]) -> Result<u32> {
        Ok(self.group(gid)?.committer)
    }

    /// A short code both sides can read aloud: 12 digits from the epoch authenticator, which
    /// every member at the same epoch shares and nobody outside the group can compute.
    pub fn safety_code(&self, gid: &[u8]) -> Result<String> {
        let g = self.group(gid)?;
        let mut h = Sha256::new();
        h.update(SAFETY_LABEL);
        h.update(g.mls.epoch_authenticator().as_slice());
        let d = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&d[..8]);
        let n = u64::from_be_bytes(first) % 1_000_000_000_000;
        let s = format!("{n:012}");
        Ok(format!("{} {} {}", &s[0..4], &s[4..8], &s[8..12]))
    }

    /// Ids of the groups this client is in.
    pub fn groups(&self) -> Vec<Vec<u8>> {
        self.groups.keys().cloned().collect()
    }
}
