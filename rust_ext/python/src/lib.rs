//! `privastead._native`: the PyO3 face of the MLS core.
//!
//! This layer only converts types, maps errors to `privastead.errors`, and releases the GIL
//! (the client's Mutex is taken *inside* the detached closure, so a thread waiting for the
//! lock never holds the GIL). Users import `privastead.crypto`, never this module.

mod pake;

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use privastead_mls::{self as core, Client, Config, Error, Persist, Target};
use privastead_statefile::{Error as FileError, StateFile};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::PyBytes;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pyo3::import_exception!(privastead.errors, CryptoError);
pyo3::import_exception!(privastead.errors, DecodeError);
pyo3::import_exception!(privastead.errors, DecryptionError);
pyo3::import_exception!(privastead.errors, WrongEpochError);
pyo3::import_exception!(privastead.errors, StaleMessageError);
pyo3::import_exception!(privastead.errors, DuplicateMessageError);
pyo3::import_exception!(privastead.errors, PolicyError);
pyo3::import_exception!(privastead.errors, GroupStateError);
pyo3::import_exception!(privastead.errors, JoinError);
pyo3::import_exception!(privastead.errors, StorageError);
pyo3::import_exception!(privastead.errors, StateLockedError);

fn core_err(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::Decode(_) => DecodeError::new_err(msg),
        // No argument: the Python class supplies its one fixed text.
        Error::Decryption => DecryptionError::new_err(()),
        Error::WrongEpoch {
            message_epoch,
            group_epoch,
        } => WrongEpochError::new_err((msg, message_epoch, group_epoch)),
        Error::Stale(_) => StaleMessageError::new_err(msg),
        Error::Duplicate => DuplicateMessageError::new_err(msg),
        Error::Policy(_) => PolicyError::new_err(msg),
        Error::GroupState(_) => GroupStateError::new_err(msg),
        Error::Join(_) => JoinError::new_err(msg),
        Error::Storage(_) => StorageError::new_err(msg),
        Error::InvalidArgument(_) => PyValueError::new_err(msg),
        Error::Internal(_) => CryptoError::new_err(msg),
    }
}

fn file_err(e: FileError) -> PyErr {
    match e {
        FileError::Locked(_) => StateLockedError::new_err(e.to_string()),
        _ => StorageError::new_err(e.to_string()),
    }
}

/// Writes each snapshot to the atomic state file.
struct FilePersist(StateFile);

impl Persist for FilePersist {
    fn persist(&mut self, snapshot: &[u8]) -> Result<(), String> {
        self.0.write(snapshot).map_err(|e| e.to_string())
    }
}

fn config(max_message_size: usize, max_past_epochs: usize) -> Config {
    Config {
        max_message_size,
        max_past_epochs,
        ..Config::default()
    }
}

/// An MLS client bound to one locked state file. Thread-safe; calls are serialised.
#[pyclass(frozen, module = "privastead._native")]
struct NativeClient {
    inner: Mutex<Option<Client>>,
}

type Received = (
    String,
    Vec<u8>,
    Vec<u8>,
    u32,
    u64,
    Vec<u8>,
    Option<(Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<Vec<u8>>, bool)>,
);

/// (leaf index, identity, signature key)
type MemberRow = (u32, Vec<u8>, Vec<u8>);

fn received(r: core::Received) -> Received {
    (
        kind_name(r.kind).to_string(),
        r.data,
        r.sender,
        r.sender_index,
        r.epoch,
        r.aad,
        r.commit
            .map(|i| (i.added, i.removed, i.updated, i.removed_self)),
    )
}

fn kind_name(k: core::Kind) -> &'static str {
    match k {
        core::Kind::Application => "application",
        core::Kind::Commit => "commit",
        core::Kind::Proposal => "proposal",
    }
}

impl NativeClient {
    fn locked(&self) -> PyResult<MutexGuard<'_, Option<Client>>> {
        self.inner
            .lock()
            .map_err(|_| CryptoError::new_err("client lock poisoned by an earlier failure"))
    }

    /// Run `f` on the client with the GIL released.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Client) -> Result<T, Error> + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            let mut guard = self.locked()?;
            let client = guard
                .as_mut()
                .ok_or_else(|| GroupStateError::new_err("the identity is closed"))?;
            f(client).map_err(core_err)
        })
    }
}

fn bytes_out<'py>(py: Python<'py>, v: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, v)
}

#[pymethods]
impl NativeClient {
    /// Create a new state file at `path` (locked for this process) with a fresh signer.
    #[staticmethod]
    fn create(
        py: Python<'_>,
        path: PathBuf,
        name: &[u8],
        ciphersuite: u16,
        max_message_size: usize,
        max_past_epochs: usize,
    ) -> PyResult<NativeClient> {
        py.detach(|| {
            let file = StateFile::create(&path).map_err(file_err)?;
            let client = Client::create(
                name,
                ciphersuite,
                config(max_message_size, max_past_epochs),
                Box::new(FilePersist(file)),
            )
            .map_err(core_err)?;
            Ok(NativeClient {
                inner: Mutex::new(Some(client)),
            })
        })
    }

    /// Open (and lock) an existing state file.
    #[staticmethod]
    fn open(
        py: Python<'_>,
        path: PathBuf,
        max_message_size: usize,
        max_past_epochs: usize,
    ) -> PyResult<NativeClient> {
        py.detach(|| {
            let (file, data) = StateFile::open(&path).map_err(file_err)?;
            let data = zeroize::Zeroizing::new(data);
            let client = Client::open(
                &data,
                config(max_message_size, max_past_epochs),
                Box::new(FilePersist(file)),
            )
            .map_err(core_err)?;
            Ok(NativeClient {
                inner: Mutex::new(Some(client)),
            })
        })
    }

    /// Release the state file and its lock. Further calls raise GroupStateError.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| {
            self.locked()?.take();
            Ok(())
        })
    }

    #[getter]
    fn closed(&self) -> PyResult<bool> {
        Ok(self.locked()?.is_none())
    }

    #[getter]
    fn name<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let v = self.with(py, |c| Ok(c.name().to_vec()))?;
        Ok(bytes_out(py, &v))
    }

    #[getter]
    fn signature_key<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let v = self.with(py, |c| Ok(c.signature_key()))?;
        Ok(bytes_out(py, &v))
    }

    #[getter]
    fn ciphersuite(&self, py: Python<'_>) -> PyResult<u16> {
        self.with(py, |c| Ok(c.ciphersuite()))
    }

    #[getter]
    fn max_message_size(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |c| Ok(c.config().max_message_size))
    }

    #[getter]
    fn app_data<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let v = self.with(py, |c| Ok(c.app_data().to_vec()))?;
        Ok(bytes_out(py, &v))
    }

    fn set_app_data(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        self.with(py, |c| c.set_app_data(data))
    }

    fn last_handshake(&self, py: Python<'_>) -> PyResult<(u64, Vec<Vec<u8>>)> {
        self.with(py, |c| Ok(c.last_handshake()))
    }

    #[pyo3(signature = (app_data=None))]
    fn key_package<'py>(
        &self,
        py: Python<'py>,
        app_data: Option<&[u8]>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let v = self.with(py, |c| c.key_package(app_data))?;
        Ok(bytes_out(py, &v))
    }

    #[pyo3(signature = (app_data=None))]
    fn create_group<'py>(
        &self,
        py: Python<'py>,
        app_data: Option<&[u8]>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let v = self.with(py, |c| c.create_group(app_data))?;
        Ok(bytes_out(py, &v))
    }

    #[pyo3(signature = (group_id, key_packages, psk=None, app_data=None))]
    fn add_members(
        &self,
        py: Python<'_>,
        group_id: &[u8],
        key_packages: Vec<PyBackedBytes>,
        psk: Option<&[u8]>,
        app_data: Option<&[u8]>,
    ) -> PyResult<(Vec<u8>, Vec<u8>)> {
        let kps: Vec<&[u8]> = key_packages.iter().map(|k| &k[..]).collect();
        let out = self.with(py, |c| c.add_members(group_id, &kps, psk, app_data))?;
        Ok((out.commit, out.welcome))
    }

    #[pyo3(signature = (welcome, inviter_identity=None, inviter_signature_key=None, psk=None, app_data=None))]
    fn join<'py>(
        &self,
        py: Python<'py>,
        welcome: &[u8],
        inviter_identity: Option<&[u8]>,
        inviter_signature_key: Option<&[u8]>,
        psk: Option<&[u8]>,
        app_data: Option<&[u8]>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let v = self.with(py, |c| {
            c.join(
                welcome,
                inviter_identity,
                inviter_signature_key,
                psk,
                app_data,
            )
        })?;
        Ok(bytes_out(py, &v))
    }

    #[pyo3(signature = (group_id, identities, indexes, app_data=None))]
    fn remove_members<'py>(
        &self,
        py: Python<'py>,
        group_id: &[u8],
        identities: Vec<PyBackedBytes>,
        indexes: Vec<u32>,
        app_data: Option<&[u8]>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let targets: Vec<Target> = identities
            .iter()
            .map(|i| Target::Identity(i.to_vec()))
            .chain(indexes.into_iter().map(Target::Index))
            .collect();
        let v = self.with(py, |c| c.remove_members(group_id, &targets, app_data))?;
        Ok(bytes_out(py, &v))
    }

    #[pyo3(signature = (group_id, app_data=None))]
    fn self_update<'py>(
        &self,
        py: Python<'py>,
        group_id: &[u8],
        app_data: Option<&[u8]>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let v = self.with(py, |c| c.self_update(group_id, app_data))?;
        Ok(bytes_out(py, &v))
    }

    #[pyo3(signature = (group_id, app_data=None))]
    fn propose_update<'py>(
        &self,
        py: Python<'py>,
        group_id: &[u8],
        app_data: Option<&[u8]>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let v = self.with(py, |c| c.propose_update(group_id, app_data))?;
        Ok(bytes_out(py, &v))
    }

    #[pyo3(signature = (group_id, message, app_data=None))]
    fn process(
        &self,
        py: Python<'_>,
        group_id: &[u8],
        message: &[u8],
        app_data: Option<&[u8]>,
    ) -> PyResult<Received> {
        let r = self.with(py, |c| c.process(group_id, message, app_data))?;
        Ok(received(r))
    }

    /// One result per message: the `process` tuple, or the exception `process` would raise.
    #[pyo3(signature = (group_id, messages, app_data=None))]
    fn process_batch(
        &self,
        py: Python<'_>,
        group_id: &[u8],
        messages: Vec<PyBackedBytes>,
        app_data: Option<&[u8]>,
    ) -> PyResult<Vec<Py<PyAny>>> {
        let msgs: Vec<&[u8]> = messages.iter().map(|m| &m[..]).collect();
        let results = self.with(py, |c| c.process_batch(group_id, &msgs, app_data))?;
        results
            .into_iter()
            .map(|r| match r {
                Ok(r) => Ok(received(r).into_pyobject(py)?.into_any().unbind()),
                Err(e) => Ok(core_err(e).into_value(py).into_any()),
            })
            .collect()
    }

    #[pyo3(signature = (group_id, plaintext, aad, app_data=None))]
    fn encrypt<'py>(
        &self,
        py: Python<'py>,
        group_id: &[u8],
        plaintext: &[u8],
        aad: &[u8],
        app_data: Option<&[u8]>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let v = self.with(py, |c| c.encrypt(group_id, plaintext, aad, app_data))?;
        Ok(bytes_out(py, &v))
    }

    #[pyo3(signature = (group_id, plaintexts, aad, app_data=None))]
    fn encrypt_batch(
        &self,
        py: Python<'_>,
        group_id: &[u8],
        plaintexts: Vec<PyBackedBytes>,
        aad: &[u8],
        app_data: Option<&[u8]>,
    ) -> PyResult<Vec<Vec<u8>>> {
        let pts: Vec<&[u8]> = plaintexts.iter().map(|p| &p[..]).collect();
        self.with(py, |c| c.encrypt_batch(group_id, &pts, aad, app_data))
    }

    fn export_secret<'py>(
        &self,
        py: Python<'py>,
        group_id: &[u8],
        label: &str,
        context: &[u8],
        length: usize,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let v = self.with(py, |c| c.export_secret(group_id, label, context, length))?;
        Ok(bytes_out(py, &v))
    }

    fn epoch(&self, py: Python<'_>, group_id: &[u8]) -> PyResult<u64> {
        self.with(py, |c| c.epoch(group_id))
    }

    fn committer(&self, py: Python<'_>, group_id: &[u8]) -> PyResult<u32> {
        self.with(py, |c| c.committer(group_id))
    }

    fn members(&self, py: Python<'_>, group_id: &[u8]) -> PyResult<Vec<MemberRow>> {
        let m = self.with(py, |c| c.members(group_id))?;
        Ok(m.into_iter()
            .map(|m| (m.index, m.identity, m.signature_key))
            .collect())
    }

    fn safety_code(&self, py: Python<'_>, group_id: &[u8]) -> PyResult<String> {
        self.with(py, |c| c.safety_code(group_id))
    }

    fn groups(&self, py: Python<'_>) -> PyResult<Vec<Vec<u8>>> {
        self.with(py, |c| Ok(c.groups()))
    }

    #[pyo3(signature = (group_id, app_data=None))]
    fn delete_group(
        &self,
        py: Python<'_>,
        group_id: &[u8],
        app_data: Option<&[u8]>,
    ) -> PyResult<()> {
        self.with(py, |c| c.delete_group(group_id, app_data))
    }
}

#[pymodule]
mod _native {
    use super::*;

    #[pymodule_export]
    use super::NativeClient;

    #[pymodule_export]
    use super::pake::{
        pairing_confirmation, pairing_open, pairing_seal, pairing_verify_confirmation, NativePake,
    };

    /// Run the relay's native front until the relay asks it to stop (or is gone); blocks,
    /// without the GIL. ``settings_json``: the front's settings (see the relay's
    /// ``front`` module). Raises ValueError for settings that cannot work, OSError else.
    #[pyfunction]
    fn relay_front(py: Python<'_>, settings_json: &str) -> PyResult<()> {
        let settings: privastead_relayfront::Settings = serde_json::from_str(settings_json)
            .map_err(|e| PyValueError::new_err(format!("relay front settings: {e}")))?;
        py.detach(|| privastead_relayfront::run(settings))
            .map_err(|e| match e {
                privastead_relayfront::Error::Settings(_) => PyValueError::new_err(e.to_string()),
                _ => pyo3::exceptions::PyOSError::new_err(e.to_string()),
            })
    }

    /// Version of the Rust core compiled into this module.
    #[pyfunction]
    fn core_version() -> &'static str {
        privastead_mls::CORE_VERSION
    }

    /// Version of OpenMLS the core is built on (recorded in state files).
    #[pyfunction]
    fn openmls_version() -> &'static str {
        privastead_mls::OPENMLS_VERSION
    }

    /// The SHA-512 implementation Ed25519 hashes messages with in this process: the system's
    /// OpenSSL 3 where it loads and passes its self-test, AWS-LC otherwise (and why).
    #[pyfunction]
    fn sha512_backend() -> &'static str {
        privastead_mls::sha512_backend()
    }

    /// Group id, epoch and content type of a message, readable without keys.
    #[pyfunction]
    fn peek(
        py: Python<'_>,
        message: &[u8],
        max_message_size: usize,
    ) -> PyResult<(Vec<u8>, u64, String)> {
        let p = py
            .detach(|| privastead_mls::peek(message, max_message_size))
            .map_err(core_err)?;
        Ok((p.group_id, p.epoch, kind_name(p.kind).to_string()))
    }
}
