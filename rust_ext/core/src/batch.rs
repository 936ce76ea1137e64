//! Batches: several operations, one durable write.
//!
//! A durable write (snapshot + fdatasync) is a fixed cost per call that small messages feel
//! most. Inside [`Client::batch`] every operation still runs as its own transaction against
//! an in-memory savepoint: one that fails is undone completely (ratchet steps, consumed keys)
//! and reported, the others stand. Nothing is persisted until the batch ends; then the whole
//! state is written once, and only after that write are any outputs returned. If the write
//! fails, the whole batch is undone back to the last durable state. So the rule of the single
//! calls holds for the batch as a whole: persist before output, roll back on error.

use std::collections::{BTreeMap, HashMap};

use openmls::prelude::{GroupId, MlsGroup};
use zeroize::Zeroizing;

use crate::client::{guard, Client, Group};
use crate::error::{Error, Result};
use crate::policy::Received;

/// Everything an operation can change, copied in memory (no encoding, no I/O).
pub(crate) struct Savepoint {
    entries: Vec<(Vec<u8>, Zeroizing<Vec<u8>>)>,
    committers: Vec<(Vec<u8>, u32)>,
    app_data: Zeroizing<Vec<u8>>,
    handshake_seq: u64,
    last_handshake: Vec<Vec<u8>>,
}

impl Client {
    pub(crate) fn savepoint(&self) -> Result<Savepoint> {
        let values = self
            .provider
            .storage
            .values
            .read()
            .map_err(|_| Error::Internal("storage lock poisoned".into()))?;
        Ok(Savepoint {
            entries: values
                .iter()
                .map(|(k, v)| (k.clone(), Zeroizing::new(v.clone())))
                .collect(),
            committers: self
                .groups
                .iter()
                .map(|(gid, g)| (gid.clone(), g.committer))
                .collect(),
            app_data: self.app_data.clone(),
            handshake_seq: self.handshake_seq,
            last_handshake: self.last_handshake.clone(),
        })
    }

    /// Put the state back exactly as `sp` saw it (groups are reloaded from the restored
    /// storage, which is where OpenMLS keeps everything an operation changes).
    pub(crate) fn restore_savepoint(&mut self, sp: Savepoint) -> Result<()> {
        {
            let mut values = self
                .provider
                .storage
                .values
                .write()
                .map_err(|_| Error::Internal("storage lock poisoned".into()))?;
            let mut restored = HashMap::with_capacity(sp.entries.len());
            for (k, mut v) in sp.entries {
                restored.insert(k, std::mem::take(&mut *v));
            }
            *values = restored;
        }
        let mut groups = BTreeMap::new();
        for (gid, committer) in sp.committers {
            let mls = MlsGroup::load(&self.provider.storage, &GroupId::from_slice(&gid))
                .map_err(|e| Error::Internal(format!("cannot reload a group: {e:?}")))?
                .ok_or_else(|| Error::Internal("a group vanished from storage".into()))?;
            groups.insert(gid, Group { mls, committer });
        }
        self.groups = groups;
        self.app_data = sp.app_data;
        self.handshake_seq = sp.handshake_seq;
        self.last_handshake = sp.last_handshake;
        Ok(())
    }

    /// Run `f` as a batch (see the module docs). Operations called inside `f` run against
    /// savepoints and do not persist; the batch persists once, with `app_data` if given.
    pub(crate) fn batch<T>(
        &mut self,
        app_data: Option<&[u8]>,
        f: impl FnOnce(&mut Client) -> Result<T>,
    ) -> Result<T> {
        if self.in_batch {
            return Err(Error::InvalidArgument("batches do not nest".into()));
        }
        self.in_batch = true;
        let out = guard(|| f(self));
        self.in_batch = false;
        match out {
            Ok(out) => self.transact(app_data, |_| Ok(out)),
            Err(e) => {
                self.rollback_to_checkpoint()?;
                Err(e)
            }
        }
    }

    /// Decrypt and apply several messages of one group with a single durable write. Each
    /// message gets its own result, exactly what [`Client::process`] would have returned; a
    /// refused one leaves no trace. `Err` only if the batch could not be persisted, in which
    /// case nothing of it happened.
    pub fn process_batch(
        &mut self,
        gid: &[u8],
        messages: &[&[u8]],
        app_data: Option<&[u8]>,
    ) -> Result<Vec<Result<Received>>> {
        self.batch(app_data, |c| {
            Ok(messages.iter().map(|m| c.process(gid, m, None)).collect())
        })
    }
}
