"""The relay's SQLite schema, as versioned migration steps (``backends.migrations`` runs them).

A shipped step is never edited: a change is a new step. ``relay.schema`` documents the tables
as they stand after the last step.
"""

from __future__ import annotations

# Version 1: the first relay's schema, as it shipped (every statement IF NOT EXISTS, as the
# relay ran it at each start).
V1 = """
CREATE TABLE IF NOT EXISTS accounts (
    name        TEXT PRIMARY KEY,
    created_at  REAL NOT NULL,
    quota_bytes INTEGER,            -- NULL: the configured default
    used_bytes  INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tokens (
    token_id    TEXT PRIMARY KEY,
    account     TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('owner', 'device', 'restricted')),
    secret_hash BLOB NOT NULL,      -- SHA-256 of the secret part; the secret is never stored
    device_id   TEXT NOT NULL,
    mailboxes   TEXT,               -- restricted: JSON list of allowed mailbox ids
    expires_at  REAL,
    created_at  REAL NOT NULL,
    label       TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS devices (
    account     TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    device_id   TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    created_at  REAL NOT NULL,
    fcm_token   TEXT,
    webhook_url TEXT,
    PRIMARY KEY (account, device_id)
);
CREATE TABLE IF NOT EXISTS mailboxes (
    id          TEXT PRIMARY KEY,
    account     TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    created_at  REAL NOT NULL,
    last_seq    INTEGER NOT NULL DEFAULT 0,
    ttl_seconds INTEGER
);
CREATE INDEX IF NOT EXISTS mailboxes_account ON mailboxes(account);
CREATE TABLE IF NOT EXISTS registrations (
    mailbox     TEXT NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    account     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    cursor      INTEGER NOT NULL DEFAULT 0,   -- highest seq this device acknowledged
    PRIMARY KEY (mailbox, device_id)
);
CREATE INDEX IF NOT EXISTS registrations_device ON registrations(account, device_id);
CREATE TABLE IF NOT EXISTS messages (
    mailbox     TEXT NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    account     TEXT NOT NULL,
    size        INTEGER NOT NULL,
    body        BLOB,               -- inline body, or NULL when in a blob file
    blob        TEXT,               -- blob file name
    created_at  REAL NOT NULL,
    expires_at  REAL NOT NULL,
    PRIMARY KEY (mailbox, seq)
);
CREATE INDEX IF NOT EXISTS messages_account ON messages(account);
CREATE INDEX IF NOT EXISTS messages_expiry ON messages(expires_at);
CREATE TABLE IF NOT EXISTS receipts (
    mailbox     TEXT NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    msg_id      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    digest      BLOB NOT NULL,
    expires_at  REAL NOT NULL,
    PRIMARY KEY (mailbox, msg_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS receipts_expiry ON receipts(expires_at);
CREATE TRIGGER IF NOT EXISTS messages_used_add AFTER INSERT ON messages BEGIN
    UPDATE accounts SET used_bytes = used_bytes + NEW.size WHERE name = NEW.account;
END;
CREATE TRIGGER IF NOT EXISTS messages_used_sub AFTER DELETE ON messages BEGIN
    UPDATE accounts SET used_bytes = used_bytes - OLD.size WHERE name = OLD.account;
END;
"""

# Version 2: revoked-token tombstones, and quotas charged per message: its size plus a fixed
# overhead (``store.MESSAGE_OVERHEAD``, 256 bytes when this step shipped: the figure is part
# of the step, a later change of the constant is a new step). Messages already stored are
# charged the same way and every account's ``used_bytes`` recomputed.
V2 = """
-- Tombstones of revoked tokens: the relay tells "revoked" (401 device_removed, the client
-- stops) from "unknown" (401 unauthorized, a failure that is throttled). Only the holder of
-- the right secret learns it: the secret's hash is kept. Bounded: pruned after the retention
-- (auth.revoked_retention_days) and to auth.revoked_per_account rows per account. ``id``
-- only grows (AUTOINCREMENT), so a running relay polls for new rows to close the sockets of
-- tokens revoked from the command line.
CREATE TABLE IF NOT EXISTS revoked_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    token_id    TEXT NOT NULL UNIQUE,
    account     TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    revoked_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS revoked_tokens_account ON revoked_tokens(account, id);
CREATE INDEX IF NOT EXISTS revoked_tokens_time ON revoked_tokens(revoked_at);
DROP TRIGGER IF EXISTS messages_used_add;
DROP TRIGGER IF EXISTS messages_used_sub;
ALTER TABLE messages ADD COLUMN charged INTEGER NOT NULL DEFAULT 0;
UPDATE messages SET charged = size + 256;
UPDATE accounts SET used_bytes = (
    SELECT COALESCE(SUM(charged), 0) FROM messages WHERE messages.account = accounts.name
);
CREATE TRIGGER messages_charge_add AFTER INSERT ON messages BEGIN
    UPDATE accounts SET used_bytes = used_bytes + NEW.charged WHERE name = NEW.account;
END;
CREATE TRIGGER messages_charge_sub AFTER DELETE ON messages BEGIN
    UPDATE accounts SET used_bytes = used_bytes - OLD.charged WHERE name = OLD.account;
END;
"""

# Step 3: nameplates of short-code pairing (a restarted relay keeps the codes hubs show).
V3 = """
CREATE TABLE IF NOT EXISTS nameplates (
    nameplate  INTEGER PRIMARY KEY,
    account    TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    mailbox    TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS nameplates_account ON nameplates(account);
"""

# Step 4: nothing. The PostgreSQL backend's budget leases are counted by one SQLite relay in
# memory; the step exists so both dialects keep one version sequence.
V4 = ""

__all__ = ["V1", "V2", "V3", "V4"]
