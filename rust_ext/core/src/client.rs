//! A client: one signer, its groups and its app data, bound to one persistence sink.
//!
//! Every mutating call runs through [`Client::transact`]: the operation runs on the live state;
//! on success the whole state is serialised and persisted *before* the outputs are returned;
//! on any failure (including a failed persist or a caught panic) the in-memory state is rebuilt
//! from the last durable checkpoint, so a failed call leaves no trace.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::MemoryStorage;
use zeroize::Zeroizing;

use crate::error::{internal, Error, Result};
use crate::provider::{ciphersuite, Config, Provider};
use crate::signer::Signer;
use crate::snapshot::Snapshot;

/// Where snapshots go. The Python layer writes them to the atomic state file; tests may keep
/// them in memory or fail on purpose.
pub trait Persist: Send {
    /// Make `snapshot` durable, replacing the previous one. Return an error text on failure.
    fn persist(&mut self, snapshot: &[u8]) -> std::result::Result<(), String>;
}

/// One group and who may commit to it.
pub(crate) struct Group {
    pub mls: MlsGroup,
    /// Leaf index of the only member allowed to commit: the creator, or for a joiner the
    /// Welcome's sender. Leaf indexes are stable for a member's lifetime in the group.
    pub committer: u32,
}

/// An MLS client bound to one state. Not `Sync`: the binding wraps it in a Mutex.
pub struct Client {
    pub(crate) provider: Provider,
    pub(crate) signer: Signer,
    pub(crate) suite: Ciphersuite,
    pub(crate) suite_id: u16,
    pub(crate) name: Vec<u8>,
    pub(crate) config: Config,
    pub(crate) groups: BTreeMap<Vec<u8>, Group>,
    pub(crate) app_data: Zeroizing<Vec<u8>>,
    pub(crate) handshake_seq: u64,
    pub(crate) last_handshake: Vec<Vec<u8>>,
    checkpoint: Zeroizing<Vec<u8>>,
    persist: Box<dyn Persist>,
    /// Inside [`Client::batch`]: transactions use in-memory savepoints and do not persist.
    pub(crate) in_batch: bool,
}

/// The parts of a client that a snapshot restores.
struct Restored {
    provider: Provider,
    signer: Signer,
    suite: Ciphersuite,
    suite_id: u16,
    name: Vec<u8>,
    groups: BTreeMap<Vec<u8>, Group>,
    app_data: Zeroizing<Vec<u8>>,
    handshake_seq: u64,
    last_handshake: Vec<Vec<u8>>,
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("panic: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("panic: {s}")
    } else {
        "panic".to_string()
    }
}

/// Run `f`, turning a panic into `Error::Internal` so no panic crosses our boundary.
pub(crate) fn guard<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => Err(Error::Internal(panic_text(p.as_ref()))),
    }
}

fn restore(data: &[u8]) -> Result<Restored> {
    let snap = Snapshot::decode(data)?;
    let suite = ciphersuite(snap.ciphersuite).map_err(|e| Error::Storage(e.to_string()))?;
    let storage = MemoryStorage::default();
    {
        let mut values = storage
            .values
            .write()
            .map_err(|_| Error::Internal("storage lock poisoned".into()))?;
        for (k, v) in snap.entries {
            values.insert(k, v);
        }
    }
    let provider = Provider {
        crypto: Default::default(),
        storage,
    };
    let signer = SignatureKeyPair::read(
        &provider.storage,
        &snap.signer_public,
        suite.signature_algorithm(),
    )
    .ok_or_else(|| Error::Storage("state file has no signature key".into()))
    .and_then(Signer::from_key)?;
    let mut groups = BTreeMap::new();
    for (gid, committer) in snap.groups {
        let mls = MlsGroup::load(&provider.storage, &GroupId::from_slice(&gid))
            .map_err(|e| Error::Storage(format!("cannot load a group: {e:?}")))?
            .ok_or_else(|| Error::Storage("state file lists a group it does not hold".into()))?;
        groups.insert(gid, Group { mls, committer });
    }
    Ok(Restored {
        provider,
        signer,
        suite,
        suite_id: snap.ciphersuite,
        name: snap.name,
        groups,
        app_data: snap.app_data,
        handshake_seq: snap.seq,
        last_handshake: snap.last_handshake,
    })
}

impl Client {
    /// A new client with a fresh Ed25519 signer, persisted once before it is returned.
    pub fn create(
        name: &[u8],
        suite_id: u16,
        config: Config,
        persist: Box<dyn Persist>,
    ) -> Result<Client> {
        guard(|| {
            let suite = ciphersuite(suite_id)?;
            if name.is_empty() {
                return Err(Error::InvalidArgument("name must not be empty".into()));
            }
            let provider = Provider::default();
            let signer = Signer::generate(suite.signature_algorithm())?;
            signer.key().store(&provider.storage).map_err(internal)?;
            let mut client = Client {
                provider,
                signer,
                suite,
                suite_id,
                name: name.to_vec(),
                config,
                groups: BTreeMap::new(),
                app_data: Zeroizing::new(Vec::new()),
                handshake_seq: 0,
                last_handshake: Vec::new(),
                checkpoint: Zeroizing::new(Vec::new()),
                persist,
                in_batch: false,
            };
            client.save()?;
            Ok(client)
        })
    }

    /// A client restored from a snapshot previously handed to [`Persist::persist`].
    pub fn open(snapshot: &[u8], config: Config, persist: Box<dyn Persist>) -> Result<Client> {
        guard(|| {
            let r = restore(snapshot)?;
            Ok(Client {
                provider: r.provider,
                signer: r.signer,
                suite: r.suite,
                suite_id: r.suite_id,
                name: r.name,
                config,
                groups: r.groups,
                app_data: r.app_data,
                handshake_seq: r.handshake_seq,
                last_handshake: r.last_handshake,
                checkpoint: Zeroizing::new(snapshot.to_vec()),
                persist,
                in_batch: false,
            })
        })
    }

    fn snapshot(&self) -> Result<Zeroizing<Vec<u8>>> {
        let mut entries: Vec<(Vec<u8>, Vec<u8>)> = {
            let values = self
                .provider
                .storage
                .values
                .read()
                .map_err(|_| Error::Internal("storage lock poisoned".into()))?;
            values.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let snap = Snapshot {
            ciphersuite: self.suite_id,
            signer_public: self.signer.to_public_vec(),
            name: self.name.clone(),
            app_data: self.app_data.clone(),
            seq: self.handshake_seq,
            last_handshake: self.last_handshake.clone(),
            groups: self
                .groups
                .iter()
                .map(|(gid, g)| (gid.clone(), g.committer))
                .collect(),
            entries,
        };
        let bytes = snap.encode();
        // Storage values are secrets too; wipe our copies.
        for (_, v) in snap.entries {
            drop(Zeroizing::new(v));
        }
        bytes
    }

    /// Serialise and persist the current state; it becomes the new checkpoint.
    fn save(&mut self) -> Result<()> {
        let bytes = self.snapshot()?;
        self.persist.persist(&bytes).map_err(Error::Storage)?;
        self.checkpoint = bytes;
        Ok(())
    }

    /// Throw away everything since the last checkpoint.
    fn rollback(&mut self) -> Result<()> {
        let r = restore(&self.checkpoint)?;
        self.provider = r.provider;
        self.signer = r.signer;
        self.groups = r.groups;
        self.app_data = r.app_data;
        self.handshake_seq = r.handshake_seq;
        self.last_handshake = r.last_handshake;
        Ok(())
    }

    /// Restore the last durable state, reporting a failure to do so as a bug.
    pub(crate) fn rollback_to_checkpoint(&mut self) -> Result<()> {
        guard(|| self.rollback()).map_err(|e| {
            // The checkpoint was written by us and verified when read; failing to restore it
            // is a bug. Report it rather than continue on half-applied state.
            Error::Internal(format!("rollback failed: {e}"))
        })
    }

    /// Run a mutating operation as a transaction (see the module docs). `app_data`, when
    /// given, replaces the stored app data in the same snapshot as the operation's effects.
    /// Inside a batch the operation runs against an in-memory savepoint instead, and the
    /// batch persists once at its end (`batch.rs`).
    pub(crate) fn transact<T>(
        &mut self,
        app_data: Option<&[u8]>,
        f: impl FnOnce(&mut Client) -> Result<T>,
    ) -> Result<T> {
        if self.in_batch {
            let savepoint = self.savepoint()?;
            let result = guard(|| {
                let out = f(self)?;
                if let Some(a) = app_data {
                    self.app_data = Zeroizing::new(a.to_vec());
                }
                Ok(out)
            });
            if result.is_err() {
                guard(|| self.restore_savepoint(savepoint))
                    .map_err(|e| Error::Internal(format!("rollback failed: {e}")))?;
            }
            return result;
        }
        let result = guard(|| {
            let out = f(self)?;
            if let Some(a) = app_data {
                self.app_data = Zeroizing::new(a.to_vec());
            }
            self.save()?;
            Ok(out)
        });
        if result.is_err() {
            self.rollback_to_checkpoint()?;
        }
        result
    }

    /// Remember the handshake messages this transaction emits (commit, Welcome, proposal),
    /// so a caller that crashes before queueing them can find them again after a restart.
    pub(crate) fn record_handshake(&mut self, messages: Vec<Vec<u8>>) {
        self.handshake_seq += 1;
        self.last_handshake = messages;
    }

    /// The name (MLS BasicCredential identity) of this client.
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// This client's Ed25519 public signature key.
    pub fn signature_key(&self) -> Vec<u8> {
        self.signer.to_public_vec()
    }

    /// The ciphersuite id (0x0001 or 0x0003).
    pub fn ciphersuite(&self) -> u16 {
        self.suite_id
    }

    /// The local settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Opaque application bytes stored in the same snapshot as the MLS state.
    pub fn app_data(&self) -> &[u8] {
        &self.app_data
    }

    /// Replace the app data (one transaction).
    pub fn set_app_data(&mut self, data: &[u8]) -> Result<()> {
        self.transact(Some(data), |_| Ok(()))
    }

    /// Sequence number and messages of the last handshake this client emitted.
    pub fn last_handshake(&self) -> (u64, Vec<Vec<u8>>) {
        (self.handshake_seq, self.last_handshake.clone())
    }

    /// The bytes of the last durable snapshot (for tests and diagnostics).
    pub fn checkpoint(&self) -> &[u8] {
        &self.checkpoint
    }
}
