//! The relay's native front: a process of its own that owns the relay's listening socket.
//!
//! The relay is Python (aiohttp) and stays the authority on every rule. This front exists for
//! one request, the most frequent one by far: a single small upload. It keeps every client
//! connection for its whole life and *peeks* at each request. When the request is such an
//! upload, complete, well formed and within its token's rights, the front checks the token and
//! appends the message in its own group-commit writer, answers `201`, and tells the Python
//! relay what it stored (which then notifies subscribers and sends wake-ups). Every other
//! request, and any at the first doubt, it forwards byte for byte to the Python relay over the
//! connection's own Unix-socket connection, and copies the answer back, so the relay's answer
//! is the answer; an upgrade (a WebSocket) becomes a two-way copy.
//!
//! Why a process and not a thread in the relay: the front writes to the relay's SQLite
//! database with its own (bundled) SQLite. Two SQLite libraries in one process do not see
//! each other's POSIX locks, which can corrupt a database; in two processes they lock each
//! other as SQLite intends. The two writers also take one `flock` around each transaction so
//! neither waits in SQLite's sleep-and-retry busy handler.

mod auth;
mod connection;
mod control;
mod date;
mod error;
mod fetch;
mod frame;
mod request;
mod saturation;
mod server;
mod settings;
mod writer;

pub use error::Error;
pub use request::{examine, Fetch, Peeked, Upload};
pub use settings::Settings;

/// Serve until the parent asks to stop (graceful) or goes away (at once). Blocks.
pub fn run(settings: Settings) -> Result<(), Error> {
    server::run(settings)
}
