//! The front's database writer: one thread, one connection, group commit.
//!
//! Each batch is one transaction (one WAL fsync for every upload waiting at that moment).
//! The statements are the relay's own append (token lookup, receipt check, seq, quota,
//! message, receipt), except that every case the relay would answer with anything but
//! "stored" (a token that does not check out, a scope or quota refusal, an eviction, a
//! duplicate id) is reported as `Outcome::NotMine`: the connection then goes to the relay,
//! which decides. Those cases are all decided by reads before an upload writes anything, so
//! an upload needs no savepoint of its own (a savepoint copies every page it is about to
//! change into a sub-journal, which for a batch spills to a temporary file); a statement
//! that fails after the first write fails the whole batch, and every uploader of it goes to
//! the relay.

use std::fs::File;

use nix::fcntl::{Flock, FlockArg};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::auth;
use crate::control::Control;
use crate::date;
use crate::error::Error;
use crate::request::Upload;
use crate::saturation;
use crate::settings::Settings;

const MAX_BATCH: usize = 512;
const GATHER_UNTIL: usize = 64;
const GATHER_FOR: std::time::Duration = std::time::Duration::from_micros(1000);
const GATHER_STEP: std::time::Duration = std::time::Duration::from_micros(100);
/// Records per control message (each message is one packet).
const PER_PACKET: usize = 64;

pub struct Job {
    pub upload: Upload,
    pub reply: oneshot::Sender<Outcome>,
}

/// A batch's answers, handed to the connections' thread in one piece: one wake-up of that
/// thread per batch, where answering each uploader from here would write its event
/// descriptor once per upload.
pub type Answers = Vec<(oneshot::Sender<Outcome>, Outcome)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Stored(i64),
    NotMine,
}

/// What the relay needs to know of a stored message (to notify and wake devices).
#[derive(Debug, Serialize)]
pub struct Record {
    pub account: String,
    pub mailbox: String,
    pub seq: i64,
    pub size: usize,
    /// The uploader's device id (not woken by its own message).
    pub device: String,
    /// The wake-up payload, base64, and the devices registered on the mailbox.
    pub push: Option<String>,
    pub devices: Vec<String>,
}

pub struct Writer {
    conn: Connection,
    lock_file: File,
    settings: Settings,
    saturation: saturation::Shared,
}

impl Writer {
    pub fn open(settings: &Settings, saturation: saturation::Shared) -> Result<Self, Error> {
        let conn = Connection::open(&settings.database)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        let synchronous = match settings.durability.as_str() {
            "full" => "FULL",
            "normal" => "NORMAL",
            other => return Err(Error::Settings(format!("unknown durability {other:?}"))),
        };
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", synchronous)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // The relay checkpoints the WAL on its own thread; a commit here must never do it.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version != settings.schema_version {
            return Err(Error::Settings(format!(
                "the database is at schema version {version}, the front knows {}",
                settings.schema_version
            )));
        }
        let lock_file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&settings.write_lock)?;
        Ok(Writer {
            conn,
            lock_file,
            settings: settings.clone(),
            saturation,
        })
    }

    /// Run batches until every sender is gone (the front is stopping).
    pub fn work(
        mut self,
        mut jobs: mpsc::Receiver<Job>,
        answers: mpsc::UnboundedSender<Answers>,
        control: Control,
    ) -> Result<(), Error> {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut last = 0;
        while let Some(first) = jobs.blocking_recv() {
            batch.push(first);
            let gathering = std::time::Instant::now();
            loop {
                while batch.len() < MAX_BATCH {
                    match jobs.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                // Commit delay: a transaction's fixed cost (WAL frames of every page it
                // touched, the fsync) is most of an upload's when batches are small, so while
                // uploads come from several connections (the last batch had more than one),
                // wait a moment for more to join.
                if last < 2 || batch.len() >= GATHER_UNTIL || gathering.elapsed() >= GATHER_FOR {
                    break;
                }
                std::thread::sleep(GATHER_STEP);
            }
            last = batch.len();
            let (outcomes, records) = self.commit(&batch)?;
            // Told before the uploaders get their answer, as the relay itself does: sent from
            // here, not queued for the control thread, so that a client that asks right after
            // its answer (a listing, the metrics) reaches a relay that knows of the message.
            for chunk in records.chunks(PER_PACKET) {
                control.stored(chunk)?;
            }
            let answered = batch.drain(..).map(|job| job.reply).zip(outcomes).collect();
            let _ = answers.send(answered); // the front may be stopping: stored anyway
        }
        Ok(())
    }

    fn commit(&mut self, batch: &[Job]) -> Result<(Vec<Outcome>, Vec<Record>), Error> {
        // The writers' lock for the transaction (a duplicate of the descriptor, released when
        // the guard drops); the relay's writer takes the same one.
        let lock = Flock::lock(self.lock_file.try_clone()?, FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::from(e))?;
        let result = self.transaction(batch, date::unix_now());
        drop(lock);
        match result {
            Ok(done) => Ok(done),
            Err(e) => {
                // Nothing of the batch is durable: every uploader goes to the relay, which
                // tries again and answers a full or failing disk as it always does.
                eprintln!("privastead relay front: commit failed, handing the batch over: {e}");
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                Ok((vec![Outcome::NotMine; batch.len()], Vec::new()))
            }
        }
    }

    fn transaction(
        &self,
        batch: &[Job],
        now: f64,
    ) -> Result<(Vec<Outcome>, Vec<Record>), rusqlite::Error> {
        let conn = &self.conn;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut records = Vec::new();
        for job in batch {
            match append(conn, &self.settings, &self.saturation, &job.upload, now)? {
                Some(record) => {
                    outcomes.push(Outcome::Stored(record.seq));
                    records.push(record);
                }
                None => outcomes.push(Outcome::NotMine),
            }
        }
        conn.execute_batch("COMMIT")?;
        Ok((outcomes, records))
    }
}

/// The relay's append, for the one outcome the front answers itself. Every `Ok(None)` is
/// returned before the first write (see the module's note on savepoints).
fn append(
    conn: &Connection,
    settings: &Settings,
    saturation: &saturation::Shared,
    u: &Upload,
    now: f64,
) -> rusqlite::Result<Option<Record>> {
    let Some(who) = auth::principal(conn, &u.token_id, &u.secret, &u.mailbox, now)? else {
        return Ok(None);
    };
    if who.kind == "restricted" && u.push.is_some() {
        return Ok(None); // the relay answers 403: a pairing token may not wake devices
    }
    let (account, device) = (who.account, who.device);
    if saturation.refuses(&account, &u.token_id) {
        return Ok(None); // at its share of uploads in flight: the relay answers 429
    }
    let seen = conn
        .prepare_cached("SELECT 1 FROM receipts WHERE mailbox = ?1 AND msg_id = ?2")?
        .exists(params![u.mailbox, u.msg_id])?;
    if seen {
        return Ok(None); // a duplicate or a conflict: the relay answers either
    }
    let mailbox: Option<(i64, Option<i64>)> = conn
        .prepare_cached(
            "SELECT last_seq, ttl_seconds FROM mailboxes WHERE id = ?1 AND account = ?2",
        )?
        .query_row(params![u.mailbox, account], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((last_seq, ttl)) = mailbox else {
        return Ok(None);
    };
    let seq = last_seq + 1;
    let (limit, used): (i64, i64) = conn
        .prepare_cached(
            "SELECT COALESCE(quota_bytes, ?1), used_bytes FROM accounts WHERE name = ?2",
        )?
        .query_row(params![settings.account_quota_bytes, account], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let size = i64::try_from(u.body.len()).unwrap_or(i64::MAX);
    let charge = size.saturating_add(settings.message_overhead);
    if used.saturating_add(charge) > limit {
        return Ok(None); // eviction, or a refusal: the relay's
    }
    // Decided: from here on the upload only writes.
    conn.prepare_cached("UPDATE mailboxes SET last_seq = ?1 WHERE id = ?2")?
        .execute(params![seq, u.mailbox])?;
    let ttl = ttl
        .filter(|t| *t != 0)
        .unwrap_or(settings.default_ttl_seconds);
    let expires = now + ttl as f64;
    conn.prepare_cached(
        "INSERT INTO messages(mailbox, seq, account, size, charged, body, blob, created_at, \
         expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7, ?8)",
    )?
    .execute(params![
        u.mailbox, seq, account, size, charge, u.body, now, expires
    ])?;
    let digest = Sha256::digest(&u.body);
    conn.prepare_cached(
        "INSERT OR REPLACE INTO receipts(mailbox, msg_id, seq, digest, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        u.mailbox,
        u.msg_id,
        seq,
        digest.as_slice(),
        expires
    ])?;
    let devices = if u.push.is_some() {
        let mut stmt =
            conn.prepare_cached("SELECT device_id FROM registrations WHERE mailbox = ?1")?;
        let rows = stmt.query_map([&u.mailbox], |r| r.get::<_, String>(0))?;
        rows.collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    use base64::Engine as _;
    Ok(Some(Record {
        account,
        mailbox: u.mailbox.clone(),
        seq,
        size: u.body.len(),
        device,
        push: u
            .push
            .as_ref()
            .map(|p| base64::engine::general_purpose::STANDARD.encode(p)),
        devices,
    }))
}
