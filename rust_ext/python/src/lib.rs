//! `privastead._native`: the PyO3 face of the MLS core.
use pyo3::prelude::*;

#[pymodule]
mod _native {
    use pyo3::prelude::*;

    /// Version of the Rust core compiled into this module.
    #[pyfunction]
    fn core_version() -> &'static str {
        privastead_mls::CORE_VERSION
    }
}
