"""The relay's index in PostgreSQL: the same tables as the SQLite schema (``relay.schema``).

Version 1 mirrors SQLite's version 1 column for column, so that the same store operations
mean the same thing on both: times are epoch seconds (``double precision``, SQLite's REAL),
bodies ``bytea`` (BLOB). Where SQLite relied on something PostgreSQL lacks, the equivalent:

- ``messages.id`` (an identity column) plays SQLite's implicit ``rowid``: insertion order,
  which quota eviction follows ("oldest first across the account"), with an index on
  ``(account, id)`` so that eviction reads only the account's oldest rows.
- ``used_bytes`` is kept by *statement-level* triggers with transition tables: an ack or an
  expiry that deletes a thousand messages updates each account row once, not a thousand
  times. The account row is also the lock that makes quotas hold across relay processes:
  two concurrent uploads of one account serialise on it, uploads of different accounts don't.
- ``messages_blob`` (partial index) answers "is this object still referenced?" for the
  object-store sweep without a scan.
- ``tokens_account`` indexes the cascade from ``accounts`` (SQLite scans; fine at its size).
"""

from __future__ import annotations

V1 = """
CREATE TABLE accounts (
    name        text PRIMARY KEY,
    created_at  double precision NOT NULL,
    quota_bytes bigint,                       -- NULL: the configured default
    used_bytes  bigint NOT NULL DEFAULT 0
);
CREATE TABLE tokens (
    token_id    text PRIMARY KEY,
    account     text NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('owner', 'device', 'restricted')),
    secret_hash bytea NOT NULL,               -- SHA-256 of the secret part
    device_id   text NOT NULL,
    mailboxes   text,                         -- restricted: JSON list of allowed mailbox ids
    expires_at  double precision,
    created_at  double precision NOT NULL,
    label       text NOT NULL DEFAULT ''
);
CREATE INDEX tokens_account ON tokens(account);
CREATE TABLE devices (
    account     text NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    device_id   text NOT NULL,
    name        text NOT NULL DEFAULT '',
    created_at  double precision NOT NULL,
    fcm_token   text,
    webhook_url text,
    PRIMARY KEY (account, device_id)
);
CREATE TABLE mailboxes (
    id          text PRIMARY KEY,
    account     text NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    created_at  double precision NOT NULL,
    last_seq    bigint NOT NULL DEFAULT 0,
    ttl_seconds integer
);
CREATE INDEX mailboxes_account ON mailboxes(account);
CREATE TABLE registrations (
    mailbox     text NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    account     text NOT NULL,
    device_id   text NOT NULL,
    cursor      bigint NOT NULL DEFAULT 0,    -- highest seq this device acknowledged
    PRIMARY KEY (mailbox, device_id)
);
CREATE INDEX registrations_device ON registrations(account, device_id);
CREATE TABLE messages (
    id          bigint GENERATED ALWAYS AS IDENTITY,  -- insertion order (SQLite's rowid)
    mailbox     text NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    seq         bigint NOT NULL,
    account     text NOT NULL,
    size        integer NOT NULL,
    body        bytea,                        -- inline body, or NULL when in the object store
    blob        text,                         -- object name
    created_at  double precision NOT NULL,
    expires_at  double precision NOT NULL,
    PRIMARY KEY (mailbox, seq)
);
CREATE INDEX messages_account ON messages(account, id);
CREATE INDEX messages_expiry ON messages(expires_at);
CREATE INDEX messages_blob ON messages(blob) WHERE blob IS NOT NULL;
CREATE TABLE receipts (
    mailbox     text NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    msg_id      text NOT NULL,
    seq         bigint NOT NULL,
    digest      bytea NOT NULL,
    expires_at  double precision NOT NULL,
    PRIMARY KEY (mailbox, msg_id)
);
CREATE INDEX receipts_expiry ON receipts(expires_at);

CREATE FUNCTION messages_used_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts a SET used_bytes = a.used_bytes + n.total
    FROM (SELECT account, SUM(size) AS total FROM new_rows GROUP BY account) n
    WHERE a.name = n.account;
    RETURN NULL;
END $$;
CREATE FUNCTION messages_used_sub() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts a SET used_bytes = a.used_bytes - o.total
    FROM (SELECT account, SUM(size) AS total FROM old_rows GROUP BY account) o
    WHERE a.name = o.account;
    RETURN NULL;
END $$;
CREATE TRIGGER messages_used_add AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION messages_used_add();
CREATE TRIGGER messages_used_sub AFTER DELETE ON messages
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION messages_used_sub();
"""

# Version 2, as SQLite's: tombstones of revoked tokens, and quotas charged per message (its
# size plus the 256-byte overhead of that step; messages already stored charged the same way,
# every account's ``used_bytes`` recomputed). ``id`` grows; concurrent transactions could
# commit ids out of order, so revocations take a table lock in turn (``pg_tokens.bury``) and
# relays polling for "ids above the last one seen" miss none.
V2 = """
CREATE TABLE revoked_tokens (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_id    text NOT NULL UNIQUE,
    account     text NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    kind        text NOT NULL,
    device_id   text NOT NULL,
    secret_hash bytea NOT NULL,
    revoked_at  double precision NOT NULL
);
CREATE INDEX revoked_tokens_account ON revoked_tokens(account, id);
CREATE INDEX revoked_tokens_time ON revoked_tokens(revoked_at);

ALTER TABLE messages ADD COLUMN charged bigint NOT NULL DEFAULT 0;
UPDATE messages SET charged = size + 256;
UPDATE accounts a SET used_bytes = COALESCE(
    (SELECT SUM(m.charged) FROM messages m WHERE m.account = a.name), 0);
CREATE OR REPLACE FUNCTION messages_used_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts a SET used_bytes = a.used_bytes + n.total
    FROM (SELECT account, SUM(charged) AS total FROM new_rows GROUP BY account) n
    WHERE a.name = n.account;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION messages_used_sub() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts a SET used_bytes = a.used_bytes - o.total
    FROM (SELECT account, SUM(charged) AS total FROM old_rows GROUP BY account) o
    WHERE a.name = o.account;
    RETURN NULL;
END $$;
"""

# Step 3: nameplates of short-code pairing, shared by every relay process (a hub allocates
# on one, the device claims on another; no token is kept: the claim issues it; logged, since a
# crash must not forget codes hubs show), and the throttle of failed authentication shared by
# the processes (PostgreSQL only: one SQLite relay keeps it in memory).
V3 = """
CREATE TABLE nameplates (
    nameplate  integer PRIMARY KEY,
    account    text NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    mailbox    text NOT NULL,
    expires_at double precision NOT NULL
);
CREATE INDEX nameplates_account ON nameplates(account);

-- Failed authentication counted by every relay process together (``pg_throttle``). Keys are
-- SHA-256 of "addr:<client>" / "tid:<token id>" (no address stored in the clear); rows live
-- for the throttle's window. UNLOGGED: no WAL for attackers' failures, and a crash that
-- empties it only forgets counts (each process's own throttle still holds its share).
CREATE UNLOGGED TABLE auth_failures (
    key          bytea PRIMARY KEY,
    failures     integer NOT NULL,
    last         double precision NOT NULL,
    locked_until double precision NOT NULL
);
"""

# Step 4: each account's budget slots (sockets, waits, bodies, live sessions) counted by every
# relay process together (``pg_leases``; one SQLite relay counts them in memory). A lease
# lives while its process renews it; a dead process's leases expire by themselves. UNLOGGED:
# renewals write no WAL, and a crash that empties the table loses nothing a process cannot
# re-insert at its next renewal. Times are the database server's epoch seconds, the one clock
# every process shares.
V4 = """
CREATE UNLOGGED TABLE budget_leases (
    lease      text PRIMARY KEY,
    account    text NOT NULL,
    resource   text NOT NULL,
    instance   text NOT NULL,
    expires_at double precision NOT NULL
);
CREATE INDEX budget_leases_slot ON budget_leases(account, resource);
CREATE INDEX budget_leases_expiry ON budget_leases(expires_at);

-- Take one lease unless the account holds ``share`` live leases of the resource: one round
-- trip, atomic under a transaction-scoped advisory lock per (account, resource), so two
-- processes taking the last slot at once cannot both get it. Idempotent by lease id (the
-- caller may repeat it after a lost connection).
CREATE FUNCTION budget_lease_take(
    p_lease text, p_account text, p_resource text, p_instance text, p_share integer,
    p_seconds double precision
) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    now_s double precision;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_resource || '/' || p_account, 1651));
    now_s := extract(epoch FROM clock_timestamp());
    IF EXISTS (SELECT 1 FROM budget_leases WHERE lease = p_lease) THEN
        RETURN true;
    END IF;
    DELETE FROM budget_leases
        WHERE account = p_account AND resource = p_resource AND expires_at <= now_s;
    IF (SELECT count(*) FROM budget_leases
            WHERE account = p_account AND resource = p_resource) >= p_share THEN
        RETURN false;
    END IF;
    INSERT INTO budget_leases VALUES (p_lease, p_account, p_resource, p_instance,
                                      now_s + p_seconds);
    RETURN true;
END $$;
"""

__all__ = ["V1", "V2", "V3", "V4"]
