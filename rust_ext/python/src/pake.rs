//! The short-code pairing primitives for Python: the SPAKE2 exchange (used once), key
//! confirmation tags and the sealed pairing payload. Types are converted, errors mapped.

use std::sync::Mutex;

use privastead_mls::{self as core, Pake, Side};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::core_err;

fn side(name: &str) -> PyResult<Side> {
    Side::parse(name).map_err(core_err)
}

/// One side of one SPAKE2 exchange. `finish` works once; later calls raise GroupStateError.
#[pyclass(frozen, module = "privastead._native")]
pub struct NativePake {
    inner: Mutex<Pake>,
    outbound: Vec<u8>,
}

#[pymethods]
impl NativePake {
    #[new]
    fn new(side_name: &str, code: &[u8], context: &[u8]) -> PyResult<Self> {
        let (pake, outbound) = Pake::start(side(side_name)?, code, context).map_err(core_err)?;
        Ok(NativePake {
            inner: Mutex::new(pake),
            outbound,
        })
    }

    /// The message to send to the other side.
    fn outbound<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.outbound)
    }

    /// The shared 32-byte key from the other side's message (equal on both sides only when
    /// both used the same code; key confirmation tells).
    fn finish<'py>(&self, py: Python<'py>, inbound: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let mut pake = self
            .inner
            .lock()
            .map_err(|_| PyRuntimeError::new_err("pairing exchange poisoned by a panic"))?;
        let key = pake.finish(inbound).map_err(core_err)?;
        Ok(PyBytes::new(py, key.as_slice()))
    }
}

#[pyfunction]
pub fn pairing_confirmation<'py>(
    py: Python<'py>,
    key: &[u8],
    transcript: &[u8],
    side_name: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let tag = core::confirmation(key, transcript, side(side_name)?).map_err(core_err)?;
    Ok(PyBytes::new(py, &tag))
}

#[pyfunction]
pub fn pairing_verify_confirmation(
    key: &[u8],
    transcript: &[u8],
    side_name: &str,
    tag: &[u8],
) -> PyResult<()> {
    core::verify_confirmation(key, transcript, side(side_name)?, tag).map_err(core_err)
}

#[pyfunction]
pub fn pairing_seal<'py>(
    py: Python<'py>,
    key: &[u8],
    transcript: &[u8],
    side_name: &str,
    aad: &[u8],
    plaintext: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let out = core::seal_pairing_payload(key, transcript, side(side_name)?, aad, plaintext)
        .map_err(core_err)?;
    Ok(PyBytes::new(py, &out))
}

#[pyfunction]
pub fn pairing_open<'py>(
    py: Python<'py>,
    key: &[u8],
    transcript: &[u8],
    side_name: &str,
    aad: &[u8],
    sealed: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let out = core::open_pairing_payload(key, transcript, side(side_name)?, aad, sealed)
        .map_err(core_err)?;
    Ok(PyBytes::new(py, &out))
}
