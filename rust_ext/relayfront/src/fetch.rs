//! Message downloads the front serves itself: `GET /v1/mailboxes/{id}/messages/{seq}`.
//!
//! The lookup is the relay's (token, scope, the mailbox's owner, the message not expired) on
//! a read-only connection; in WAL mode it sees every committed write and never waits for a
//! writer. A message that is not found goes to the relay, which answers 404 as it does.
//! Inline bodies are answered in one write; blob files by `sendfile` from the page cache, as
//! much as the socket takes at a time.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::auth;
use crate::error::Error;
use crate::request::Fetch;
use crate::settings::Settings;

/// A blob up to this size is read and sent with its header in one write.
pub const SMALL_FILE: u64 = 256 * 1024;

pub enum Body {
    Inline(Vec<u8>),
    File(File),
}

pub struct Found {
    pub size: u64,
    pub body: Body,
}

pub struct Reader {
    conn: Mutex<Connection>,
    blobs: PathBuf,
}

impl Reader {
    pub fn open(settings: &Settings) -> Result<Self, Error> {
        let conn = Connection::open_with_flags(
            &settings.database,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Reader {
            conn: Mutex::new(conn),
            blobs: settings.blobs.clone(),
        })
    }

    /// The message, if the request may have it and it is there; None: the relay's to answer.
    pub fn find(&self, f: &Fetch, now: f64) -> Option<Found> {
        let conn = self.conn.lock().ok()?;
        let who = auth::principal(&conn, &f.token_id, &f.secret, &f.mailbox, now).ok()??;
        let owner: String = conn
            .prepare_cached("SELECT account FROM mailboxes WHERE id = ?1")
            .ok()?
            .query_row([&f.mailbox], |r| r.get(0))
            .optional()
            .ok()??;
        if owner != who.account {
            return None;
        }
        let (size, body, blob): (i64, Option<Vec<u8>>, Option<String>) = conn
            .prepare_cached(
                "SELECT size, body, blob FROM messages WHERE mailbox = ?1 AND seq = ?2 \
                 AND expires_at > ?3",
            )
            .ok()?
            .query_row(params![f.mailbox, f.seq, now], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .ok()??;
        let size = u64::try_from(size).ok()?;
        match (body, blob) {
            (Some(body), _) if body.len() as u64 == size => Some(Found {
                size,
                body: Body::Inline(body),
            }),
            (None, Some(name)) => {
                let file = File::open(blob_path(&self.blobs, &name)?).ok()?;
                // Gone or cut short since: the relay answers (404, or its own error).
                (file.metadata().ok()?.len() == size).then_some(Found {
                    size,
                    body: Body::File(file),
                })
            }
            _ => None,
        }
    }
}

/// `blobs/ab/abcd...`: names are 32 lowercase hex characters (`blobs.py`).
fn blob_path(root: &Path, name: &str) -> Option<PathBuf> {
    let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if name.len() != 32 || !name.bytes().all(hex) {
        return None;
    }
    Some(root.join(&name[..2]).join(name))
}
