//! The front's one error type.

use std::fmt;

#[derive(Debug)]
pub enum Error {
    Io(std::io::Error),
    Sqlite(rusqlite::Error),
    Os(nix::Error),
    /// Settings that cannot work (a wrong schema version, an unknown durability...).
    Settings(String),
    /// The relay process that started this front is gone.
    ParentGone,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Sqlite(e) => write!(f, "database error: {e}"),
            Error::Os(e) => write!(f, "system call failed: {e}"),
            Error::Settings(e) => write!(f, "bad settings: {e}"),
            Error::ParentGone => write!(f, "the relay process that started this front is gone"),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Sqlite(e)
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::Os(e)
    }
}
