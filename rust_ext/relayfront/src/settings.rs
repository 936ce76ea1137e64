//! What the Python relay tells its front (JSON, from the relay's configuration).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Address and port to listen on (the relay's own; the front binds it, the relay does not).
    pub host: String,
    pub port: u16,
    /// The relay's control socket (SOCK_SEQPACKET): handed-over connections and stored
    /// messages go there; a stop request comes from there.
    pub control: PathBuf,
    /// The relay's HTTP socket (Unix): every request the front does not serve goes there.
    pub backend: PathBuf,
    /// pid of the relay process; the front exits when it is gone.
    pub parent_pid: i32,
    /// The relay's SQLite database, the schema version it must be at, and the lock file both
    /// writers hold around a transaction.
    pub database: PathBuf,
    pub schema_version: i64,
    pub write_lock: PathBuf,
    /// The blob files' directory (`blobs/ab/abcd...`).
    pub blobs: PathBuf,
    /// SQLite `synchronous=` ("full" or "normal"), as the relay's own writer.
    pub durability: String,
    /// Largest body the front stores itself (the rest goes to the relay).
    pub body_max: usize,
    /// Largest wake-up payload.
    pub max_push_payload: usize,
    pub default_ttl_seconds: i64,
    pub account_quota_bytes: i64,
    /// Bytes charged to the quota per message on top of its size.
    pub message_overhead: i64,
    /// Keep-alive: a connection with no request for this long is closed.
    pub idle_timeout: f64,
    /// A request still incomplete after this long is forwarded to the relay as it is (whose
    /// own timeouts then apply).
    pub handover_after: f64,
    /// Graceful stop: in-flight requests get this long.
    pub shutdown_timeout: f64,
}

impl Settings {
    pub fn idle(&self) -> Duration {
        secs(self.idle_timeout)
    }

    pub fn handover(&self) -> Duration {
        secs(self.handover_after)
    }

    pub fn shutdown(&self) -> Duration {
        secs(self.shutdown_timeout)
    }
}

fn secs(value: f64) -> Duration {
    Duration::try_from_secs_f64(value.max(0.0)).unwrap_or(Duration::from_secs(3600))
}
