//! Privastead's MLS core: group lifecycle over OpenMLS, state as bytes, no I/O.

/// Version of this core, recorded in state snapshots.
pub const CORE_VERSION: &str = env!("CARGO_PKG_VERSION");
