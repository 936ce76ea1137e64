//! Who is at their share of request bodies being received, as the relay last said.
//!
//! The relay counts each account's and token's bodies in flight (slow uploads hold them) and
//! refuses past the share. A complete small upload in the front holds no such slot, but an
//! account at its share is refused by the relay, so the front leaves its uploads to the relay.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct Saturation {
    pub accounts: HashSet<String>,
    pub tokens: HashSet<String>,
    /// All accounts together are at the relay's limit.
    pub total: bool,
}

#[derive(Clone, Default)]
pub struct Shared(Arc<RwLock<Saturation>>);

impl Shared {
    pub fn replace(&self, next: Saturation) {
        if let Ok(mut now) = self.0.write() {
            *now = next;
        }
    }

    /// Whether an upload of this account and token must go to the relay.
    pub fn refuses(&self, account: &str, token_id: &str) -> bool {
        match self.0.read() {
            Ok(s) => s.total || s.accounts.contains(account) || s.tokens.contains(token_id),
            Err(_) => true,
        }
    }
}
