-- 0001 core: accounts and the per-user data every XMPP server keeps.
-- Written in the SQL SQLite and PostgreSQL share; the exceptions are BLOB (PostgreSQL: BYTEA) and
-- INTEGER PRIMARY KEY AUTOINCREMENT (PostgreSQL: BIGINT GENERATED ALWAYS AS IDENTITY).
-- Users are addressed by (host, username) in their prepared (RFC 7622) form. Every user table
-- references accounts with ON DELETE CASCADE: deleting an account deletes all of its data.

CREATE TABLE accounts (
    host TEXT NOT NULL,
    username TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (host, username)
);

CREATE TABLE scram_keys (
    host TEXT NOT NULL,
    username TEXT NOT NULL,
    hash_name TEXT NOT NULL CHECK (hash_name IN ('SHA-1', 'SHA-256', 'SHA-512')),
    salt BLOB NOT NULL,
    iterations INTEGER NOT NULL CHECK (iterations > 0),
    stored_key BLOB NOT NULL,
    server_key BLOB NOT NULL,
    PRIMARY KEY (host, username, hash_name),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);

CREATE TABLE roster_items (
    host TEXT NOT NULL,
    username TEXT NOT NULL,
    contact TEXT NOT NULL,
    name TEXT,
    subscription TEXT NOT NULL DEFAULT 'none' CHECK (subscription IN ('none', 'to', 'from', 'both')),
    ask BOOLEAN NOT NULL DEFAULT FALSE,         -- our outbound subscribe is pending
    approved BOOLEAN NOT NULL DEFAULT FALSE,    -- inbound subscription pre-approved (RFC 6121 3.4)
    group_names TEXT NOT NULL DEFAULT '[]',     -- JSON array of group names, in the client's order
    PRIMARY KEY (host, username, contact),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);

CREATE TABLE roster_versions (
    host TEXT NOT NULL,
    username TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (host, username),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);

CREATE TABLE offline_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    host TEXT NOT NULL,
    username TEXT NOT NULL,
    stanza BLOB NOT NULL,
    stored_at DOUBLE PRECISION NOT NULL,
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);

CREATE INDEX offline_messages_by_user ON offline_messages (host, username, id);

-- Small per-user documents by store name: private XML (XEP-0049), vCard, last activity ...
CREATE TABLE kv (
    host TEXT NOT NULL,
    username TEXT NOT NULL,
    store TEXT NOT NULL,
    key_name TEXT NOT NULL,
    value BLOB NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (host, username, store, key_name),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);

CREATE TABLE blocklist (
    host TEXT NOT NULL,
    username TEXT NOT NULL,
    jid TEXT NOT NULL,
    PRIMARY KEY (host, username, jid),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);
