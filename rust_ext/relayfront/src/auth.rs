//! Tokens, checked as the relay checks them (`accounts.verify_token` and the scope rule).

use rusqlite::{Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Who a request acts for.
pub struct Principal {
    pub account: String,
    pub kind: String,
    pub device: String,
}

/// The principal of a token that checks out and may use `mailbox`; None for every other
/// case (unknown, wrong secret, expired, revoked, out of scope), all the relay's to answer.
pub fn principal(
    conn: &Connection,
    token_id: &str,
    secret: &str,
    mailbox: &str,
    now: f64,
) -> rusqlite::Result<Option<Principal>> {
    type Row = (String, String, Vec<u8>, String, Option<String>, Option<f64>);
    let row: Option<Row> = conn
        .prepare_cached(
            "SELECT account, kind, secret_hash, device_id, mailboxes, expires_at FROM tokens \
             WHERE token_id = ?1",
        )?
        .query_row([token_id], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .optional()?;
    let Some((account, kind, hash, device, mailboxes, expires_at)) = row else {
        return Ok(None);
    };
    let given = Sha256::digest(secret.as_bytes());
    if !bool::from(given.as_slice().ct_eq(hash.as_slice())) {
        return Ok(None);
    }
    if expires_at.is_some_and(|at| now >= at) {
        return Ok(None);
    }
    // A token with a list of mailboxes may use those only (an empty text: no list).
    if let Some(scope) = mailboxes.filter(|s| !s.is_empty()) {
        let allowed: Vec<String> = match serde_json::from_str(&scope) {
            Ok(list) => list,
            Err(_) => return Ok(None),
        };
        if !allowed.iter().any(|m| m == mailbox) {
            return Ok(None);
        }
    }
    Ok(Some(Principal {
        account,
        kind,
        device,
    }))
}
